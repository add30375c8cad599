//! The job: the one record every dialect, worker and renderer shares.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use crate::ids::JobId;
use crate::ids::{AccountId, KeyId};
use crate::time::Millis;

/// Longest correlation id a job may carry (it travels in every event).
pub const MAX_CORRELATION_ID_BYTES: usize = 256;

/// The priorities a submission may ask for (default 0).
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -10..=10;

/// The longest timeout a submission may ask for: a week.
pub const MAX_TIMEOUT_SECONDS: u32 = 7 * 24 * 3600;

/// The failure code of a job that did not finish within its timeout.
pub const DEADLINE_EXCEEDED: &str = "DEADLINE_EXCEEDED";

/// The failure of a job whose deadline passed.
pub fn deadline_failure(timeout_ms: Option<i64>) -> JobFailure {
    let message = match timeout_ms {
        Some(ms) => format!(
            "The job did not finish within its timeout of {} seconds.",
            ms / 1000
        ),
        None => "The job did not finish within its timeout.".to_owned(),
    };
    JobFailure::new(DEADLINE_EXCEEDED, message)
}

/// PENDING → PROCESSING → COMPLETED | FAILED, and PENDING → CANCELLED.
///
/// Transitions happen only through the guarded [`crate::db`] methods
/// (`claim`, `complete`, `fail`, `release`, `cancel`), each of which
/// states the state it moves from; there is no "set state" operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Pending,
        JobState::Processing,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Processing => "PROCESSING",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or(())
    }
}

/// Why a job failed, in words a user can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// Stable, machine-readable (e.g. `INVALID_IMAGE`).
    pub code: String,
    /// Human-readable; becomes the dialect's error message.
    pub message: String,
}

impl JobFailure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    Video,
    Image,
    Audio,
    Text,
    /// A PDF.
    Document,
}

/// What an output is for: the main result, or a preview of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputRole {
    Main,
    Thumbnail,
    Poster,
}

/// A finished output file, stored under `outputs/{job_id}/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutput {
    pub name: String,
    pub role: OutputRole,
    pub kind: OutputKind,
    pub content_type: String,
    pub size: u64,
    /// What the renderer found out about the file that a reader of the job
    /// wants without downloading it (a duration, a report); kept in the
    /// outputs' JSON, so it needs no column of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// The catalog model (and version) a job runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub slug: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub account_id: AccountId,
    pub api_key_id: KeyId,
    /// Which handler runs it (e.g. `image_audio_video`).
    pub kind: String,
    /// Which dialect accepted it; decides the shape of its webhook body and
    /// events, and which dialect's routes see it.
    pub dialect: String,
    pub input: serde_json::Value,
    /// Names of uploaded input files, stored under `inputs/{job_id}/{name}`.
    pub input_files: Vec<String>,
    pub state: JobState,
    pub progress: u8,
    pub outputs: Vec<JobOutput>,
    pub failure: Option<JobFailure>,
    /// How many times the job was claimed again after a worker lost it.
    pub retries: u32,
    pub webhook_url: Option<String>,
    /// The catalog model a job of a model runs.
    pub model: Option<ModelRef>,
    /// Reserved at submission; refunded if the job fails or is cancelled.
    pub cost_micro_cents: i64,
    /// Unguessable; output downloads live under it.
    pub media_token: String,
    /// Unguessable; the share page lives under it.
    pub share_token: String,
    /// A client's id for correlating notifications (the Provider dialect's
    /// `session_id`); events carry it and can be filtered by it.
    pub correlation_id: Option<String>,
    /// Orders the account's own pending jobs, higher first
    /// ([`PRIORITY_RANGE`]); fairness between accounts does not look at it.
    pub priority: i32,
    /// How long a run may take from its queueing to its end, if limited.
    pub timeout_ms: Option<i64>,
    /// When the present run fails with [`DEADLINE_EXCEEDED`] unless it has
    /// finished: queueing time + `timeout_ms`.
    pub deadline_at: Option<Millis>,
    /// When the retention sweep deleted its stored inputs (it cannot run
    /// again after that).
    pub inputs_deleted_at: Option<Millis>,
    /// When the retention sweep deleted its outputs (their links are gone).
    pub outputs_deleted_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
}

impl Job {
    pub fn input_key(&self, name: &str) -> String {
        input_key(self.id, name)
    }

    pub fn output_key(&self, name: &str) -> String {
        output_key(self.id, name)
    }

    pub fn output(&self, role: OutputRole) -> Option<&JobOutput> {
        self.outputs.iter().find(|o| o.role == role)
    }
}

pub fn input_key(job: JobId, name: &str) -> String {
    format!("inputs/{job}/{name}")
}

pub fn output_key(job: JobId, name: &str) -> String {
    format!("outputs/{job}/{name}")
}

/// Limits checked in the same transaction that records a job, so that no
/// race between concurrent submissions lets two through. Each dialect states
/// its own rule as these numbers.
#[derive(Clone, Debug, Default)]
pub struct SubmitLimits {
    /// Most PENDING + PROCESSING jobs one API key may have in the new job's
    /// dialect (another dialect's jobs do not count).
    pub max_active_per_key: Option<u32>,
    /// Most PENDING + PROCESSING jobs one account may have, of every
    /// dialect, unless the account sets its own limit.
    pub max_active_per_account: Option<u32>,
}

/// Which limit of [`SubmitLimits`] refused a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    PerKey,
    PerAccount,
}

/// A page of an account's jobs, newest first. Every filter left `None`
/// lets everything through.
#[derive(Clone, Debug, Default)]
pub struct JobQuery {
    /// Only jobs older than this one (the previous page's last id).
    pub before: Option<JobId>,
    pub state: Option<JobState>,
    /// Only jobs of this model slug.
    pub model: Option<String>,
    /// Only jobs accepted by this dialect.
    pub dialect: Option<String>,
    /// Only jobs with this correlation id.
    pub correlation_id: Option<String>,
    /// Only jobs pending or processing, or finished at or after this time
    /// (what changed since then, and more).
    pub in_flight_or_finished_since: Option<Millis>,
    pub limit: u32,
}

/// Proof that a worker holds a job: the claim number it got. Every update a
/// worker makes names it, so a worker whose lease expired and whose job was
/// claimed again cannot touch the job any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub job_id: JobId,
    pub attempt: i64,
    pub owner: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert!("pending".parse::<JobState>().is_err());
    }
}
