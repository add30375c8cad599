//! The Image+Audio Video dialect's error shape: `{"error": "..."}` with the
//! status codes of the seed's table.

use axum::extract::multipart::MultipartRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use genq_engine::EngineError;

use crate::shared::upload::UploadError;
use crate::shared::{bounded, idempotency, Refusal};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable code for logs; this dialect's wire shape carries only the message.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "JOB_NOT_FOUND", "Job not found")
    }

    fn internal_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "Internal server error. Retry with exponential backoff.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": bounded(self.message) })),
        )
            .into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingKey => Self::new(
                StatusCode::UNAUTHORIZED,
                "MISSING_API_KEY",
                "Missing X-API-Key header",
            ),
            Refusal::InvalidKey => Self::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_API_KEY",
                "API key not recognized or has been deactivated",
            ),
            Refusal::MissingScope(scope) => Self::new(
                StatusCode::FORBIDDEN,
                "INSUFFICIENT_SCOPE",
                format!("This API key lacks the {scope} scope this endpoint needs"),
            ),
            Refusal::RateLimited { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!("Rate limit exceeded — slow down. Retry in {retry_after_secs} s."),
            ),
            Refusal::BadRequest(message) => Self::bad_request(message),
            Refusal::NotFound => Self::not_found(),
            Refusal::NoRoute => Self::new(
                StatusCode::NOT_FOUND,
                "ROUTE_NOT_FOUND",
                "No such endpoint; see /openapi.json",
            ),
            Refusal::MethodNotAllowed => Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "This endpoint does not take this method; the Allow header lists those it takes",
            ),
            Refusal::TooLarge(message) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "FILE_TOO_LARGE",
                format!("Uploaded file is too large: {message}"),
            ),
            Refusal::UnsupportedType(message) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                format!(
                    "Uploaded file's type isn't supported: {message}. Images: JPEG, PNG, WebP; audio: MP3, WAV, M4A, OGG"
                ),
            ),
            Refusal::KeyInUse => Self::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_IN_USE",
                idempotency::IN_USE,
            ),
            Refusal::KeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                idempotency::REUSED,
            ),
            Refusal::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service temporarily unavailable. Retry with exponential backoff.",
            ),
            Refusal::Internal(_) => Self::internal_error(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound => Self::not_found(),
            EngineError::LimitReached(_) => Self::new(
                StatusCode::CONFLICT,
                "ACTIVE_JOB_EXISTS",
                "You already have an active job. Wait for it to finish or cancel it first.",
            ),
            EngineError::IdempotencyKeyInUse => Refusal::KeyInUse.into(),
            EngineError::InsufficientBalance { balance, cost } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "INSUFFICIENT_BALANCE",
                format!("A render costs {cost} micro-cents; your balance is {balance} micro-cents"),
            ),
            EngineError::NotCancellable(state) => Self::new(
                StatusCode::CONFLICT,
                "NOT_CANCELLABLE",
                format!("Job is {state} and can no longer be cancelled; only PENDING jobs can be"),
            ),
            EngineError::InvalidInput { message, .. } => Self::bad_request(message),
            EngineError::Db(_) | EngineError::Files(_) => {
                Refusal::unavailable(&error, "a video API request").into()
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Self::internal_error()
            }
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        Refusal::from(error).into()
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        Self::bad_request(format!(
            "Expected a multipart/form-data body: {}",
            rejection.body_text()
        ))
    }
}
