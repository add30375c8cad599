//! The Image+Audio Video API (seed 004): multipart image + audio in, MP4
//! out. Auth by `X-API-Key` (or `Authorization: Bearer`), one active job per
//! key, errors as `{"error": "..."}`.

mod error;
pub mod wire;

use std::path::Path;
use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use genq_catalog::kinds;
use genq_engine::db::CancelMode;
use genq_engine::{Job, JobId, JobQuery, JobState, NewJob, StagedInput, SubmitLimits};
use serde::Deserialize;
use utoipa::OpenApi;

pub use error::ApiError;
use wire::{
    Cancelled, CreateJobForm, ErrorBody, JobCreated, JobItem, JobList, JobStatus, Pagination,
    WebhookAttempt, WebhookDeliveries, WebhookDelivery,
};

use crate::dialect::{Ctx, Dialect, JobShape, Routes};
use crate::shared::auth::{self, Read, Submit};
use crate::shared::events::{job_events, EventStream};
use crate::shared::extract::values::{non_empty, PageLimit};
use crate::shared::extract::{JobPath, Query};
use crate::shared::idempotency::{submit_and_answer, KeyInFlight};
use crate::shared::openapi::{document_shared_refusals, SharedRefusals};
use crate::shared::scheduling::Scheduling;
use crate::shared::upload::{read_text, stream_file, MediaClass, Upload, UploadError};
use crate::DialectSettings;

type Authed<S> = auth::Authed<ApiError, S>;
use axum::Json;

/// The Image+Audio Video API.
pub struct VideoApi;

/// The catalog model a render of this dialect is: an account or key limited
/// to other models may not render here either.
pub const RENDER_MODEL: &str = "genq/image-audio-to-video";

pub struct VideoApiState {
    /// What one render costs, reserved at submission and refunded if it
    /// fails or is cancelled (`--video-price-micro-cents`, default 0).
    price_micro_cents: i64,
}

impl Dialect for VideoApi {
    const NAME: &'static str = "video";
    const SCOPES: &'static [&'static str] = &[auth::SUBMIT_JOB, auth::CHECK_STATUS];
    const PREFIXES: &'static [&'static str] = &["/api"];
    type Error = ApiError;
    type State = VideoApiState;

    fn state(settings: &DialectSettings) -> VideoApiState {
        VideoApiState {
            price_micro_cents: settings.video_price_micro_cents,
        }
    }

    fn routes(routes: Routes<Self>, settings: &DialectSettings) -> Routes<Self> {
        // Two files at the per-file limit plus room for the form's other
        // parts; each file is also cut off on its own at the limit.
        let body_limit = (2 * settings.max_upload_bytes + 1_048_576) as usize;
        routes
            .submit(
                "/api/jobs",
                post(create_job).layer(DefaultBodyLimit::max(body_limit)),
            )
            .route("/api/jobs", get(list_jobs))
            .route("/api/status/{job_id}", get(job_status))
            .route("/api/jobs/{job_id}/events", get(job_status_events))
            .route("/api/jobs/{job_id}/cancel", post(cancel_job))
            .route("/api/jobs/{job_id}", delete(cancel_job))
            .route("/api/jobs/{job_id}/webhooks", get(job_webhooks))
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = VideoApiDoc::openapi();
        document_shared_refusals(
            &mut doc,
            &SharedRefusals {
                unauthorized: "No or an unknown X-API-Key: {\"error\": \"…\"}",
                forbidden: "The key lacks the route's scope: {\"error\": \"…\"}",
                bad_request: "A malformed query or body: {\"error\": \"…\"} naming the field",
                not_found: "No such job of the caller's: {\"error\": \"Job not found\"}",
                rate_limited: "Rate limited: {\"error\": \"…\"}",
                error_schema: "ErrorBody",
            },
        );
        doc
    }

    fn shape(public_url: Arc<str>, _: &DialectSettings) -> Arc<dyn JobShape> {
        Arc::new(VideoShape { public_url })
    }
}

/// This dialect's view of a job: its status names are the engine's, its
/// body is `GET /api/status/{jobId}`'s.
struct VideoShape {
    public_url: Arc<str>,
}

impl JobShape for VideoShape {
    fn status(&self, state: JobState) -> &'static str {
        state.as_str()
    }

    /// Seed 004 cancels only jobs that have not started.
    fn cancel_mode(&self) -> CancelMode {
        CancelMode::PendingOnly
    }

    fn body(&self, job: &Job) -> serde_json::Value {
        serde_json::to_value(JobStatus::from_job(job, &self.public_url)).expect("status serializes")
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "genq — Image+Audio Video API",
        description = "Generate videos from a single image and an audio file."
    ),
    paths(
        create_job,
        list_jobs,
        job_status,
        job_status_events,
        cancel_job,
        cancel_job_by_delete,
        job_webhooks
    ),
    components(schemas(
        JobCreated,
        JobItem,
        JobList,
        Pagination,
        JobStatus,
        Cancelled,
        ErrorBody,
        CreateJobForm,
        WebhookDeliveries,
        WebhookDelivery,
        WebhookAttempt,
    ))
)]
struct VideoApiDoc;

