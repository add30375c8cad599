//! The IETF `RateLimit-*` header fields a limited response carries.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use governor::Quota;
use std::time::Duration;

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// What one limit says about one request, as the headers report it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Figures {
    /// The quota: requests per window (the bucket's burst size).
    pub(crate) limit: u32,
    /// Requests left right now.
    pub(crate) remaining: u32,
    /// Whole seconds until the bucket is full again, or, when `remaining` is
    /// 0, until the next request is allowed. At least 1.
    pub(crate) reset: u64,
}

pub(crate) struct RateLimitHeaders {
    pub(crate) figures: Figures,
    pub(crate) policy: Option<HeaderValue>,
}

impl RateLimitHeaders {
    /// Where the `RateLimit-*` fields are written (allowed and refused alike).
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        let Figures {
            limit,
            remaining,
            reset,
        } = self.figures;
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(limit));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(remaining));
        headers.insert(RATELIMIT_RESET, HeaderValue::from(reset));
        if let Some(policy) = &self.policy {
            headers.insert(RATELIMIT_POLICY, policy.clone());
        }
    }
}

/// `N;w=SECONDS`, one quota policy item of `RateLimit-Policy`.
pub(crate) fn policy_item(quota: Quota) -> String {
    let window = ceil_secs(quota.burst_size_replenished_in()).max(1);
    format!("{};w={window}", quota.burst_size())
}

pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}
