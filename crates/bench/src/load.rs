//! A closed-loop HTTP/1.1 load generator: a fixed set of keep-alive
//! connections, each sending its next request as soon as the previous answer
//! is read, for a fixed time.
//!
//! It runs on one thread of its own (a current-thread runtime), so on a small
//! machine it takes at most one core from the server it measures.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::Method;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// The one request every connection repeats.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// A header sent with a value of its own on every request (an
    /// `Idempotency-Key`), if any.
    pub unique: Option<HeaderName>,
}

#[derive(Debug, Default)]
pub struct LoadResult {
    /// 2xx answers.
    pub ok: u64,
    /// Anything else: other statuses, broken connections, unreadable bodies.
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Of the 2xx answers, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.latencies.extend(other.latencies);
    }

    fn error(&mut self, message: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }
}

/// Blocks for `duration` (plus connection setup); call it off the async
/// runtime (e.g. in `spawn_blocking`).
pub fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    request: Request,
) -> anyhow::Result<LoadResult> {
    let thread = std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drive(addr, connections, duration, Arc::new(request)))
        })?;
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))?
}

async fn drive(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    request: Arc<Request>,
) -> anyhow::Result<LoadResult> {
    // Every connection is open before the clock starts: the figure is the
    // steady state, not the TCP handshakes.
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(addr).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = JoinSet::new();
    for (connection, sender) in senders.into_iter().enumerate() {
        workers.spawn(repeat(sender, addr, request.clone(), deadline, connection));
    }
    let mut total = LoadResult::default();
    while let Some(result) = workers.join_next().await {
        total.merge(result.context("a load connection panicked")?);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    Ok(total)
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn repeat(
    mut sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    request: Arc<Request>,
    deadline: Instant,
    connection: usize,
) -> LoadResult {
    let mut tally = LoadResult::default();
    let mut sent_count = 0u64;
    // Unique across runs of one process too (a warm-up, then the runs).
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header");
    while Instant::now() < deadline {
        if let Err(e) = sender.ready().await {
            tally.error(|| format!("connection lost: {e}"));
            match connect(addr).await {
                Ok(fresh) => sender = fresh,
                Err(e) => {
                    tally.error(|| format!("{e:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            continue;
        }
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(&request.path)
            .header(HOST, host.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(name) = &request.unique {
            sent_count += 1;
            builder = builder.header(name, format!("{run}-{connection}-{sent_count}"));
        }
        let req = builder
            .body(Full::new(request.body.clone()))
            .expect("a well-formed request");
        let sent = Instant::now();
        let response = match sender.send_request(req).await {
            Ok(response) => response,
            Err(e) => {
                tally.error(|| format!("request failed: {e}"));
                continue;
            }
        };
        let status = response.status();
        match response.into_body().collect().await {
            Ok(body) if status.is_success() => {
                tally.latencies.push(sent.elapsed());
                tally.ok += 1;
                drop(body);
            }
            Ok(body) => tally.error(|| {
                let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                format!(
                    "HTTP {status}: {}",
                    text.chars().take(200).collect::<String>()
                )
            }),
            Err(e) => tally.error(|| format!("reading the response: {e}")),
        }
    }
    tally
}