/// One of the caller's jobs of this dialect; any other is not found.
async fn own_job(
    ctx: &Ctx<VideoApi>,
    principal: &genq_engine::Principal,
    id: JobId,
) -> Result<Job, ApiError> {
    let job = ctx.app.engine.job(principal, id).await?;
    if job.dialect != VideoApi::NAME {
        return Err(ApiError::not_found());
    }
    Ok(job)
}

/// Submit a video generation job.
#[utoipa::path(
    post, path = "/api/jobs",
    request_body(content = CreateJobForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = JobCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 402, body = ErrorBody, description = "INSUFFICIENT_BALANCE: renders are priced (--video-price-micro-cents) and the balance is short"),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used with a different request"),
        (status = 429, body = ErrorBody),
    ),
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters; a retry with the same key and request gets the first answer again (docs/idempotency.md)")),
    security(("api_key" = [])),
)]
async fn create_job(
    State(ctx): State<Ctx<VideoApi>>,
    auth: Authed<Submit>,
    key: Option<KeyInFlight>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<axum::response::Response, ApiError> {
    let mut multipart = multipart?;
    let form = match read_form(&mut multipart, &ctx).await {
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
        scheduling,
    } = form;
    // Checked once the body is read: a client still sending hears this
    // instead of a broken pipe (the staged uploads go when they drop).
    if !genq_catalog::may_use(&auth.principal, RENDER_MODEL) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "MODEL_ACCESS_DENIED",
            format!("This API key may not render videos: it is limited to other models than {RENDER_MODEL}"),
        ));
    }

    let new = NewJob {
        kind: kinds::IMAGE_AUDIO_VIDEO.into(),
        dialect: VideoApi::NAME.into(),
        // What was uploaded, as the renderer's input records it
        // (`genq_media::ImageAudioInput`).
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
        cost_micro_cents: ctx.own.price_micro_cents,
        // One active job per key is the seed's rule.
        limits: SubmitLimits {
            max_active_per_key: Some(1),
            max_active_per_account: None,
        },
        priority: scheduling.priority,
        timeout_seconds: scheduling.timeout_seconds,
        ..NewJob::default()
    };
    let answer = |jobs: &[Job]| JobCreated {
        message: "Job created",
        job_id: jobs[0].id.to_string(),
    };
    let (_, response) = submit_and_answer(
        &ctx.app,
        &auth.principal,
        vec![new],
        key,
        StatusCode::CREATED,
        answer,
    )
    .await?;
    // `image` and `audio` drop here: their staged files are already moved.
    Ok(response)
}

struct SubmitForm {
    image: Upload,
    audio: Upload,
    webhook_url: Option<String>,
    scheduling: Scheduling,
}

async fn read_form(multipart: &mut Multipart, ctx: &Ctx<VideoApi>) -> Result<SubmitForm, ApiError> {
    read_form_to(
        multipart,
        ctx.app.engine.staging_dir(),
        ctx.app.max_upload_bytes,
    )
    .await
}

/// The form's fields: the files streamed into `staging`, each at most
/// `limit` bytes.
async fn read_form_to(
    multipart: &mut Multipart,
    staging: &Path,
    limit: u64,
) -> Result<SubmitForm, ApiError> {
    let (mut image, mut audio, mut webhook_url): (Option<Upload>, Option<Upload>, Option<String>) =
        (None, None, None);
    let (mut priority, mut timeout_seconds) = (None, None);
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
            "priority" => priority = Some(read_integer(&mut field, "priority").await?),
            "timeoutSeconds" => {
                timeout_seconds = Some(read_integer(&mut field, "timeoutSeconds").await?)
            }
            // Unknown parts are skipped, as most form handlers do.
            _ => {}
        }
    }
    let scheduling = Scheduling::check(priority, timeout_seconds, ["priority", "timeoutSeconds"])
        .map_err(|e| ApiError::bad_request(format!("Invalid field: {e}")))?;
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
        scheduling,
    })
}

