//! The Image+Audio Video dialect (seed 004): multipart image + audio in, MP4
//! out. Auth by `X-API-Key` (or `Authorization: Bearer`), one active job per
//! key, errors as `{"error": "..."}`.

mod error;
pub mod wire;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use genq_engine::{JobId, JobQuery, JobState, NewJob, StagedInput, SubmitLimits};
use std::collections::HashMap;
use utoipa::OpenApi;

pub use error::ApiError;
use wire::{
    Cancelled, CreateJobForm, ErrorBody, JobCreated, JobItem, JobList, JobStatus, Pagination,
    WebhookAttempt, WebhookDeliveries, WebhookDelivery,
};

use crate::shared::auth::authenticate;
use crate::shared::upload::{read_text, stream_file, MediaClass, Upload, UploadError};
use crate::AppState;

/// The engine job kind this dialect submits.
pub const JOB_KIND: &str = genq_engine::job::kinds::IMAGE_AUDIO_VIDEO;
/// Names this dialect on the jobs it creates (it renders their webhooks).
pub const DIALECT: &str = "video";

pub fn routes(state: &AppState) -> Router<AppState> {
    // Two files at the per-file limit plus room for the form's other parts;
    // each file is also cut off on its own at the limit.
    let body_limit = (2 * state.max_upload_bytes + 1_048_576) as usize;
    Router::new()
        .route(
            "/api/jobs",
            post(create_job)
                .layer(DefaultBodyLimit::max(body_limit))
                .get(list_jobs),
        )
        .route("/api/status/{job_id}", get(job_status))
        .route("/api/jobs/{job_id}/cancel", post(cancel_job))
        .route("/api/jobs/{job_id}", axum::routing::delete(cancel_job))
        .route("/api/jobs/{job_id}/webhooks", get(job_webhooks))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "genq — Image+Audio Video API", description = "Generate videos from a single image and an audio file."),
    paths(create_job, list_jobs, job_status, cancel_job, job_webhooks),
    components(schemas(
        JobCreated, JobItem, JobList, Pagination, JobStatus, Cancelled, ErrorBody, CreateJobForm,
        WebhookDeliveries, WebhookDelivery, WebhookAttempt,
    )),
    modifiers(&ApiKeyAuth),
)]
struct VideoApi;

struct ApiKeyAuth;

impl utoipa::Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    VideoApi::openapi()
}

fn parse_job_id(raw: &str) -> Result<JobId, ApiError> {
    // A malformed id names no job of the caller's.
    raw.parse().map_err(|_| ApiError::not_found())
}

/// Submit a video generation job.
#[utoipa::path(
    post, path = "/api/jobs",
    request_body(content = CreateJobForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = JobCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
async fn create_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<JobCreated>), ApiError> {
    let principal = authenticate(&state.engine, &headers).await?;
    let mut multipart = multipart?;
    let form = match read_form(&mut multipart, &state).await {
        Ok(form) => form,
        Err(e) => {
            // Read (and discard) the rest of the body before answering, so the
            // client, still sending, gets our status instead of a broken pipe.
            drain(&mut multipart).await;
            return Err(e);
        }
    };
    let SubmitForm {
        image,
        audio,
        webhook_url,
    } = form;

    let new = NewJob {
        kind: JOB_KIND.into(),
        dialect: DIALECT.into(),
        input: serde_json::json!({
            "image": { "contentType": image.mime, "size": image.size },
            "audio": { "contentType": audio.mime, "size": audio.size },
        }),
        files: vec![
            StagedInput {
                name: "image".into(),
                path: image.path.clone(),
            },
            StagedInput {
                name: "audio".into(),
                path: audio.path.clone(),
            },
        ],
        webhook_url,
        // This dialect has no prices and no per-account limit: one active
        // job per key is its rule.
        model: None,
        cost_micro_cents: 0,
        limits: SubmitLimits {
            max_active_per_key: Some(1),
            max_active_per_account: None,
        },
    };
    let job = state.engine.submit(&principal, new).await?;
    // `image` and `audio` drop here: their staged files are already moved.
    Ok((
        StatusCode::CREATED,
        Json(JobCreated {
            message: "Job created",
            job_id: job.id.to_string(),
        }),
    ))
}

struct SubmitForm {
    image: Upload,
    audio: Upload,
    webhook_url: Option<String>,
}

