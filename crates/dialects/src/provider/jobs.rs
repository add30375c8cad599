//! Jobs: `POST /jobs/v2` (template renders) and `GET /jobs/{id}`, the job
//! record as the vendor stores it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genq_engine::time::now_ms;
use genq_engine::{Job, JobId, NewJob, ProjectId, SubmitLimits};
use genq_template::{is_fetchable_url, ProjectType, Values};
use serde_json::{json, Map, Value};

use super::error::ProviderError;
use super::projects::template_of;
use super::steps;
use super::{Authed, Provider, ProviderState};
use crate::dialect::Ctx;
use crate::shared::auth::{Read, Submit};
use crate::shared::extract::{Json, JsonText, PathId};
use crate::shared::idempotency::{submit_and_answer, KeyInFlight};
use crate::shared::scheduling::Scheduling;
use crate::shared::{cancel_and_wait, validate_webhook_url};

/// The engine's job kind of template renders (the media crate's renderer).
pub const TEMPLATE_KIND: &str = "template";
const MAX_SESSION_ID_BYTES: usize = genq_engine::job::MAX_CORRELATION_ID_BYTES;

/// Queue a project-backed job.
#[utoipa::path(post, path = "/jobs/v2",
    request_body(content = Object, description = "job_type (video, image, pdf, tts, photo_qc, ai_talking_video, ai_image_generation), template_id (or project_id), values, version, session_id, webhook_url, format, background_music, background_volume, background_start, background_ducking, priority (-10 to 10), timeout_seconds (docs/scheduling.md); tts: voice, language, speed; ai_talking_video: image_url, audio_url and the model's own options (docs/provider.md). Any other field is kept in the job's input"),
    responses((status = 201, description = "{\"message\": \"Job update accepted and processing.\", \"job\": {…}}", body = Object),
        (status = 400, description = "The project cannot be resolved, is of another type, names a model the catalog lacks, needs an image model none is configured for, or a field is invalid; the message names it"),
        (status = 402, description = "The account's credits do not cover the job"),
        (status = 409, description = "A request with this Idempotency-Key is still being processed"),
        (status = 422, description = "The Idempotency-Key was used with a different request")),
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters; a retry with the same key and request gets the first answer again (docs/idempotency.md)")),
    security(("api_key" = [])))]
