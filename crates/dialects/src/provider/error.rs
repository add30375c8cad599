//! The Provider error shape (a NestJS service's): `{"statusCode", "message",
//! "error"}` with the reason phrase, and `{"message": "Unauthorized",
//! "statusCode": 401}` for a missing or unknown key. A few routes answer in
//! shapes of their own, which [`ProviderError::body`] carries as they are.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use genq_engine::EngineError;
use serde_json::{json, Value};

use crate::shared::{bounded, idempotency, Refusal};

#[derive(Debug)]
pub struct ProviderError {
    pub status: StatusCode,
    pub body: Value,
}

impl ProviderError {
    /// `{"statusCode", "message", "error"}`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self {
            status,
            body: json!({
                "statusCode": status.as_u16(),
                "message": message,
                "error": status.canonical_reason().unwrap_or(""),
            }),
        }
    }

    /// A body of the route's own.
    pub fn body(status: StatusCode, body: Value) -> Self {
        Self { status, body }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized() -> Self {
        Self::body(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Unauthorized", "statusCode": 401}),
        )
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error. Please retry.",
        )
    }
}

impl IntoResponse for ProviderError {
    fn into_response(mut self) -> Response {
        if let Some(message) = self.body.get_mut("message") {
            if let Value::String(text) = message.take() {
                *message = Value::String(bounded(text));
            }
        }
        (self.status, Json(self.body)).into_response()
    }
}

impl From<Refusal> for ProviderError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingKey | Refusal::InvalidKey => Self::unauthorized(),
            Refusal::MissingScope(scope) => Self::new(
                StatusCode::FORBIDDEN,
                format!("This API key lacks the {scope} scope."),
            ),
            Refusal::RateLimited { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many requests; retry in {retry_after_secs} s."),
            ),
            Refusal::BadRequest(message) => Self::bad_request(message),
            Refusal::NotFound | Refusal::NoRoute => Self::not_found("Not found"),
            Refusal::MethodNotAllowed => Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "This route does not take this method",
            ),
            Refusal::TooLarge(message) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, message),
            Refusal::UnsupportedType(message) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
            }
            Refusal::KeyInUse => Self::new(StatusCode::CONFLICT, idempotency::IN_USE),
            Refusal::KeyReused => Self::new(StatusCode::UNPROCESSABLE_ENTITY, idempotency::REUSED),
            Refusal::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable. Please retry.",
            ),
            Refusal::Internal(_) => Self::internal(),
        }
    }
}

impl From<EngineError> for ProviderError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound => Self::not_found("Job not found"),
            EngineError::ProjectNotFound => Self::not_found("Project not found"),
            EngineError::AccountNotFound => Self::unauthorized(),
            EngineError::InsufficientBalance { .. } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "Insufficient credits for this job.",
            ),
            EngineError::LimitReached(_) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many jobs queued or running; wait for some to finish.",
            ),
            EngineError::IdempotencyKeyInUse => Refusal::KeyInUse.into(),
            EngineError::InvalidInput { message, .. } => Self::bad_request(message),
            EngineError::InputsDeleted(id) => Self::bad_request(format!(
                "Job {id} cannot run again: its inputs were deleted after the input retention period. Submit a new job."
            )),
            EngineError::NotCancellable(state) => Self::new(
                StatusCode::CONFLICT,
                format!(
                    "The job is {} and can no longer be cancelled.",
                    state.as_str()
                ),
            ),
            EngineError::Db(_) | EngineError::Files(_) => {
                Refusal::unavailable(&error, "a Provider request").into()
            }
        }
    }
}
