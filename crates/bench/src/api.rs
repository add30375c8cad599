//! api: the real server over loopback — durable submissions per second and
//! status reads per second with their latency.

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::Method;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::load::{self, LoadResult, Request};
use crate::server::{genq_binary, Server};
use crate::stats::{ms, percentile, Summary};
use crate::table::{Row, Target};
use crate::Plan;

const SUBMIT_BODY: &str = r#"{"model":"genq/title-card/text-to-video","input":{"prompt":"bench"}}"#;

pub async fn run(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let genq = genq_binary()?;
    // A fresh server for each run of submissions: with --workers 0 every
    // accepted job stays PENDING, and submissions slow down as that backlog
    // grows, so runs on one server would not be alike.
    // Each run alternates plain and keyed submissions (every request with
    // an Idempotency-Key of its own), so that drift spreads over both.
    let (mut submits, mut keyed) = (Vec::new(), Vec::new());
    for rep in 0..plan.api_reps {
        for with_key in [rep % 2 == 1, rep % 2 == 0] {
            let name = if with_key { "api-keyed" } else { "api-submit" };
            let server = Server::start(&genq, &dir.join(format!("{name}-{rep}"))).await?;
            let measured = async {
                let key = server.create_account("bench").await?;
                let mut request = submit_request(&key)?;
                let what = if with_key {
                    request.unique =
                        Some(hyper::header::HeaderName::from_static("idempotency-key"));
                    format!("keyed submissions, run {}", rep + 1)
                } else {
                    format!("submissions, run {}", rep + 1)
                };
                repeat(plan, server.addr, request, &what, 1).await
            }
            .await;
            let results = stop_after(server, measured).await?;
            if with_key { &mut keyed } else { &mut submits }.extend(results);
        }
    }
    let server = Server::start(&genq, &dir.join("api-status")).await?;
    let measured = async {
        let key = server.create_account("bench").await?;
        let id = submit_one(&server, &key).await?;
        let status = Request {
            method: Method::GET,
            path: format!("/v1/jobs/{id}"),
            headers: vec![(AUTHORIZATION, bearer(&key)?)],
            body: Bytes::new(),
            unique: None,
        };
        repeat(plan, server.addr, status, "status", plan.api_reps).await
    }
    .await;
    let reads = stop_after(server, measured).await?;

    let rate = summarize(&submits, LoadResult::rate)?;
    let keyed_rate = summarize(&keyed, LoadResult::rate)?;
    let keyed_ratio = keyed_rate.median / rate.median;
    let submit_p99 = summarize(&submits, |r| p(r, 99.0))?;
    let read_rate = summarize(&reads, LoadResult::rate)?;
    let read_p50 = summarize(&reads, |r| p(r, 50.0))?;
    let read_p99 = summarize(&reads, |r| p(r, 99.0))?;
    let conns = format!("{} connections", plan.connections);
    Ok(vec![
        Row::new("api: durable submissions", rate, "jobs/s")
            .target(Target::at_least(rate.median, 3000.0, "≥ 3,000/s"))
            .note(format!(
                "{conns}; {}; empty queue at start",
                errors(&submits)
            ))
            .problem(problem(&submits)),
        Row::new("api: submission p99", submit_p99, "ms"),
        Row::new("api: durable submissions, keyed", keyed_rate, "jobs/s")
            .ratio("keyed/plain", keyed_ratio)
            .target(Target::at_least(keyed_ratio, 0.85, "≥ 0.85× plain"))
            .note(format!(
                "each with an Idempotency-Key of its own; {conns}; {}",
                errors(&keyed)
            ))
            .problem(problem(&keyed)),
        Row::new("api: status reads", read_rate, "req/s")
            .target(Target::at_least(read_rate.median, 20000.0, "≥ 20,000/s"))
            .note(format!("{conns}; {}", errors(&reads)))
            .problem(problem(&reads)),
        Row::new("api: status p50", read_p50, "ms"),
        Row::new("api: status p99", read_p99, "ms").target(Target::below(
            read_p99.median,
            10.0,
            "< 10 ms",
        )),
    ])
}

fn bearer(key: &str) -> anyhow::Result<HeaderValue> {
    Ok(HeaderValue::from_str(&format!("Bearer {key}"))?)
}

pub(crate) fn submit_request(key: &str) -> anyhow::Result<Request> {
    Ok(Request {
        method: Method::POST,
        path: "/v1/jobs/submit".into(),
        headers: vec![
            (AUTHORIZATION, bearer(key)?),
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        ],
        body: Bytes::from_static(SUBMIT_BODY.as_bytes()),
        unique: None,
    })
}

/// One job for the status figure to read; returns its id.
pub(crate) async fn submit_one(server: &Server, key: &str) -> anyhow::Result<String> {
    let job: serde_json::Value = reqwest::Client::new()
        .post(server.url("/v1/jobs/submit"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(SUBMIT_BODY)
        .send()
        .await?
        .error_for_status()
        .context("submitting the job the status figure reads")?
        .json()
        .await?;
    job["jobId"]
        .as_str()
        .map(str::to_owned)
        .context("the submission had no jobId")
}

/// Stops the server whatever happened; a server that died mid-run is an
/// error even if the figures came out.
async fn stop_after<T>(server: Server, measured: anyhow::Result<T>) -> anyhow::Result<T> {
    let stopped = server.stop().await;
    let value = measured?;
    stopped?;
    Ok(value)
}

/// A warm-up (discarded), then `reps` measured runs.
pub(crate) async fn repeat(
    plan: &Plan,
    addr: SocketAddr,
    request: Request,
    what: &str,
    reps: usize,
) -> anyhow::Result<Vec<LoadResult>> {
    let conns = plan.connections;
    let warm = request.clone();
    let warm_up = plan.api_duration.min(Duration::from_secs(1));
    tokio::task::spawn_blocking(move || load::run(addr, conns, warm_up, warm)).await??;
    let mut results = Vec::new();
    for i in 0..reps {
        let request = request.clone();
        let duration = plan.api_duration;
        let result = tokio::task::spawn_blocking(move || load::run(addr, conns, duration, request))
            .await??;
        let run = if reps > 1 {
            format!(", run {}", i + 1)
        } else {
            String::new()
        };
        eprintln!(
            "  api {what}{run}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            result.rate(),
            p(&result, 50.0),
            p(&result, 99.0),
            result.errors
        );
        if let Some(e) = &result.first_error {
            eprintln!("    first error: {e}");
        }
        if result.ok == 0 {
            bail!(
                "no {what} request succeeded: {}",
                result.first_error.as_deref().unwrap_or("no answers")
            );
        }
        results.push(result);
    }
    Ok(results)
}

fn p(result: &LoadResult, pct: f64) -> f64 {
    percentile(&result.latencies, pct).map_or(f64::NAN, ms)
}

pub(crate) fn summarize(
    results: &[LoadResult],
    f: impl Fn(&LoadResult) -> f64,
) -> anyhow::Result<Summary> {
    let samples: Vec<f64> = results.iter().map(f).collect();
    Summary::of(&samples).context("no repetitions were run")
}

fn errors(results: &[LoadResult]) -> String {
    let n: u64 = results.iter().map(|r| r.errors).sum();
    format!("{n} errors")
}

/// Any failed request is a fault, whatever the speed: it makes the run fail.
fn problem(results: &[LoadResult]) -> Option<String> {
    let first = results.iter().find_map(|r| r.first_error.as_deref())?;
    Some(format!("first failed request: {first}"))
}
