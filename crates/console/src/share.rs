//! `/share/{token}`: a finished video's public page (no sign-in; the token
//! is the key), with the tags link previews read.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use genq_dialects::shared::media::{output_url, share_url};
use genq_engine::OutputRole;

use crate::error::PageError;
use crate::view::{html, Layout};
use crate::Console;

#[derive(Template)]
#[template(path = "share.html")]
struct SharePage {
    layout: Layout,
    page: String,
    video: String,
    poster: String,
}

pub(crate) async fn page(
    State(console): State<Console>,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let job = console
        .app
        .engine
        .job_by_share_token(&token)
        .await?
        .ok_or(PageError::NotFound)?;
    if job.outputs_deleted_at.is_some() {
        return Err(PageError::Gone);
    }
    let public = &console.app.public_url;
    let (Some(video), Some(page)) = (
        output_url(public, &job, OutputRole::Main),
        share_url(public, &job),
    ) else {
        return Err(PageError::NotFound);
    };
    let poster = output_url(public, &job, OutputRole::Poster).unwrap_or_default();
    let body = SharePage {
        layout: Layout::signed_out("Video"),
        page,
        video,
        poster,
    }
    .render()?;
    let mut response = html(StatusCode::OK, body);
    // The video and poster are linked by the public URL (link previews need
    // absolute links), which may be another origin than the one asked.
    let origin = url::Url::parse(public)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' {origin}; media-src 'self' {origin}; \
         base-uri 'none'; form-action 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    // Anyone with the link may look; it may be cached like the video.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    Ok(response.into_response())
}