pub(super) async fn submit(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Submit>,
    key: Option<KeyInFlight>,
    JsonText(body, _): JsonText<ProviderError>,
) -> Result<Response, ProviderError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ProviderError::bad_request(format!("The body is not valid JSON: {e}")))?;
    let Value::Object(fields) = &request else {
        return Err(ProviderError::bad_request("The body must be a JSON object"));
    };
    let job_type = job_type(fields)?;
    let account = auth.principal.account_id;
    let (project_id, field) = project_reference(fields)?;
    let unresolved = || {
        ProviderError::bad_request(format!(
            "{field} {project_id} could not be resolved to a project"
        ))
    };
    let project_id: ProjectId = project_id.parse().map_err(|_| unresolved())?;
    let project = match ctx.app.engine.project(account, project_id).await {
        Ok(project) => project,
        Err(genq_engine::EngineError::ProjectNotFound) => return Err(unresolved()),
        Err(e) => return Err(e.into()),
    };
    if !project.active_at(now_ms()) {
        return Err(ProviderError::bad_request(format!(
            "{field} {project_id}: the project is not active now (see its startDate and endDate)"
        )));
    }
    let template = template_of(&project)?;
    // A drawn template draws to any of video, image and PDF; the other job
    // types read parts of the template only their own projects have.
    let drawn = |t: ProjectType| {
        matches!(
            t,
            ProjectType::Video | ProjectType::Image | ProjectType::Pdf
        )
    };
    if template.project_type != job_type && !(drawn(template.project_type) && drawn(job_type)) {
        return Err(ProviderError::bad_request(format!(
            "{field} {project_id} is a {} project; it cannot run a {} job",
            template.project_type.as_str(),
            job_type.as_str()
        )));
    }
    let merged = match job_type {
        ProjectType::AiTalkingVideo => steps::merge_talking_urls(&template, fields)?,
        _ => None,
    };
    let mut values = Values::check(&template, merged.as_ref().or(fields.get("values")))
        .map_err(|e| ProviderError::bad_request(e.to_string()))?;
    let step = steps::step_input(job_type, &template, &mut values, fields, &ctx.own)?;
    let background_music = background_music(fields)?;
    number_field(fields, "version", None)?;
    let session_id = match fields.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_SESSION_ID_BYTES => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(ProviderError::bad_request(format!(
                "session_id must be at most {MAX_SESSION_ID_BYTES} bytes"
            )))
        }
        Some(_) => return Err(ProviderError::bad_request("session_id must be a string")),
    };
    let scheduling = Scheduling::check(
        integer_field(fields, "priority")?,
        integer_field(fields, "timeout_seconds")?,
        ["priority", "timeout_seconds"],
    )
    .map_err(ProviderError::bad_request)?;
    let webhook_url = match fields.get("webhook_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => Some(
            validate_webhook_url(url)
                .map_err(|why| ProviderError::bad_request(format!("webhook_url: {why}")))?,
        ),
        Some(_) => return Err(ProviderError::bad_request("webhook_url must be a string")),
    };
    let picture_type = match fields.get("format") {
        None | Some(Value::Null) => "png",
        Some(Value::String(f)) if f == "png" => "png",
        Some(Value::String(f)) if f == "jpg" || f == "jpeg" => "jpg",
        Some(_) => {
            return Err(ProviderError::bad_request(
                "format must be \"png\" or \"jpg\"",
            ))
        }
    };
    let own = &ctx.own;
    let credits = own.prices.price(job_type);
    let mut input = json!({
        "output": renderer_output(job_type),
        "template": template,
        "values": values,
        "picture_type": picture_type,
        "background_music": background_music,
        "dialect": {
            "request": request,
            "template_id": project.id.to_string(),
            "job_type": job_type.as_str(),
        },
    });
    input.as_object_mut().expect("an object").extend(step);
    let new = NewJob {
        kind: TEMPLATE_KIND.into(),
        dialect: <Provider as crate::Dialect>::NAME.into(),
        input,
        webhook_url,
        cost_micro_cents: credits_to_micro_cents(credits, own),
        limits: SubmitLimits {
            max_active_per_key: None,
            max_active_per_account: Some(own.max_concurrent_jobs),
        },
        correlation_id: session_id,
        priority: scheduling.priority,
        timeout_seconds: scheduling.timeout_seconds,
        ..NewJob::default()
    };
    let credit = own.credit_micro_cents;
    let answer = move |jobs: &[Job]| {
        json!({
            "message": "Job update accepted and processing.",
            "job": super::job_record(&jobs[0], credit),
        })
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
    Ok(response)
}

fn credits_to_micro_cents(credits: f64, own: &ProviderState) -> i64 {
    (credits * own.credit_micro_cents as f64).round() as i64
}

fn job_type(fields: &Map<String, Value>) -> Result<ProjectType, ProviderError> {
    let names = ProjectType::ALL.map(ProjectType::as_str).join(", ");
    let name = match fields.get("job_type") {
        Some(Value::String(name)) => name,
        None | Some(Value::Null) => {
            return Err(ProviderError::bad_request(format!(
                "job_type is required (one of {names})"
            )))
        }
        Some(_) => return Err(ProviderError::bad_request("job_type must be a string")),
    };
    ProjectType::parse(name).ok_or_else(|| {
        ProviderError::bad_request(format!("job_type must be one of {names}, not {name:?}"))
    })
}

