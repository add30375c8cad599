//! A job's page: state, inputs, outputs, timeline, error and webhook
//! deliveries; and what can be done to it (cancel, redeliver the webhook).

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use genq_engine::webhook::DeliveryState;
use genq_engine::{Job, JobId, JobState};
use serde_json::Value;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::error::PageError;
use crate::session::{CsrfOnly, Signed};
use crate::view::{html, iso, when, JobRow, Layout, OutputView};
use crate::Console;

struct Moment {
    at: String,
    at_iso: String,
    what: String,
}

struct AttemptView {
    at: String,
    status: String,
    latency_ms: i64,
    error: String,
}

struct DeliveryView {
    id: String,
    url: String,
    state: &'static str,
    next_attempt: String,
    attempts: Vec<AttemptView>,
}

struct InputFile {
    name: String,
    url: String,
    /// `image`, `audio` or `file`.
    show_as: &'static str,
}

struct QcCheck {
    name: String,
    passed: bool,
    detail: String,
}

struct QcPhoto {
    field: String,
    size: String,
    passed: bool,
    checks: Vec<QcCheck>,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    layout: Layout,
    job: JobRow,
    input_json: String,
    input_files: Vec<InputFile>,
    webhook_url: String,
    cost: String,
    outputs: Vec<OutputView>,
    /// When the retention sweep deleted the outputs.
    outputs_expired_at: Option<String>,
    /// The video's poster frame, when it has one.
    poster: String,
    qc: Vec<QcPhoto>,
    timeline: Vec<Moment>,
    error_code: String,
    error_message: String,
    deliveries: Vec<DeliveryView>,
}

fn job_id(raw: &str) -> Result<JobId, PageError> {
    raw.parse().map_err(|_| PageError::NotFound)
}