async fn read_form(multipart: &mut Multipart, state: &AppState) -> Result<SubmitForm, ApiError> {
    let staging = state.engine.staging_dir();
    let limit = state.max_upload_bytes;
    let (mut image, mut audio, mut webhook_url): (Option<Upload>, Option<Upload>, Option<String>) =
        (None, None, None);
    while let Some(mut field) = multipart.next_field().await.map_err(UploadError::from)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "image" | "audio" => {
                let slot = if name == "image" {
                    &mut image
                } else {
                    &mut audio
                };
                if slot.is_some() {
                    return Err(ApiError::bad_request(format!(
                        "Field {name} was sent more than once"
                    )));
                }
                let class = if name == "image" {
                    MediaClass::Image
                } else {
                    MediaClass::Audio
                };
                *slot = Some(stream_file(&mut field, &name, class, staging, limit).await?);
            }
            "webhookUrl" => webhook_url = Some(read_text(&mut field, "webhookUrl", 2048).await?),
            // Unknown parts are skipped, as most form handlers do.
            _ => {}
        }
    }
    let image = image.ok_or_else(|| ApiError::bad_request("Missing required field: image"))?;
    let audio = audio.ok_or_else(|| ApiError::bad_request("Missing required field: audio"))?;
    let webhook_url = match webhook_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
    {
        Some(url) => Some(validate_webhook_url(&url)?),
        None => None,
    };
    Ok(SubmitForm {
        image,
        audio,
        webhook_url,
    })
}

/// Discards what is left of a multipart body (bounded by the route's body
/// limit, past which reading simply fails).
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

fn validate_webhook_url(raw: &str) -> Result<String, ApiError> {
    crate::shared::validate_webhook_url(raw)
        .map_err(|e| ApiError::bad_request(format!("Invalid webhookUrl: {e}")))
}

/// List your jobs, newest first.
#[utoipa::path(
    get, path = "/api/jobs",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1–100. Default 20."),
        ("cursor" = Option<String>, Query, description = "The nextCursor from the previous response."),
        ("status" = Option<String>, Query, description = "PENDING, PROCESSING, COMPLETED, FAILED or CANCELLED."),
    ),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])),
)]
async fn list_jobs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<JobList>, ApiError> {
    let principal = authenticate(&state.engine, &headers).await?;
    let limit = crate::shared::page_limit(params.get("limit")).map_err(ApiError::bad_request)?;
    let state_filter = match params.get("status") {
        None => None,
        Some(raw) => Some(raw.parse::<JobState>().map_err(|_| {
            ApiError::bad_request(
                "status must be one of PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED",
            )
        })?),
    };
    let before = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => Some(
            raw.parse::<JobId>()
                .map_err(|_| ApiError::bad_request("Invalid cursor"))?,
        ),
    };
    let query = JobQuery {
        before,
        state: state_filter,
        model: None,
        limit,
    };
    let (jobs, has_next_page) =
        crate::shared::page_of_jobs(&state.engine, &principal, query).await?;
    let next_cursor = if has_next_page {
        jobs.last().map(|j| j.id.to_string())
    } else {
        None
    };
    Ok(Json(JobList {
        jobs: jobs
            .iter()
            .map(|j| JobItem::from_job(j, &state.public_url))
            .collect(),
        pagination: Pagination {
            limit,
            next_cursor,
            has_next_page,
        },
    }))
}

/// Fetch one job's status and progress.
#[utoipa::path(
    get, path = "/api/status/{jobId}",
    params(("jobId" = String, Path, description = "The jobId returned when you submitted the job.")),
    responses((status = 200, body = JobStatus), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])),
)]
async fn job_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Json<JobStatus>, ApiError> {
    let principal = authenticate(&state.engine, &headers).await?;
    let job = state.engine.job(&principal, parse_job_id(&job_id)?).await?;
    Ok(Json(JobStatus::from_job(&job, &state.public_url)))
}

/// Cancel a PENDING job (also `DELETE /api/jobs/{jobId}`).
#[utoipa::path(
    post, path = "/api/jobs/{jobId}/cancel",
    params(("jobId" = String, Path)),
    responses(
        (status = 200, body = Cancelled), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
async fn cancel_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    let principal = authenticate(&state.engine, &headers).await?;
    state
        .engine
        .cancel(&principal, parse_job_id(&job_id)?)
        .await?;
    Ok(Json(Cancelled {
        success: true,
        message: "Job cancelled successfully",
    }))
}

/// The webhook deliveries of a job, with every attempt (time, status code,
/// latency, error).
#[utoipa::path(
    get, path = "/api/jobs/{jobId}/webhooks",
    params(("jobId" = String, Path)),
    responses((status = 200, body = WebhookDeliveries), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])),
)]
async fn job_webhooks(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Json<WebhookDeliveries>, ApiError> {
    let principal = authenticate(&state.engine, &headers).await?;
    let deliveries = state
        .engine
        .webhook_deliveries(&principal, parse_job_id(&job_id)?)
        .await?;
    Ok(Json(WebhookDeliveries {
        webhooks: deliveries.iter().map(WebhookDelivery::from).collect(),
    }))
}

/// This dialect's webhook body: the `GET /api/status/{jobId}` object.
pub struct StatusWebhook {
    pub public_url: std::sync::Arc<str>,
}

impl genq_engine::webhook::WebhookPayload for StatusWebhook {
    fn body(&self, job: &genq_engine::Job) -> serde_json::Value {
        serde_json::to_value(JobStatus::from_job(job, &self.public_url)).expect("status serializes")
    }
}
