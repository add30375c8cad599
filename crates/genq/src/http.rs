//! The HTTP server's connections, where a slow or greedy client is stopped
//! before it costs others anything: hyper-util's server with a header read
//! timeout (axum::serve sets no timer, so a client dribbling a request line
//! held its connection for ever), caps on open connections per process and
//! per client IP, refused with a 503 written straight to the socket, and
//! accept errors (out of file descriptors) met with a backoff and an
//! occasional log line instead of one a second. The body idle timeout is a
//! tower-http layer on the application (`serve.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What the server allows a connection.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// From a connection's opening (or its previous response) to the end
    /// of a request's headers: also how long a kept-alive connection may
    /// idle.
    pub header_timeout: Duration,
    /// Open connections of the process.
    pub max_connections: usize,
    /// Open connections of one client IP; 0: no limit.
    pub max_per_ip: usize,
    /// Peers exempt from the per-IP limit: trusted proxies, whose one
    /// address carries many clients.
    pub exempt: Vec<IpNet>,
    /// On shutdown, how long open connections may take to finish.
    pub drain: Duration,
}

/// The process's limit on open files, of which connections may take this
/// share: the rest is for the database, stored files and renders.
pub fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (files / 4 * 3).clamp(16, 100_000)
}

/// Serves `app` on `listener` until `stop`, then lets open connections
/// finish for up to `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let gate = Gate::new(&limits);
    let graceful = GracefulShutdown::new();
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors: waiting lets connections close;
                // retrying at once would spin.
                let pause = errors.record(&e);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        errors.recovered();
        let Some(admitted) = gate.admit(peer.ip()) else {
            gate.refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // What `into_make_service_with_connect_info` would insert: the
            // rate limits read the peer from it.
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.oneshot(request).await.unwrap_or_else(|e| match e {})) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            drop(admitted);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("connections still open after the drain time were dropped");
    }
}

/// Open connections by client IP (none listed: none open).
type OpenPerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Counts open connections against the limits.
struct Gate {
    process: Arc<Semaphore>,
    per_ip: OpenPerIp,
    max_per_ip: usize,
    exempt: Vec<IpNet>,
    /// Refusals being written: bounded, since each holds a descriptor.
    refusing: Arc<AtomicUsize>,
}

/// One admitted connection's place, given back when it closes.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    ip: Option<(IpAddr, OpenPerIp)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((ip, counts)) = self.ip.take() {
            let mut counts = counts.lock().expect("not poisoned");
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

const MAX_REFUSING: usize = 64;
const REFUSAL: &str = "{\"error\":{\"code\":\"TOO_MANY_CONNECTIONS\",\"message\":\"Too many open connections; retry in a moment.\"}}";

impl Gate {
    fn new(limits: &ConnectionLimits) -> Self {
        Self {
            process: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_ip: Arc::default(),
            max_per_ip: limits.max_per_ip,
            exempt: limits.exempt.clone(),
            refusing: Arc::default(),
        }
    }

    fn admit(&self, ip: IpAddr) -> Option<Admitted> {
        let ip = ip.to_canonical();
        let permit = self.process.clone().try_acquire_owned().ok()?;
        if self.max_per_ip == 0 || self.exempt.iter().any(|net| net.contains(&ip)) {
            return Some(Admitted {
                _permit: permit,
                ip: None,
            });
        }
        let mut counts = self.per_ip.lock().expect("not poisoned");
        let open = counts.entry(ip).or_insert(0);
        if *open >= self.max_per_ip {
            return None;
        }
        *open += 1;
        Some(Admitted {
            _permit: permit,
            ip: Some((ip, self.per_ip.clone())),
        })
    }

    /// A 503 in answer to the connection's first request, read (its head,
    /// for a second at most) before answering: an HTTP client that pools
    /// connections takes an answer arriving before its request for a broken
    /// connection, not for a 503. Then the rest is read and dropped for a
    /// moment, so that closing does not reset the connection before the
    /// client has read the answer.
    fn refuse(&self, mut stream: TcpStream) {
        if self.refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
            self.refusing.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let refusing = self.refusing.clone();
        tokio::spawn(async move {
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                 retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL}",
                REFUSAL.len()
            );
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(REFUSAL_WAITS_FOR_REQUEST, async {
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
                    match stream.read(&mut sink).await? {
                        0 => break,
                        n => head.extend_from_slice(&sink[..n]),
                    }
                }
                io::Result::Ok(())
            })
            .await;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                stream.write_all(answer.as_bytes()).await?;
                stream.shutdown().await?;
                let mut read = 0;
                while read < 65_536 {
                    match stream.read(&mut sink).await? {
                        0 => break,
                        n => read += n,
                    }
                }
                io::Result::Ok(())
            })
            .await;
            refusing.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// How long a refused connection's request head is waited for.
const REFUSAL_WAITS_FOR_REQUEST: Duration = Duration::from_secs(1);

/// Accept errors, logged once a minute at most with how many there were.
#[derive(Default)]
struct AcceptErrors {
    since_logged: u64,
    logged_at: Option<Instant>,
    pause: Duration,
}

impl AcceptErrors {
    fn record(&mut self, error: &io::Error) -> Duration {
        self.since_logged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(
                error = %error,
                errors = self.since_logged,
                "cannot accept connections (logged once a minute while it lasts)"
            );
            self.since_logged = 0;
            self.logged_at = Some(Instant::now());
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        self.pause
    }

    fn recovered(&mut self) {
        self.pause = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max: usize, per_ip: usize, exempt: &[&str]) -> Gate {
        Gate::new(&ConnectionLimits {
            header_timeout: Duration::from_secs(1),
            max_connections: max,
            max_per_ip: per_ip,
            exempt: exempt.iter().map(|n| n.parse().unwrap()).collect(),
            drain: Duration::from_secs(1),
        })
    }

    #[test]
    fn connections_are_capped_per_ip_and_per_process() {
        let gate = gate(4, 2, &["10.0.0.0/8"]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        let first = gate.admit(a).unwrap();
        let _second = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "a third from one IP");
        drop(first);
        let _third = gate.admit(a).unwrap();
        let _b = gate.admit(b).unwrap();
        // A trusted proxy is not held to the per-IP limit, only the process's.
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let _p = gate.admit(proxy).unwrap();
        assert!(gate.admit(proxy).is_none(), "the process's four are taken");
        assert!(gate.admit("192.0.2.9".parse().unwrap()).is_none());
    }
}
