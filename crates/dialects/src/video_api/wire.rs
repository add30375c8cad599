//! The seed-004 wire shapes, field for field.

use genq_engine::time::iso8601_ms;
use genq_engine::webhook::DeliveryRecord;
use genq_engine::{Job, JobState, OutputRole};
use serde::Serialize;
use utoipa::ToSchema;

use crate::shared::media::{output_url, share_url};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCreated {
    #[schema(example = "Job created")]
    pub message: &'static str,
    pub job_id: String,
}

/// One job in a list.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobItem {
    pub id: String,
    #[schema(value_type = String, example = "COMPLETED")]
    pub status: &'static str,
    pub output_video: Option<String>,
    pub output_share_link: Option<String>,
    pub error_message: Option<String>,
    pub retries: u32,
    #[schema(example = "2026-05-07T12:34:56.000Z")]
    pub created_at: String,
    pub updated_at: String,
    pub webhook_url: Option<String>,
}

impl JobItem {
    pub fn from_job(job: &Job, public_url: &str) -> Self {
        Self {
            id: job.id.to_string(),
            status: job.state.as_str(),
            output_video: output_url(public_url, job, OutputRole::Main),
            output_share_link: share_url(public_url, job),
            error_message: error_message(job),
            retries: job.retries,
            created_at: iso8601_ms(job.created_at),
            updated_at: iso8601_ms(job.updated_at),
            webhook_url: job.webhook_url.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub limit: u32,
    pub next_cursor: Option<String>,
    pub has_next_page: bool,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobItem>,
    pub pagination: Pagination,
}

/// `GET /api/status/:jobId`, and the body of this dialect's webhooks.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub job_id: String,
    #[schema(value_type = String, example = "PROCESSING")]
    pub status: &'static str,
    /// 0–100, from the renderer's real progress.
    pub progress: u8,
    pub output_video: Option<String>,
    pub output_share_link: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// A genq addition, present once the outputs were deleted after the
    /// output retention period (`outputVideo` and `outputShareLink` are null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs_expired_at: Option<String>,
}

impl JobStatus {
    pub fn from_job(job: &Job, public_url: &str) -> Self {
        Self {
            job_id: job.id.to_string(),
            status: job.state.as_str(),
            progress: match job.state {
                JobState::Pending => 0,
                JobState::Completed => 100,
                _ => job.progress,
            },
            output_video: output_url(public_url, job, OutputRole::Main),
            output_share_link: share_url(public_url, job),
            error_message: error_message(job),
            created_at: iso8601_ms(job.created_at),
            updated_at: iso8601_ms(job.updated_at),
            outputs_expired_at: job.outputs_deleted_at.map(iso8601_ms),
        }
    }
}

fn error_message(job: &Job) -> Option<String> {
    (job.state == JobState::Failed)
        .then(|| job.failure.as_ref().map(|f| f.message.clone()))
        .flatten()
}

#[derive(Serialize, ToSchema)]
pub struct Cancelled {
    pub success: bool,
    #[schema(example = "Job cancelled successfully")]
    pub message: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// The multipart form of `POST /api/jobs` (for the OpenAPI document).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = CreateJobForm)]
#[serde(rename_all = "camelCase")]
pub struct CreateJobForm {
    /// JPEG, PNG or WebP; at most 50 MB.
    #[schema(value_type = String, format = Binary)]
    pub image: Vec<u8>,
    /// MP3, WAV, M4A or OGG; at most 50 MB.
    #[schema(value_type = String, format = Binary)]
    pub audio: Vec<u8>,
    /// HTTPS URL that receives a signed callback when the job finishes.
    pub webhook_url: Option<String>,
    /// A genq addition: orders this account's own pending jobs, higher
    /// first (-10 to 10, default 0); other accounts' turns are unchanged.
    #[schema(minimum = -10, maximum = 10)]
    pub priority: Option<i64>,
    /// A genq addition: the job fails (`error` says the deadline passed)
    /// unless it has finished this many seconds after submission.
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_seconds: Option<i64>,
}

/// One try at delivering a webhook.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAttempt {
    pub attempted_at: String,
    /// The receiver's status code; null when it could not be reached.
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// A webhook a job owes (genq extension: the seed does not list deliveries).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// The `webhook-id` header, the same on every attempt.
    pub id: String,
    pub url: String,
    #[schema(example = "job.completed")]
    pub event: String,
    #[schema(value_type = String, example = "DELIVERED")]
    pub status: &'static str,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub attempts: Vec<WebhookAttempt>,
}

impl From<&DeliveryRecord> for WebhookDelivery {
    fn from(d: &DeliveryRecord) -> Self {
        Self {
            id: d.id.clone(),
            url: d.url.clone(),
            event: d.event.clone(),
            status: d.state.as_str(),
            next_attempt_at: d.next_attempt_at.map(iso8601_ms),
            created_at: iso8601_ms(d.created_at),
            delivered_at: d.delivered_at.map(iso8601_ms),
            attempts: d
                .attempts
                .iter()
                .map(|a| WebhookAttempt {
                    attempted_at: iso8601_ms(a.attempted_at),
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: a.error.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDeliveries {
    pub webhooks: Vec<WebhookDelivery>,
}
