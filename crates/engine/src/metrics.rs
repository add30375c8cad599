//! The engine's Prometheus figures (through the `metrics` facade: nothing is
//! recorded until a process installs a recorder, `genq serve
//! --metrics-listen`). Every name is listed, with its meaning, in the
//! README's "Metrics" section.

use crate::job::{Job, JobState};

pub const JOBS_SUBMITTED: &str = "genq_jobs_submitted_total";
pub const JOBS_FINISHED: &str = "genq_jobs_finished_total";
pub const RENDER_SECONDS: &str = "genq_render_duration_seconds";
pub const WEBHOOK_ATTEMPTS: &str = "genq_webhook_attempts_total";
pub const WEBHOOK_LATENCY_SECONDS: &str = "genq_webhook_delivery_latency_seconds";

pub(crate) fn job_submitted(job: &Job) {
    metrics::counter!(JOBS_SUBMITTED, "dialect" => job.dialect.clone(), "kind" => job.kind.clone())
        .increment(1);
}

/// A job reached `state` (a terminal one) by whatever path.
pub(crate) fn job_finished(job: &Job, state: JobState) {
    let outcome = match state {
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        JobState::Pending | JobState::Processing => return,
    };
    metrics::counter!(
        JOBS_FINISHED,
        "dialect" => job.dialect.clone(),
        "kind" => job.kind.clone(),
        "outcome" => outcome
    )
    .increment(1);
}

/// How long a worker spent on a job that ended (completed, failed or
/// cancelled), by kind.
pub(crate) fn render_took(kind: &str, seconds: f64) {
    metrics::histogram!(RENDER_SECONDS, "kind" => kind.to_owned()).record(seconds);
}

/// One webhook attempt: `delivered`, `retrying` or `gave_up`.
pub(crate) fn webhook_attempt(outcome: &'static str, seconds: f64) {
    metrics::counter!(WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
    metrics::histogram!(WEBHOOK_LATENCY_SECONDS).record(seconds);
}