/// What the template renderer makes of a job type.
fn renderer_output(job_type: ProjectType) -> &'static str {
    match job_type {
        ProjectType::Video => "video",
        ProjectType::Image => "image",
        ProjectType::Pdf => "pdf",
        ProjectType::Tts => "speech",
        ProjectType::PhotoQc => "photo_qc",
        ProjectType::AiTalkingVideo => "talking_video",
        ProjectType::AiImageGeneration => "generated_image",
    }
}

/// `template_id`, else `project_id`, and which field named it.
fn project_reference(fields: &Map<String, Value>) -> Result<(String, &'static str), ProviderError> {
    for field in ["template_id", "project_id"] {
        match fields.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::String(id)) => return Ok((id.clone(), field)),
            Some(_) => {
                return Err(ProviderError::bad_request(format!(
                    "{field} must be a string"
                )))
            }
        }
    }
    Err(ProviderError::bad_request(
        "template_id (or project_id) is required",
    ))
}

/// A number field within `range`, if present.
/// A whole number, or None when absent or null.
fn integer_field(fields: &Map<String, Value>, name: &str) -> Result<Option<i64>, ProviderError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(_) => Err(ProviderError::bad_request(format!(
            "{name} must be an integer"
        ))),
    }
}

pub(super) fn number_field(
    fields: &Map<String, Value>,
    name: &str,
    range: Option<(f64, f64)>,
) -> Result<Option<f64>, ProviderError> {
    let value = match fields.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => {
            return Err(ProviderError::bad_request(format!(
                "{name} must be a number"
            )))
        }
    };
    if let Some((low, high)) = range {
        if !(low..=high).contains(&value) {
            let bound = if high.is_infinite() {
                format!("at least {low}")
            } else {
                format!("from {low} to {high}")
            };
            return Err(ProviderError::bad_request(format!(
                "{name} must be {bound}, not {value}"
            )));
        }
    }
    Ok(Some(value))
}

/// The background music fields as the renderer reads them.
fn background_music(fields: &Map<String, Value>) -> Result<Value, ProviderError> {
    let volume = number_field(fields, "background_volume", Some((0.0, 1.0)))?;
    let start = number_field(fields, "background_start", Some((0.0, f64::INFINITY)))?;
    let ducking = match fields.get("background_ducking") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(on)) => *on,
        Some(_) => {
            return Err(ProviderError::bad_request(
                "background_ducking must be true or false",
            ))
        }
    };
    let url = match fields.get("background_music") {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(Value::String(url)) if is_fetchable_url(url) => url,
        Some(Value::String(_)) => {
            return Err(ProviderError::bad_request(
                "background_music must be an http(s) or data: URL",
            ))
        }
        Some(_) => {
            return Err(ProviderError::bad_request(
                "background_music must be a URL or null",
            ))
        }
    };
    let mut music = json!({"url": url, "ducking": ducking});
    if let Some(volume) = volume {
        music["volume"] = json!(volume);
    }
    if let Some(start) = start {
        music["start"] = json!(start);
    }
    Ok(music)
}

