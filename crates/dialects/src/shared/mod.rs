//! What every dialect uses. None of it decides a wire shape: whatever it
//! refuses is a [`Refusal`], which the calling route's dialect renders in
//! its own error shape; none of it knows a dialect by name or path.

pub mod auth;
pub mod events;
pub mod extract;
pub mod health;
pub mod http_metrics;
pub mod idempotency;
pub mod media;
pub mod openapi;
pub mod rate_limit;
pub mod request_id;
pub mod scheduling;
pub mod upload;

mod bounded;
pub use bounded::{bounded, excerpt};

/// The largest JSON (or other non-upload) request body any dialect reads:
/// room for `data:` URL inputs of about 12 MB (base64 grows them by a
/// third); larger inputs are fetched from http(s) URLs (`--max-input-mb`).
/// Over it: 413 in the route's dialect's shape.
pub const MAX_JSON_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What a shared layer refuses before (or instead of) a dialect's handler.
/// Each dialect's error type is `From<Refusal>`, with its own words.
#[derive(Debug)]
pub enum Refusal {
    /// No API key in the request.
    MissingKey,
    /// An unknown or revoked key.
    InvalidKey,
    /// The key lacks the route's scope.
    MissingScope(&'static str),
    RateLimited {
        retry_after_secs: u64,
    },
    /// A malformed query, body or form; the message says what is wrong.
    BadRequest(String),
    /// No such job of the caller's (of this dialect's).
    NotFound,
    /// No route of the dialect at this path.
    NoRoute,
    /// The path is a route, not for this method (the `Allow` header lists
    /// the methods it takes).
    MethodNotAllowed,
    /// An upload over its limit.
    TooLarge(String),
    /// An upload whose bytes are not of an accepted type.
    UnsupportedType(String),
    /// Another request holds the request's idempotency key (409).
    KeyInUse,
    /// The idempotency key was used with a different request (422).
    KeyReused,
    /// The database or file storage could not be reached (or is full):
    /// already logged; the client should retry shortly (503 with
    /// `Retry-After`).
    Unavailable,
    /// Our fault, already logged; the message is for the log, not the client.
    Internal(String),
}

impl Refusal {
    /// An engine failure that is no fault of the request: the database or
    /// file storage failed. Logged here, with what was being done.
    pub fn unavailable(error: &genq_engine::EngineError, doing: &str) -> Refusal {
        tracing::error!(error = %error, "{doing}: the database or storage failed");
        Refusal::Unavailable
    }
}

/// Seconds a client is told to wait before retrying a 503.
pub const RETRY_UNAVAILABLE_AFTER_SECS: u64 = 2;

/// Every 503 says when to try again (`Retry-After`), whoever wrote it.
pub async fn retry_after_on_503(
    mut response: axum::response::Response,
) -> axum::response::Response {
    use axum::http::{header::RETRY_AFTER, HeaderValue, StatusCode};
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(RETRY_UNAVAILABLE_AFTER_SECS));
    }
    response
}

/// A webhook URL as every dialect accepts it: absolute, https, with a host.
/// (Where it may point is checked at delivery, on the resolved address.)
pub fn validate_webhook_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if url.scheme() != "https" {
        return Err("it must start with https://".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    Ok(url.to_string())
}

/// One page of the caller's jobs, and whether more follow (the query asks
/// for one more than the page holds).
pub async fn page_of_jobs(
    engine: &genq_engine::Engine,
    principal: &genq_engine::Principal,
    mut query: genq_engine::JobQuery,
) -> Result<(Vec<genq_engine::Job>, bool), genq_engine::EngineError> {
    let limit = query.limit as usize;
    query.limit += 1;
    let mut jobs = engine.jobs(principal, &query).await?;
    let more = jobs.len() > limit;
    jobs.truncate(limit);
    Ok((jobs, more))
}

/// How long a cancel waits for a running job to stop before it answers
/// with the job as it is.
pub const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Cancels one of the caller's jobs of `dialect`: a queued one at once, a
/// running one by asking its worker to stop, waiting up to [`CANCEL_WAIT`]
/// for it to have stopped.
pub async fn cancel_and_wait(
    engine: &genq_engine::Engine,
    principal: &genq_engine::Principal,
    id: genq_engine::JobId,
    dialect: &str,
) -> Result<genq_engine::Job, genq_engine::EngineError> {
    let job = engine
        .cancel(
            principal,
            id,
            Some(dialect),
            genq_engine::db::CancelMode::EvenIfRunning,
        )
        .await?;
    if job.state != genq_engine::JobState::Processing {
        return Ok(job);
    }
    engine
        .wait_for_job(principal, id, CANCEL_WAIT, |job| {
            job.state != genq_engine::JobState::Processing
        })
        .await
}
