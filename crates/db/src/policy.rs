//! Rules both backends apply the same way, written once.

/// Weight of the newest run in a model's moving-average run time.
pub(crate) const RUN_TIME_WEIGHT: f64 = 0.2;

/// The failure code of a job whose worker was lost too many times.
pub(crate) const WORKER_LOST: &str = "WORKER_LOST";

/// Why a job whose worker was lost too many times failed.
pub(crate) fn worker_lost_message(max_retries: u32) -> String {
    format!(
        "the job was interrupted {} times (its worker stopped responding) and was given up",
        max_retries + 1
    )
}

/// The PostgreSQL channel every committed change of a job is announced on
/// (migrations/postgres/0003_events.sql).
pub(crate) const EVENTS_CHANNEL: &str = "genq_job_events";
