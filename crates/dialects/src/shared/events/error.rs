//! The error shape of genq's own routes, which belong to no dialect
//! (`GET /events`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genq_engine::EngineError;

use crate::shared::request_id;
use crate::shared::{bounded, Refusal};

/// The error shape of genq's own routes (not a dialect's):
/// `{"error": {"code", "message"}, "requestId"}`.
#[derive(Debug)]
pub struct EventsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsErrorBody {
    #[schema(value_type = Object)]
    error: serde_json::Value,
    request_id: String,
}

impl EventsError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", message)
    }
}

impl IntoResponse for EventsError {
    fn into_response(self) -> Response {
        let body = EventsErrorBody {
            error: serde_json::json!({ "code": self.code, "message": bounded(self.message) }),
            request_id: request_id::current(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<Refusal> for EventsError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingKey => Self::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "Missing API key: send it as X-API-Key or Authorization: Bearer.",
            ),
            Refusal::InvalidKey => Self::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_API_KEY",
                "API key not recognized or has been revoked.",
            ),
            Refusal::MissingScope(scope) => Self::new(
                StatusCode::FORBIDDEN,
                "INSUFFICIENT_SCOPE",
                format!("This endpoint requires an API key with the {scope} scope."),
            ),
            Refusal::RateLimited { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!("Rate limit exceeded — slow down. Retry in {retry_after_secs} s."),
            ),
            Refusal::BadRequest(message) => Self::bad_request(message),
            Refusal::NotFound => Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found."),
            Refusal::NoRoute => Self::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "No such endpoint; see /openapi.json.",
            ),
            Refusal::MethodNotAllowed => Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "This endpoint does not take this method; the Allow header lists those it takes.",
            ),
            Refusal::TooLarge(message) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "TOO_LARGE", message)
            }
            Refusal::UnsupportedType(message) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_TYPE",
                message,
            ),
            Refusal::KeyInUse => Self::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_IN_USE",
                crate::shared::idempotency::IN_USE,
            ),
            Refusal::KeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                crate::shared::idempotency::REUSED,
            ),
            Refusal::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service temporarily unavailable. Retry with exponential backoff.",
            ),
            Refusal::Internal(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal server error. Retry with exponential backoff.",
            ),
        }
    }
}

impl From<EngineError> for EventsError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Db(_) | EngineError::Files(_) => {
                Refusal::unavailable(&error, "serving events").into()
            }
            other => {
                tracing::error!(error = %other, "serving events failed");
                Refusal::Internal(other.to_string()).into()
            }
        }
    }
}
