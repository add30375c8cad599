//! The Jobs v1 wire shapes (seeds 000–002), field for field.

use genq_catalog::{Model, Price};
use genq_engine::time::iso8601_s;
use genq_engine::{Job, JobState, OutputRole};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::shared::media::output_url;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmitRequest {
    /// A model slug, e.g. `genq/text-to-speech`.
    pub model: String,
    /// Omitted: the latest stable version.
    pub version: Option<String>,
    /// Model-specific input; see `GET /v1/models`.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    pub webhook_url: Option<String>,
    /// A genq addition: orders this account's own pending jobs, higher
    /// first (-10 to 10, default 0); other accounts' turns are unchanged.
    #[schema(minimum = -10, maximum = 10)]
    pub priority: Option<i64>,
    /// A genq addition: the job fails with `DEADLINE_EXCEEDED` (refunded)
    /// unless it has finished this many seconds after submission.
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_seconds: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Submitted {
    pub job_id: String,
    pub request_id: String,
    #[schema(example = "pending")]
    pub status: &'static str,
    pub estimated_completion_time: String,
    pub cost_micro_cents: i64,
}

pub fn status_name(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "pending",
        JobState::Processing => "processing",
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

pub fn parse_status(name: &str) -> Option<JobState> {
    JobState::ALL.into_iter().find(|s| status_name(*s) == name)
}

fn progress(job: &Job) -> u8 {
    match job.state {
        JobState::Pending | JobState::Failed | JobState::Cancelled => 0,
        JobState::Processing => job.progress,
        JobState::Completed => 100,
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputItem {
    pub url: String,
    #[schema(value_type = String, example = "video")]
    pub r#type: genq_engine::OutputKind,
    pub thumbnail: Option<String>,
    pub poster_image: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JobErrorBody {
    pub code: String,
    pub message: String,
}

/// `GET /v1/jobs/{jobId}`, and the body of this dialect's webhooks.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub job_id: String,
    #[schema(example = "completed")]
    pub status: &'static str,
    pub progress: u8,
    pub output: Option<String>,
    pub outputs: Option<Vec<OutputItem>>,
    pub error: Option<JobErrorBody>,
    pub created_at: String,
    pub completed_at: Option<String>,
    /// A genq addition, present once the outputs were deleted after the
    /// output retention period (`output` and `outputs` are then null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs_expired_at: Option<String>,
}

impl JobView {
    pub fn from_job(job: &Job, public_url: &str) -> Self {
        let expired = job.outputs_deleted_at.is_some();
        let outputs = (job.state == JobState::Completed && !expired).then(|| {
            let preview = |role| output_url(public_url, job, role);
            job.outputs
                .iter()
                .filter(|o| o.role == OutputRole::Main)
                .map(|o| OutputItem {
                    url: format!("{public_url}/media/{}/{}", job.media_token, o.name),
                    r#type: o.kind,
                    thumbnail: preview(OutputRole::Thumbnail),
                    poster_image: preview(OutputRole::Poster),
                })
                .collect::<Vec<_>>()
        });
        let error = (job.state == JobState::Failed).then(|| {
            let failure = job.failure.clone().unwrap_or_else(|| {
                genq_engine::JobFailure::new("GENERATION_FAILED", "The job failed.")
            });
            let message = if job.cost_micro_cents > 0 {
                refunded(&failure.message)
            } else {
                failure.message
            };
            JobErrorBody {
                code: failure.code,
                message,
            }
        });
        Self {
            job_id: job.id.to_string(),
            status: status_name(job.state),
            progress: progress(job),
            output: outputs
                .as_ref()
                .and_then(|o| o.first())
                .map(|o| o.url.clone()),
            outputs,
            error,
            created_at: iso8601_s(job.created_at),
            completed_at: job.completed_at.map(iso8601_s),
            outputs_expired_at: job.outputs_deleted_at.map(iso8601_s),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobListItem {
    pub job_id: String,
    pub status: &'static str,
    pub progress: u8,
    pub model: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

impl JobListItem {
    pub fn from_job(job: &Job) -> Self {
        Self {
            job_id: job.id.to_string(),
            status: status_name(job.state),
            progress: progress(job),
            model: job.model.as_ref().map(|m| m.slug.clone()),
            created_at: iso8601_s(job.created_at),
            completed_at: job.completed_at.map(iso8601_s),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
// Not `JobList`: the Image+Audio Video API has one, and merged documents
// keep the first of two schemas with one name.
#[schema(as = V1JobList)]
pub struct JobList {
    pub jobs: Vec<JobListItem>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    pub id: String,
    pub stable: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PriceView {
    #[serde(rename_all = "camelCase")]
    Flat { micro_cents: i64 },
    #[serde(rename_all = "camelCase")]
    PerSecond {
        micro_cents_per_second: i64,
        seconds_from: String,
    },
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    pub slug: String,
    pub description: String,
    pub versions: Vec<VersionView>,
    pub latest_version: String,
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
    pub price: PriceView,
    #[schema(value_type = String, example = "video")]
    pub output_type: genq_engine::OutputKind,
}

impl From<&Model> for ModelView {
    fn from(model: &Model) -> Self {
        Self {
            slug: model.slug.clone(),
            description: model.description.clone(),
            versions: model
                .versions
                .iter()
                .map(|v| VersionView {
                    id: v.id.clone(),
                    stable: v.stable,
                })
                .collect(),
            latest_version: model.latest_stable().id.clone(),
            input_schema: model.input_schema.clone(),
            price: match &model.price {
                Price::Flat(micro_cents) => PriceView::Flat {
                    micro_cents: *micro_cents,
                },
                Price::PerSecond {
                    micro_cents,
                    seconds_from,
                    ..
                } => PriceView::PerSecond {
                    micro_cents_per_second: *micro_cents,
                    seconds_from: seconds_from.clone(),
                },
            },
            output_type: model.output,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub account_id: String,
    pub name: String,
    pub balance_micro_cents: i64,
    pub concurrency_limit: u32,
    pub active_jobs: u64,
}

/// A failure's message with the refund said after it, as a sentence of its
/// own: renderers' messages (`image could not be decoded: …`) end without a
/// full stop.
fn refunded(message: &str) -> String {
    let message = message.trim_end();
    let stop = if message.is_empty() || message.ends_with(['.', '!', '?', '…']) {
        ""
    } else {
        "."
    };
    format!("{message}{stop} Credits have been refunded.")
        .trim_start()
        .to_owned()
}

#[cfg(test)]
mod refund_tests {
    use super::refunded;

    #[test]
    fn the_refund_is_a_sentence_of_its_own() {
        assert_eq!(
            refunded("image could not be decoded: truncated"),
            "image could not be decoded: truncated. Credits have been refunded."
        );
        assert_eq!(
            refunded("The model failed. "),
            "The model failed. Credits have been refunded."
        );
        assert_eq!(refunded(""), "Credits have been refunded.");
    }
}

/// The error shape of every refusal: `{"error": {"code", "message"},
/// "requestId"}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct V1ErrorBody {
    pub error: V1ErrorDetail,
    pub request_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct V1ErrorDetail {
    #[schema(example = "INVALID_INPUT")]
    pub code: String,
    pub message: String,
}