pub(crate) async fn page(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let engine = &console.app.engine;
    let job = engine.job(&signed.principal, job_id(&id)?).await?;
    let deliveries = engine.webhook_deliveries(&signed.principal, job.id).await?;
    let page = JobPage {
        layout: signed.layout(format!("Job {}", job.id), "Jobs"),
        job: JobRow {
            progress_label: "Progress".to_owned(),
            ..JobRow::of(&console.app, &job)
        },
        input_json: serde_json::to_string_pretty(&job.input).unwrap_or_default(),
        input_files: input_files(&job),
        webhook_url: job.webhook_url.clone().unwrap_or_default(),
        cost: crate::view::dollars(job.cost_micro_cents),
        outputs: OutputView::all(&job),
        outputs_expired_at: job.outputs_deleted_at.map(genq_engine::time::iso8601_s),
        poster: job
            .output(genq_engine::OutputRole::Poster)
            .filter(|_| job.state == JobState::Completed)
            .map(|poster| format!("/media/{}/{}", job.media_token, poster.name))
            .unwrap_or_default(),
        qc: qc_report(&job),
        timeline: timeline(&job),
        error_code: job
            .failure
            .as_ref()
            .map(|f| f.code.clone())
            .unwrap_or_default(),
        error_message: job
            .failure
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_default(),
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                url: d.url,
                state: match d.state {
                    DeliveryState::Pending => "pending",
                    DeliveryState::Delivered => "delivered",
                    DeliveryState::Failed => "failed",
                },
                next_attempt: d
                    .next_attempt_at
                    .filter(|_| d.state == DeliveryState::Pending)
                    .map(when)
                    .unwrap_or_default(),
                attempts: d
                    .attempts
                    .into_iter()
                    .map(|a| AttemptView {
                        at: when(a.attempted_at),
                        status: a.status_code.map(|c| c.to_string()).unwrap_or_default(),
                        latency_ms: a.latency_ms,
                        error: a.error.unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
    };
    Ok(html(StatusCode::OK, page.render()?))
}

/// How an uploaded input is shown and served: by the type recorded with it
/// at upload (sniffed from its bytes), else by its name.
fn media_class(job: &Job, name: &str) -> (&'static str, &'static str) {
    let recorded = job
        .input
        .get(name)
        .and_then(|v| v.get("contentType"))
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let extension = name
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match (recorded, extension.as_str()) {
        ("image/png", _) | (_, "png") => ("image", "image/png"),
        ("image/jpeg", _) | (_, "jpg" | "jpeg") => ("image", "image/jpeg"),
        ("image/webp", _) | (_, "webp") => ("image", "image/webp"),
        ("audio/mpeg", _) | (_, "mp3") => ("audio", "audio/mpeg"),
        ("audio/wav" | "audio/x-wav" | "audio/wave", _) | (_, "wav") => ("audio", "audio/wav"),
        ("audio/mp4" | "audio/aac" | "audio/x-m4a", _) | (_, "m4a" | "aac") => {
            ("audio", "audio/mp4")
        }
        ("audio/ogg", _) | (_, "ogg" | "oga") => ("audio", "audio/ogg"),
        ("audio/flac" | "audio/x-flac", _) | (_, "flac") => ("audio", "audio/flac"),
        _ => ("file", "application/octet-stream"),
    }
}

fn input_files(job: &Job) -> Vec<InputFile> {
    if job.inputs_deleted_at.is_some() {
        return Vec::new();
    }
    job.input_files
        .iter()
        .map(|name| InputFile {
            url: format!("/console/jobs/{}/inputs/{name}", job.id),
            show_as: media_class(job, name).0,
            name: name.clone(),
        })
        .collect()
}

/// What happened to the job, in order, from what its row records; the page
/// adds progress as it arrives.
fn timeline(job: &Job) -> Vec<Moment> {
    let moment = |at: i64, what: String| Moment {
        at: when(at),
        at_iso: iso(at),
        what,
    };
    let mut moments = vec![moment(job.created_at, "Queued".to_owned())];
    if let Some(started) = job.started_at {
        moments.push(moment(started, "Started".to_owned()));
    }
    if job.retries > 0 {
        let times = if job.retries == 1 { "time" } else { "times" };
        moments.push(moment(
            job.started_at.unwrap_or(job.updated_at),
            format!("Retried {} {times} after a worker was lost", job.retries),
        ));
    }
    match job.state {
        JobState::Processing => moments.push(moment(
            job.updated_at,
            format!("Progress {}%", job.progress),
        )),
        JobState::Completed | JobState::Failed | JobState::Cancelled => moments.push(moment(
            job.completed_at.unwrap_or(job.updated_at),
            match job.state {
                JobState::Completed => "Finished".to_owned(),
                JobState::Failed => "Failed".to_owned(),
                _ => "Cancelled".to_owned(),
            },
        )),
        JobState::Pending => {}
    }
    moments
}

/// The photo check's report, as a checklist: each photo's checks, passed
/// or not, with what was measured.
fn qc_report(job: &Job) -> Vec<QcPhoto> {
    let Some(report) = job.outputs.iter().find_map(|o| o.details.as_ref()) else {
        return Vec::new();
    };
    let Some(photos) = report.get("photos").and_then(Value::as_array) else {
        return Vec::new();
    };
    photos
        .iter()
        .map(|photo| {
            let checks = photo
                .get("checks")
                .and_then(Value::as_object)
                .map(|checks| {
                    checks
                        .iter()
                        .map(|(name, check)| QcCheck {
                            name: name.clone(),
                            passed: check
                                .get("passed")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                            detail: check
                                .as_object()
                                .map(|fields| {
                                    fields
                                        .iter()
                                        .filter(|(k, _)| *k != "passed")
                                        .map(|(k, v)| format!("{k}: {v}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                })
                                .unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            QcPhoto {
                field: photo
                    .get("field")
                    .and_then(Value::as_str)
                    .unwrap_or("photo")
                    .to_owned(),
                size: format!(
                    "{} × {}",
                    photo.get("width").and_then(Value::as_u64).unwrap_or(0),
                    photo.get("height").and_then(Value::as_u64).unwrap_or(0)
                ),
                passed: photo
                    .get("passed")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                checks,
            }
        })
        .collect()
}

pub(crate) async fn cancel(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    form: CsrfOnly,
) -> Result<Response, PageError> {
    signed.check_csrf(form.token())?;
    let id = job_id(&id)?;
    let engine = &console.app.engine;
    let job = engine.job(&signed.principal, id).await?;
    let mode = console
        .app
        .shape_of(&job)
        .map(|shape| shape.cancel_mode())
        .ok_or(PageError::NotFound)?;
    engine
        .cancel(&signed.principal, id, Some(&job.dialect), mode)
        .await?;
    Ok(Redirect::to(&format!("/console/jobs/{id}")).into_response())
}

pub(crate) async fn redeliver(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    form: CsrfOnly,
) -> Result<Response, PageError> {
    signed.check_csrf(form.token())?;
    let id = job_id(&id)?;
    let queued = console
        .app
        .engine
        .redeliver_webhook(&signed.principal, id)
        .await?;
    if queued == 0 {
        return Err(PageError::BadRequest(
            "This job has no webhook delivery to send again yet (or one is being sent right now)."
                .to_owned(),
        ));
    }
    Ok(Redirect::to(&format!("/console/jobs/{id}#webhooks")).into_response())
}

/// One of the job's uploaded inputs, for its owner only. Served as the
/// media type its name says, never as a page (`sandbox`), so an upload
/// cannot run script on the console's origin.
pub(crate) async fn input_file(
    State(console): State<Console>,
    signed: Signed,
    Path((id, name)): Path<(String, String)>,
    request: Request,
) -> Result<Response, PageError> {
    let job = console
        .app
        .engine
        .job(&signed.principal, job_id(&id)?)
        .await?;
    if !job.input_files.contains(&name) {
        return Err(PageError::NotFound);
    }
    if job.inputs_deleted_at.is_some() {
        return Err(PageError::Gone);
    }
    let key = job.input_key(&name);
    let files = console.app.engine.files();
    let mut response = match files.local_path(&key) {
        Some(path) => match ServeFile::new(path).oneshot(request).await {
            Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                return Err(PageError::NotFound)
            }
            Ok(response) => response.map(Body::new),
            Err(infallible) => match infallible {},
        },
        None => {
            let size = files.size(&key).await.map_err(|_| PageError::NotFound)?;
            let body = files
                .read_range(&key, 0..size)
                .await
                .map_err(|e| PageError::Internal(e.to_string()))?;
            Response::new(Body::from_stream(body))
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_class(&job, &name).1),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}
