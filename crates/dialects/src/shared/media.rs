//! Output downloads, reached by unguessable tokens rather than API keys, so
//! browsers, `<video>` tags and link previews can fetch them (the share
//! page is the console's: `genq-console`'s `share.rs`).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use genq_engine::{FileStore, Job, JobState, OutputRole};
use std::ops::Range;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::AppState;

/// Where outputs are downloaded.
pub const PATH: &str = "/media/{token}/{name}";

/// Absolute URL of one of a completed job's outputs.
pub fn output_url(public_url: &str, job: &Job, role: OutputRole) -> Option<String> {
    if job.state != JobState::Completed || job.outputs_deleted_at.is_some() {
        return None;
    }
    let output = job.output(role)?;
    Some(format!(
        "{public_url}/media/{}/{}",
        job.media_token, output.name
    ))
}

/// Absolute URL of a completed job's share page.
pub fn share_url(public_url: &str, job: &Job) -> Option<String> {
    output_url(public_url, job, OutputRole::Main)?;
    Some(format!("{public_url}/share/{}", job.share_token))
}

/// 410: the output existed and was deleted by the retention sweep.
pub fn expired() -> Response {
    let body = serde_json::json!({"error": {
        "code": "OUTPUT_EXPIRED",
        "message": "This output was deleted after the output retention period.",
    }});
    (StatusCode::GONE, axum::Json(body)).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// An output of a completed job, by its unguessable token (no key), with
/// HTTP Range support.
#[utoipa::path(
    get, path = "/media/{token}/{name}",
    params(
        ("token" = String, Path, description = "The job's media token, from an output link"),
        ("name" = String, Path, description = "The output's file name"),
        ("Range" = Option<String>, Header, description = "One `bytes=A-B` range; anything else gets the whole file"),
    ),
    responses(
        (status = 200, content_type = "*/*", description = "The output as its own type (video/mp4, image/jpeg, image/png, application/pdf, audio/wav, application/json, …); `Accept-Ranges: bytes`"),
        (status = 206, content_type = "*/*", description = "The range asked for (`Content-Range`)"),
        (status = 304, description = "Not modified (If-None-Match, If-Modified-Since)"),
        (status = 404, content_type = "text/plain", description = "No such output, or its job has not completed"),
        (status = 410, body = Object, description = "{\"error\": {\"code\": \"OUTPUT_EXPIRED\", \"message\"}}: deleted after the output retention period (--output-retention-days)"),
        (status = 416, description = "The range starts past the end (`Content-Range: bytes */SIZE`)"),
        (status = 500, description = "Internal error (logged)"),
    ),
)]
pub(crate) async fn download(
    State(state): State<AppState>,
    Path((token, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let job = match state.engine.job_by_media_token(&token).await {
        Ok(Some(job)) if job.state == JobState::Completed => job,
        Ok(_) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "looking up a download failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    serve_output(&state, &job, &name, request).await
}

/// One of a job's outputs, by name, with Range support; 404 when it has no
/// such output. Whoever calls it has checked that the caller may have it.
pub async fn serve_output(state: &AppState, job: &Job, name: &str, request: Request) -> Response {
    let Some(output) = job.outputs.iter().find(|o| o.name == name) else {
        return not_found();
    };
    if job.outputs_deleted_at.is_some() {
        return expired();
    }
    let key = job.output_key(&output.name);
    let files = state.engine.files();
    let mut response = match files.local_path(&key) {
        // ServeFile answers Range requests (browsers seek in videos with
        // them) and conditional GETs.
        Some(path) => {
            let request = match normalise_range(request, &path).await {
                Ok(request) => request,
                Err(response) => return response,
            };
            match ServeFile::new(path).oneshot(request).await {
                Ok(response) => response.into_response(),
                Err(infallible) => match infallible {},
            }
        }
        // An object store: stream the object (or the asked range) through.
        None => match stream_object(files.as_ref(), &key, request.headers()).await {
            Ok(response) => response,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return not_found(),
            Err(e) => {
                tracing::error!(job = %job.id, error = %e, "reading a download failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        },
    };
    if let Ok(content_type) = HeaderValue::from_str(&output.content_type) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    response
}

/// The request with its Range header as RFC 9110 reads it, for ServeFile:
/// dropped where it must be ignored (other units, several ranges, nonsense),
/// which ServeFile (through `http-range-header`) would answer with 416, and
/// rewritten as one plain `bytes=A-B` otherwise. An unsatisfiable range is
/// answered here.
async fn normalise_range(
    mut request: Request,
    path: &std::path::Path,
) -> Result<Request, Response> {
    let Some(range) = request.headers().get(header::RANGE) else {
        return Ok(request);
    };
    // A file that cannot be read is ServeFile's to answer (404).
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return Ok(request);
    };
    let size = meta.len();
    match wanted(Some(range), size) {
        Wanted::Whole => {
            request.headers_mut().remove(header::RANGE);
        }
        Wanted::Part(part) => {
            let plain = format!("bytes={}-{}", part.start, part.end - 1);
            request.headers_mut().insert(
                header::RANGE,
                HeaderValue::from_str(&plain).expect("an ASCII header"),
            );
        }
        Wanted::Unsatisfiable => return Err(unsatisfiable(size)),
    }
    Ok(request)
}

fn unsatisfiable(size: u64) -> Response {
    (
        StatusCode::RANGE_NOT_SATISFIABLE,
        [
            (header::CONTENT_RANGE, format!("bytes */{size}")),
            (header::ACCEPT_RANGES, "bytes".to_owned()),
        ],
    )
        .into_response()
}

/// What a Range header asks of an object of a given size.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 §14.1.2). Anything else (other units, several
/// ranges, nonsense) is ignored and the whole object sent, as the RFC allows.
/// Not `http-range-header` (which ServeFile uses): it refuses a suffix longer
/// than the object, which the RFC says selects the whole object.
fn wanted(range: Option<&HeaderValue>, size: u64) -> Wanted {
    let Some(spec) = range
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Wanted::Whole;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if size == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part(size.saturating_sub(n)..size),
            None => Wanted::Whole,
        },
        // bytes=A-: from A to the end.
        (false, true) => match number(first) {
            Some(a) if a >= size => Wanted::Unsatisfiable,
            Some(a) => Wanted::Part(a..size),
            None => Wanted::Whole,
        },
        // bytes=A-B, both inclusive; B may run past the end.
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a > b => Wanted::Whole,
            (Some(a), Some(_)) if a >= size => Wanted::Unsatisfiable,
            (Some(a), Some(b)) => Wanted::Part(a..b.saturating_add(1).min(size)),
            _ => Wanted::Whole,
        },
        (true, true) => Wanted::Whole,
    }
}

/// Streams an object from storage with Range support; the body is never
/// held whole in memory.
async fn stream_object(
    files: &dyn FileStore,
    key: &str,
    headers: &HeaderMap,
) -> std::io::Result<Response> {
    let size = files.size(key).await?;
    let (status, range) = match wanted(headers.get(header::RANGE), size) {
        Wanted::Whole => (StatusCode::OK, 0..size),
        Wanted::Part(range) => (StatusCode::PARTIAL_CONTENT, range),
        Wanted::Unsatisfiable => return Ok(unsatisfiable(size)),
    };
    let length = range.end - range.start;
    let content_range = format!(
        "bytes {}-{}/{size}",
        range.start,
        range.end.saturating_sub(1)
    );
    let body = files.read_range(key, range).await?;
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&content_range).expect("an ASCII header"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(range: &str, size: u64) -> Wanted {
        wanted(Some(&HeaderValue::from_str(range).unwrap()), size)
    }

    #[test]
    fn single_byte_ranges() {
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(ask("bytes=0-3", 10), Wanted::Part(0..4));
        assert_eq!(ask("bytes=2-", 10), Wanted::Part(2..10));
        assert_eq!(ask("bytes=-3", 10), Wanted::Part(7..10));
        assert_eq!(ask("bytes=-30", 10), Wanted::Part(0..10));
        assert_eq!(ask("bytes=5-99", 10), Wanted::Part(5..10));
        assert_eq!(ask("bytes=9-9", 10), Wanted::Part(9..10));
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(ask("bytes=10-", 10), Wanted::Unsatisfiable);
        assert_eq!(ask("bytes=10-20", 10), Wanted::Unsatisfiable);
        assert_eq!(ask("bytes=-0", 10), Wanted::Unsatisfiable);
        assert_eq!(ask("bytes=-5", 0), Wanted::Unsatisfiable);
        assert_eq!(ask("bytes=0-", 0), Wanted::Unsatisfiable);
    }

    #[test]
    fn what_is_not_one_byte_range_gets_the_whole_object() {
        for range in [
            "items=0-3",
            "bytes=0-1,4-5",
            "bytes=3-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes 0-3",
        ] {
            assert_eq!(ask(range, 10), Wanted::Whole, "{range}");
        }
    }
}
