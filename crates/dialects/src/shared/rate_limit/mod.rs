//! Per-client-IP rate limits, reported over the IETF `RateLimit-*` header
//! fields (draft-ietf-httpapi-ratelimit-headers, the version with separate
//! `RateLimit-Limit` / `-Remaining` / `-Reset` / `-Policy` fields).
//!
//! Two limits, each a GCRA bucket per client IP ([`governor`]) that holds
//! `N` requests and refills continuously at `N` per minute, shared by every
//! route that counts against them, whichever dialect it belongs to:
//!
//! - the general limit: every request to a dialect's routes (600 a minute
//!   by default);
//! - the submission limit: requests that create jobs (30 a minute by
//!   default). Which routes those are, each dialect says when it lists its
//!   routes (`Routes::submit`).
//!
//! A submission is checked against the general limit first, then against the
//! submission limit; a refusal by either is a `429` with `Retry-After`, in
//! the error shape of the dialect whose route was called ([`rate_limit`]'s
//! `E`). A submission refused by the submission limit has already used one
//! request of its general quota (GCRA cannot give a cell back; keeping it
//! simple).
//!
//! Every response of a limited route carries the `RateLimit-*` fields of the
//! limit closest to exhaustion (least remaining). Routes outside the
//! dialects (`/health`, `/media/…`, `/share/…`, `/openapi.json`) are neither
//! limited nor annotated.
//!
//! The client's address comes from `ConnectInfo<SocketAddr>`: serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`.

mod client_ip;
mod headers;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use crate::shared::Refusal;
pub(crate) use client_ip::{canonical_net, client_ip};
use headers::{ceil_secs, policy_item, Figures, RateLimitHeaders};
pub use headers::{RATELIMIT_LIMIT, RATELIMIT_POLICY, RATELIMIT_REMAINING, RATELIMIT_RESET};

/// How often stale per-IP entries are dropped (see [`RateLimits::sweep`]).
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Rate limit settings. A limit of `0` means "unlimited": no limiter is built
/// for it and its figures never appear in the response headers (with both at
/// `0` the middleware passes everything through untouched).
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Requests per minute per client IP to every dialect route.
    pub api_per_minute: u32,
    /// Job submissions per minute per client IP.
    pub submit_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies, load
    /// balancers). Empty: the TCP peer is always the client.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            api_per_minute: 600,
            submit_per_minute: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Which limits a route counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// The general limit.
    General,
    /// The general limit, then the submission limit.
    Submission,
}

type KeyedLimiter =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

/// The rate limiters, shared by every request (cheap to clone).
#[derive(Clone)]
pub struct RateLimits {
    inner: Arc<Inner>,
}

struct Inner {
    api: Option<Limit>,
    submit: Option<Limit>,
    trusted_proxies: Vec<IpNet>,
    /// `RateLimit-Policy` for a non-submission request (`None`: unlimited).
    general_policy: Option<HeaderValue>,
    /// `RateLimit-Policy` for a submission: the submission and general quotas.
    submission_policy: Option<HeaderValue>,
    /// Base of `last_sweep_ms`.
    created: Instant,
    last_sweep_ms: AtomicU64,
    warned_missing_peer: AtomicBool,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quota = |limit: &Option<Limit>| limit.as_ref().map(|l| l.quota);
        f.debug_struct("RateLimits")
            .field("api", &quota(&self.inner.api))
            .field("submit", &quota(&self.inner.submit))
            .field("trusted_proxies", &self.inner.trusted_proxies)
            .finish()
    }
}

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> Self {
        let per_minute = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        Self::with_quotas(
            per_minute(config.api_per_minute),
            per_minute(config.submit_per_minute),
            config.trusted_proxies,
        )
    }

    fn with_quotas(api: Option<Quota>, submit: Option<Quota>, trusted_proxies: Vec<IpNet>) -> Self {
        let policies = |quotas: &[Option<Quota>]| {
            let items: Vec<String> = quotas.iter().flatten().map(|q| policy_item(*q)).collect();
            (!items.is_empty()).then(|| {
                HeaderValue::from_str(&items.join(", ")).expect("policy is ASCII digits and ;w=")
            })
        };
        Self {
            inner: Arc::new(Inner {
                general_policy: policies(&[api]),
                submission_policy: policies(&[submit, api]),
                api: api.map(Limit::new),
                submit: submit.map(Limit::new),
                trusted_proxies: trusted_proxies.into_iter().map(canonical_net).collect(),
                created: Instant::now(),
                last_sweep_ms: AtomicU64::new(0),
                warned_missing_peer: AtomicBool::new(false),
            }),
        }
    }

    /// The client a request is counted against: the TCP peer, or, when the
    /// peer is a trusted proxy, the right-most `X-Forwarded-For` entry that is
    /// not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.inner.trusted_proxies)
    }

    fn check(&self, client: IpAddr, submission: bool) -> Verdict {
        let inner = &*self.inner;
        let mut shown: Option<Figures> = None;
        if let Some(api) = &inner.api {
            match api.check(client) {
                Ok(figures) => shown = Some(figures),
                Err(figures) => return Verdict::Refused(self.headers(figures, submission)),
            }
        }
        if submission {
            if let Some(submit) = &inner.submit {
                match submit.check(client) {
                    Ok(figures) => {
                        if shown.is_none_or(|general| figures.remaining <= general.remaining) {
                            shown = Some(figures);
                        }
                    }
                    Err(figures) => return Verdict::Refused(self.headers(figures, submission)),
                }
            }
        }
        match shown {
            Some(figures) => Verdict::Allowed(self.headers(figures, submission)),
            None => Verdict::Unlimited,
        }
    }

    fn headers(&self, figures: Figures, submission: bool) -> RateLimitHeaders {
        let policy = if submission {
            &self.inner.submission_policy
        } else {
            &self.inner.general_policy
        };
        RateLimitHeaders {
            figures,
            policy: policy.clone(),
        }
    }

    /// Drops the per-IP entries that are indistinguishable from a fresh
    /// bucket (fully replenished) and gives the memory back.
    ///
    /// Memory: an entry exists only for a client seen on a limited path, and
    /// governor's `retain_recent` removes it once its bucket has refilled
    /// (at most a minute after its last request). So with a sweep every
    /// [`SWEEP_INTERVAL`], the map holds about the distinct clients of the
    /// last 70 seconds: bounded by the request rate, not by how many IPs were
    /// ever seen.
    pub fn sweep(&self) {
        for limit in [&self.inner.api, &self.inner.submit].into_iter().flatten() {
            limit.limiter.retain_recent();
            limit.limiter.shrink_to_fit();
        }
    }

    /// Starts a [`sweep`](Self::sweep) if the last one is [`SWEEP_INTERVAL`]
    /// old; returns whether it did.
    ///
    /// Why request-driven rather than a tokio interval task spawned by
    /// [`new`](Self::new): the map only grows when limited requests arrive,
    /// so those same requests can pay for its upkeep; `new` then needs no
    /// runtime, there is no background task to own, stop or leak when the
    /// limiter is dropped (tests build many), and an idle server does no work.
    /// The check is one atomic load per request; the winner of the
    /// compare-exchange runs the sweep on the blocking pool, so no request
    /// waits for the scan.
    fn sweep_if_due(&self) -> bool {
        let elapsed = self.inner.created.elapsed().as_millis();
        self.sweep_if_due_at(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// [`sweep_if_due`](Self::sweep_if_due) at `now` ms after creation.
    fn sweep_if_due_at(&self, now: u64) -> bool {
        let inner = &*self.inner;
        let last = inner.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SWEEP_INTERVAL.as_millis() as u64 {
            return false;
        }
        if inner
            .last_sweep_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false; // another request is starting it
        }
        let limits = self.clone();
        tokio::task::spawn_blocking(move || limits.sweep());
        true
    }

    /// Number of per-IP entries currently held, over both limiters.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        [&self.inner.api, &self.inner.submit]
            .into_iter()
            .flatten()
            .map(|limit| limit.limiter.len())
            .sum()
    }
}

