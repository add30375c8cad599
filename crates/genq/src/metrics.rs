//! `--metrics-listen ADDR`: Prometheus's `GET /metrics` on a listener of its
//! own (so it can stay off the public port), rendered by
//! metrics-exporter-prometheus from what the engine and the HTTP layer
//! record, plus figures read at scrape time: jobs in each state, the age of
//! the oldest pending job, event subscribers, and the process's own
//! (metrics-process). The README's "Metrics" section lists every name.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use genq_engine::time::now_ms;
use genq_engine::{Engine, JobState};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

const JOBS: &str = "genq_jobs";
const OLDEST_PENDING: &str = "genq_oldest_pending_job_age_seconds";
const SUBSCRIBERS: &str = "genq_event_subscribers";

/// Seconds: from a fast HTTP answer to a long render.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0,
];

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    engine: Engine,
}

/// Installs the recorder (once per process) and serves `/metrics` on
/// `listen` until `stop`.
pub async fn serve(listen: &str, engine: Engine, stop: CancellationToken) -> anyhow::Result<()> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    genq_dialects::shared::http_metrics::enable();
    let process = metrics_process::Collector::new("genq_");
    process.describe();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening for metrics on {listen}"))?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!("metrics on http://{addr}/metrics");
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape {
            handle,
            process,
            engine,
        });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

fn describe() {
    use genq_dialects::shared::http_metrics::{HTTP_REQUESTS, HTTP_SECONDS};
    use genq_engine::metrics::*;
    metrics::describe_counter!(JOBS_SUBMITTED, "Jobs accepted, by dialect and kind.");
    metrics::describe_counter!(
        JOBS_FINISHED,
        "Jobs that ended, by dialect, kind and outcome (completed, failed, cancelled)."
    );
    metrics::describe_histogram!(
        RENDER_SECONDS,
        "Time a worker spent on a job that ended, by kind."
    );
    metrics::describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook attempts, by outcome (delivered, retrying, gave_up)."
    );
    metrics::describe_histogram!(WEBHOOK_LATENCY_SECONDS, "Time one webhook attempt took.");
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests, by route template, method and status."
    );
    metrics::describe_histogram!(
        HTTP_SECONDS,
        "Time to an HTTP response's head, by route template and method."
    );
    metrics::describe_gauge!(
        JOBS,
        "Jobs in each state (all accounts), read at scrape time."
    );
    metrics::describe_gauge!(
        OLDEST_PENDING,
        "Age of the oldest PENDING job; 0 when none waits."
    );
    metrics::describe_gauge!(
        SUBSCRIBERS,
        "Live event subscribers in this process (SSE streams, waiters)."
    );
}

async fn scrape(State(scrape): State<Scrape>) -> Response {
    scrape.process.collect();
    metrics::gauge!(SUBSCRIBERS).set(scrape.engine.bus().subscriber_count() as f64);
    match scrape.engine.db().state_counts().await {
        Ok(counts) => {
            for state in JobState::ALL {
                let found = counts.iter().find(|c| c.state == state);
                metrics::gauge!(JOBS, "state" => state.as_str())
                    .set(found.map_or(0, |c| c.jobs) as f64);
            }
            let oldest = counts
                .iter()
                .find(|c| c.state == JobState::Pending)
                .and_then(|c| c.oldest_created_at)
                .map_or(0.0, |at| (now_ms() - at).max(0) as f64 / 1000.0);
            metrics::gauge!(OLDEST_PENDING).set(oldest);
        }
        Err(e) => tracing::warn!(error = %e, "counting jobs for metrics failed"),
    }
    scrape.handle.run_upkeep();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.handle.render(),
    )
        .into_response()
}
