//! Output downloads and share pages. Both are reached by unguessable tokens
//! rather than API keys, so browsers, `<video>` tags and link previews can
//! fetch them.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use genq_engine::{Job, JobState, OutputRole};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/media/{token}/{name}", get(download))
        .route("/share/{token}", get(share_page))
}

/// Absolute URL of one of a completed job's outputs.
pub fn output_url(public_url: &str, job: &Job, role: OutputRole) -> Option<String> {
    if job.state != JobState::Completed {
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

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

async fn download(
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
    let Some(output) = job.outputs.iter().find(|o| o.name == name) else {
        return not_found();
    };
    let Some(path) = state
        .engine
        .storage()
        .local_path(&job.output_key(&output.name))
    else {
        return not_found();
    };
    // ServeFile answers Range requests (browsers seek in videos with them).
    let mut response = match ServeFile::new(path).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(infallible) => match infallible {},
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

async fn share_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let job = match state.engine.job_by_share_token(&token).await {
        Ok(Some(job)) => job,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "looking up a share page failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let public = &state.public_url;
    let (Some(video), Some(page)) = (
        output_url(public, &job, OutputRole::Main),
        share_url(public, &job),
    ) else {
        return not_found();
    };
    let poster = output_url(public, &job, OutputRole::Poster).unwrap_or_default();
    // Every interpolated value is a URL genq built from its own tokens.
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Video</title>
<meta property="og:type" content="video.other">
<meta property="og:title" content="Video">
<meta property="og:url" content="{page}">
<meta property="og:image" content="{poster}">
<meta property="og:video" content="{video}">
<meta property="og:video:secure_url" content="{video}">
<meta property="og:video:type" content="video/mp4">
<meta name="twitter:card" content="player">
<style>body{{margin:0;background:#111;display:flex;min-height:100vh;align-items:center;justify-content:center}}video{{max-width:100%;max-height:100vh}}</style>
</head>
<body>
<video src="{video}" poster="{poster}" controls playsinline preload="metadata"></video>
</body>
</html>
"#
    ))
    .into_response()
}