/// One of the caller's jobs of this dialect.
pub(super) async fn own_job(
    ctx: &Ctx<Provider>,
    principal: &genq_engine::Principal,
    id: JobId,
) -> Result<Option<Job>, ProviderError> {
    match ctx.app.engine.job(principal, id).await {
        Ok(job) if job.dialect == <Provider as crate::Dialect>::NAME => Ok(Some(job)),
        Ok(_) | Err(genq_engine::EngineError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The job record. An unknown job, or another account's, is a 200 with
/// `{"message": "Job not found"}`, as the vendor's API answers.
#[utoipa::path(get, path = "/jobs/{id}",
    params(("id" = String, Path, description = "The job's uuid")),
    responses((status = 200, description = "The job record, or {\"message\": \"Job not found\"}", body = Object)),
    security(("api_key" = [])))]
pub(super) async fn status(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Read>,
    id: Result<PathId<JobId, ProviderError>, ProviderError>,
) -> Result<axum::Json<Value>, ProviderError> {
    let not_found = || axum::Json(json!({"message": "Job not found"}));
    let Ok(PathId(id, _)) = id else {
        return Ok(not_found());
    };
    Ok(match own_job(&ctx, &auth.principal, id).await? {
        Some(job) => axum::Json(super::job_record(&job, ctx.own.credit_micro_cents)),
        None => not_found(),
    })
}

/// Cancels one of the caller's jobs (a genq addition: the vendor's API has
/// no cancel): a queued one at once, a running one by stopping its work —
/// a model's prediction included. Its credits are refunded.
#[utoipa::path(post, path = "/jobs/{id}/cancel",
    params(("id" = String, Path, description = "The job's uuid")),
    responses((status = 200, description = "The job record, CANCELLED (or still IN_PROGRESS if it has not stopped within 10 s)", body = Object),
        (status = 404, description = "Not the caller's job"),
        (status = 409, description = "The job has already finished")),
    security(("api_key" = [])))]
pub(super) async fn cancel(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Submit>,
    id: Result<PathId<JobId, ProviderError>, ProviderError>,
) -> Result<axum::Json<Value>, ProviderError> {
    let Ok(PathId(id, _)) = id else {
        return Err(ProviderError::not_found("Job not found"));
    };
    let job = cancel_and_wait(
        &ctx.app.engine,
        &auth.principal,
        id,
        <Provider as crate::Dialect>::NAME,
    )
    .await?;
    Ok(axum::Json(super::job_record(
        &job,
        ctx.own.credit_micro_cents,
    )))
}

/// At most this many jobs per trigger.
const MAX_TRIGGERED: usize = 100;

#[derive(serde::Deserialize)]
pub(super) struct TriggerRequest {
    ids: Vec<String>,
}

/// Puts the caller's jobs back on the queue: a SUCCESS or FAILED job runs
/// again and is charged again; one queued or running is left alone. If any
/// id is not the caller's job, none is queued again.
#[utoipa::path(post, path = "/jobs/trigger-job",
    request_body(content = Object, description = "{\"ids\": [\"…\"]}"),
    responses((status = 201, description = "{\"message\": \"Job triggered\"}", body = Object),
        (status = 404, description = "{\"message\": \"No job found\"}: an id is not the caller's job"),
        (status = 400, description = "ids missing, empty or over 100, or a job's inputs were deleted after the input retention period"),
        (status = 402, description = "The account's credits do not cover the new runs"),
        (status = 409, description = "A request with this Idempotency-Key is still being processed"),
        (status = 422, description = "The Idempotency-Key was used with a different request")),
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters; a retry with the same key and request gets the first answer again (docs/idempotency.md)")),
    security(("api_key" = [])))]
pub(super) async fn trigger(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Submit>,
    Json(request, _): Json<TriggerRequest, ProviderError>,
) -> Result<Response, ProviderError> {
    if request.ids.is_empty() || request.ids.len() > MAX_TRIGGERED {
        return Err(ProviderError::bad_request(format!(
            "ids must list 1 to {MAX_TRIGGERED} job ids"
        )));
    }
    let no_job = || ProviderError::body(StatusCode::NOT_FOUND, json!({"message": "No job found"}));
    let ids: Vec<JobId> = request
        .ids
        .iter()
        .map(|id| id.parse().map_err(|_| no_job()))
        .collect::<Result<_, _>>()?;
    match ctx
        .app
        .engine
        .requeue(
            &auth.principal,
            &ids,
            Some(<Provider as crate::Dialect>::NAME),
        )
        .await
    {
        Ok(_) => Ok((
            StatusCode::CREATED,
            axum::Json(json!({"message": "Job triggered"})),
        )
            .into_response()),
        Err(genq_engine::EngineError::NotFound) => Err(no_job()),
        Err(e) => Err(e.into()),
    }
}