/// The middleware of one route: `method_router.layer(from_fn_with_state((limits,
/// kind), rate_limit::<E>))`, where `E` is the error type of the route's
/// dialect, so that its 429 comes out in that dialect's shape.
///
/// Without `ConnectInfo<SocketAddr>` (or `MockConnectInfo`) every request
/// shares the bucket of `0.0.0.0`, and a warning is logged once.
pub async fn rate_limit<E: From<Refusal> + IntoResponse>(
    State((limits, kind)): State<(RateLimits, RouteKind)>,
    request: Request,
    next: Next,
) -> Response {
    let submission = kind == RouteKind::Submission;
    let peer = peer_ip(&request).unwrap_or_else(|| {
        if !limits
            .inner
            .warned_missing_peer
            .swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "rate limiting without the peer address (no ConnectInfo<SocketAddr>): \
                 every client shares one bucket; serve with into_make_service_with_connect_info"
            );
        }
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let client = limits.client_ip(peer, request.headers());
    limits.sweep_if_due();
    match limits.check(client, submission) {
        Verdict::Unlimited => next.run(request).await,
        Verdict::Allowed(headers) => {
            let mut response = next.run(request).await;
            headers.write(response.headers_mut());
            response
        }
        Verdict::Refused(headers) => {
            tracing::debug!(%client, path = %request.uri().path(), "rate limited");
            too_many_requests::<E>(headers)
        }
    }
}

fn peer_ip(request: &Request) -> Option<IpAddr> {
    let extensions = request.extensions();
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| {
            extensions
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|MockConnectInfo(addr)| addr.ip())
        })
}

/// The 429, with `Retry-After` and the refusing limit's figures.
fn too_many_requests<E: From<Refusal> + IntoResponse>(headers: RateLimitHeaders) -> Response {
    let retry_after_secs = headers.figures.reset.max(1);
    let mut response = E::from(Refusal::RateLimited { retry_after_secs }).into_response();
    headers.write(response.headers_mut());
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

enum Verdict {
    /// No limit applies to this request.
    Unlimited,
    Allowed(RateLimitHeaders),
    Refused(RateLimitHeaders),
}

struct Limit {
    quota: Quota,
    limiter: KeyedLimiter,
}

impl Limit {
    fn new(quota: Quota) -> Self {
        Self {
            quota,
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
        }
    }

    /// Takes one request from `client`'s bucket: `Ok` with the figures after
    /// it, or `Err` (nothing taken) with `reset` = the wait before a retry.
    fn check(&self, client: IpAddr) -> Result<Figures, Figures> {
        let limit = self.quota.burst_size().get();
        let interval = self.quota.replenish_interval();
        match self.limiter.check_key(&client) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(limit);
                // governor exposes the remaining cells, not the bucket's exact
                // "full again" instant; `used` cells refill one per interval,
                // so `used × interval` is that time rounded up to a whole cell
                // (an upper bound, off by less than one interval). With none
                // left, the next cell arrives within one interval.
                let used = limit - remaining;
                let wait = if remaining == 0 {
                    interval
                } else {
                    interval.saturating_mul(used)
                };
                Ok(Figures {
                    limit,
                    remaining,
                    reset: ceil_secs(wait).max(1),
                })
            }
            Err(not_until) => Err(Figures {
                limit,
                remaining: 0,
                reset: ceil_secs(not_until.wait_time_from(self.limiter.clock().now())).max(1),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
