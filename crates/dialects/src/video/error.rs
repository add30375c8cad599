//! The Image+Audio Video dialect's error shape: `{"error": "..."}` with the
//! status codes of the seed's table.

use axum::extract::multipart::MultipartRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use genq_engine::EngineError;

use crate::shared::auth::AuthFailure;
use crate::shared::upload::UploadError;

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

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("Rate limit exceeded — slow down. Retry in {retry_after_secs} s."),
        )
    }

    fn internal(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error, "internal error");
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
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Missing => Self::new(
                StatusCode::UNAUTHORIZED,
                "MISSING_API_KEY",
                "Missing X-API-Key header",
            ),
            AuthFailure::Invalid => Self::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_API_KEY",
                "API key not recognized or has been deactivated",
            ),
            AuthFailure::Engine(e) => e.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound => Self::not_found(),
            EngineError::ActiveLimit | EngineError::ConcurrencyLimit => Self::new(
                StatusCode::CONFLICT,
                "ACTIVE_JOB_EXISTS",
                "You already have an active job. Wait for it to finish or cancel it first.",
            ),
            EngineError::NotCancellable(state) => Self::new(
                StatusCode::CONFLICT,
                "NOT_CANCELLABLE",
                format!("Job is {state} and can no longer be cancelled; only PENDING jobs can be"),
            ),
            other => Self::internal(&other),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "FILE_TOO_LARGE",
                format!("Uploaded file is too large: {error}"),
            ),
            UploadError::UnsupportedType { .. } => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                format!(
                    "Uploaded file's type isn't supported: {error}. Images: JPEG, PNG, WebP; audio: MP3, WAV, M4A, OGG"
                ),
            ),
            UploadError::Malformed(_) => Self::bad_request(error.to_string()),
            UploadError::Io(ref e) => Self::internal(e),
        }
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