/// A form field holding a whole number (`priority`, `timeoutSeconds`).
async fn read_integer(
    field: &mut axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<i64, ApiError> {
    let text = read_text(field, name, 32).await?;
    text.trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Invalid {name}: {text:?} is not an integer")))
}

/// The form reader as `create_job` calls it, for the `multipart_upload`
/// fuzz target in `fuzz/` (the `fuzzing` cargo feature): what it accepted
/// (the uploads' types and sizes), or the refusal. The body is drained
/// after a refusal, as the handler does.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub async fn fuzz_read_form(
    multipart: &mut Multipart,
    staging: &Path,
    limit: u64,
) -> Result<String, String> {
    match read_form_to(multipart, staging, limit).await {
        Ok(form) => Ok(format!(
            "image {} {}, audio {} {}, webhook {:?}",
            form.image.mime, form.image.size, form.audio.mime, form.audio.size, form.webhook_url
        )),
        Err(e) => {
            drain(multipart).await;
            Err(format!("{e:?}"))
        }
    }
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

/// `GET /api/jobs`' query.
#[derive(Deserialize)]
struct ListParams {
    #[serde(default)]
    limit: PageLimit,
    #[serde(default, deserialize_with = "non_empty")]
    cursor: Option<Cursor>,
    status: Option<StatusFilter>,
}

/// The `nextCursor` of the previous page: the last job's id.
struct Cursor(JobId);

impl TryFrom<String> for Cursor {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse().map(Cursor).map_err(|_| "Invalid cursor")
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct StatusFilter(JobState);

impl TryFrom<String> for StatusFilter {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
            .map(StatusFilter)
            .map_err(|_| "status must be one of PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED")
    }
}

/// List your jobs, newest first.
#[utoipa::path(
    get, path = "/api/jobs",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1–100. Default 20."),
        ("cursor" = Option<String>, Query, description = "The nextCursor from the previous response."),
        ("status" = Option<String>, Query, description = "PENDING, PROCESSING, COMPLETED, FAILED or CANCELLED."),
    ),
    responses(
        (status = 200, body = JobList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
async fn list_jobs(
    State(ctx): State<Ctx<VideoApi>>,
    auth: Authed<Read>,
    Query(params, _): Query<ListParams, ApiError>,
) -> Result<Json<JobList>, ApiError> {
    let limit = params.limit.0;
    let query = JobQuery {
        before: params.cursor.map(|c| c.0),
        state: params.status.map(|s| s.0),
        dialect: Some(VideoApi::NAME.into()),
        limit,
        ..JobQuery::default()
    };
    let (jobs, has_next_page) =
        crate::shared::page_of_jobs(&ctx.app.engine, &auth.principal, query).await?;
    let next_cursor = if has_next_page {
        jobs.last().map(|j| j.id.to_string())
    } else {
        None
    };
    Ok(Json(JobList {
        jobs: jobs
            .iter()
            .map(|j| JobItem::from_job(j, &ctx.app.public_url))
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
    responses(
        (status = 200, body = JobStatus), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
async fn job_status(
    State(ctx): State<Ctx<VideoApi>>,
    auth: Authed<Read>,
    JobPath(id, _): JobPath<ApiError>,
) -> Result<Json<JobStatus>, ApiError> {
    let job = own_job(&ctx, &auth.principal, id).await?;
    Ok(Json(JobStatus::from_job(&job, &ctx.app.public_url)))
}

/// Follow one job live (Server-Sent Events): its status now, then every
/// change, until it is COMPLETED, FAILED or CANCELLED.
#[utoipa::path(
    get, path = "/api/jobs/{jobId}/events",
    params(
        ("jobId" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "Sent by a reconnecting client; the current status comes first either way."),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", description = "`event:` PENDING, PROCESSING, COMPLETED, FAILED or CANCELLED; `data:` the GET /api/status/{jobId} body at that moment; `id:` the time of the change. A `: keep-alive` comment every 15 s."),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
async fn job_status_events(
    State(ctx): State<Ctx<VideoApi>>,
    auth: Authed<Read>,
    JobPath(id, _): JobPath<ApiError>,
) -> Result<EventStream, ApiError> {
    Ok(job_events(&ctx.app, auth.principal, VideoApi::NAME, id).await?)
}

/// Cancel a PENDING job (also `DELETE /api/jobs/{jobId}`).
#[utoipa::path(
    post, path = "/api/jobs/{jobId}/cancel",
    params(("jobId" = String, Path)),
    responses(
        (status = 200, body = Cancelled), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
async fn cancel_job(
    State(ctx): State<Ctx<VideoApi>>,
    auth: Authed<Submit>,
    JobPath(id, _): JobPath<ApiError>,
) -> Result<Json<Cancelled>, ApiError> {
    ctx.app
        .engine
        .cancel(
            &auth.principal,
            id,
            Some(VideoApi::NAME),
            CancelMode::PendingOnly,
        )
        .await?;
    Ok(Json(Cancelled {
        success: true,
        message: "Job cancelled successfully",
    }))
}

/// Cancel a PENDING job: the same as `POST /api/jobs/{jobId}/cancel`
/// (this route is that handler; the function only carries the
/// annotation).
#[utoipa::path(
    delete, path = "/api/jobs/{jobId}",
    params(("jobId" = String, Path)),
    responses(
        (status = 200, body = Cancelled), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
#[allow(dead_code)]
fn cancel_job_by_delete() {}

/// The webhook deliveries of a job, with every attempt (time, status code,
/// latency, error).
#[utoipa::path(
    get, path = "/api/jobs/{jobId}/webhooks",
    params(("jobId" = String, Path)),
    responses(
        (status = 200, body = WebhookDeliveries), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
async fn job_webhooks(
    State(ctx): State<Ctx<VideoApi>>,
    auth: Authed<Read>,
    JobPath(id, _): JobPath<ApiError>,
) -> Result<Json<WebhookDeliveries>, ApiError> {
    let job = own_job(&ctx, &auth.principal, id).await?;
    let deliveries = ctx
        .app
        .engine
        .webhook_deliveries(&auth.principal, job.id)
        .await?;
    Ok(Json(WebhookDeliveries {
        webhooks: deliveries.iter().map(WebhookDelivery::from).collect(),
    }))
}
