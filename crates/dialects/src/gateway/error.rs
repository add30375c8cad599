//! The Jobs v1 error shape: `{"error": {"code", "message"}, "requestId"}`,
//! with the seed's codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use genq_engine::EngineError;

use crate::shared::request_id;
use crate::shared::{bounded, idempotency, Refusal};

#[derive(Debug)]
pub struct V1Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl V1Error {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", message)
    }

    pub fn model_not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "MODEL_NOT_FOUND", message)
    }

    /// The refusal of one item of a batch: a 400 naming the item (the
    /// message already names the field), or the model refusal naming it.
    pub fn in_batch_item(self, index: usize) -> Self {
        match self.code {
            "MODEL_NOT_FOUND" => {
                Self::invalid_input(format!("jobs[{index}].model: {}", self.message))
            }
            "MODEL_ACCESS_DENIED" => Self {
                message: format!("jobs[{index}].model: {}", self.message),
                ..self
            },
            _ => Self {
                message: format!("jobs[{index}].{}", self.message),
                ..self
            },
        }
    }

    pub fn job_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "JOB_NOT_FOUND",
            "The job does not exist or does not belong to you.",
        )
    }

    /// The database or storage failed: the seed's retryable 503, whatever
    /// the request was doing.
    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "PUBSUB_PUBLISH_FAILED",
            "Internal error while queuing the job. Please retry.",
        )
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": bounded(self.message) },
            "requestId": request_id::current(),
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<Refusal> for V1Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingKey => Self::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "Missing API key: send it as Authorization: Bearer YOUR_API_KEY.",
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
            Refusal::BadRequest(message) => Self::invalid_input(message),
            Refusal::NotFound => Self::job_not_found(),
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
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "INVALID_INPUT", message)
            }
            Refusal::UnsupportedType(message) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "INVALID_INPUT", message)
            }
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
            Refusal::Unavailable => Self::unavailable(),
            Refusal::Internal(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal error. Please retry.",
            ),
        }
    }
}

impl From<EngineError> for V1Error {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound => Self::job_not_found(),
            EngineError::ProjectNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The project does not exist or does not belong to you.",
            ),
            EngineError::InsufficientBalance { balance, cost } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "INSUFFICIENT_BALANCE",
                format!(
                    "This job costs {cost} micro-cents; your balance is {balance} micro-cents."
                ),
            ),
            EngineError::LimitReached(_) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "CONCURRENT_JOBS_EXCEEDED",
                "You have reached the maximum number of concurrent jobs for your plan.",
            ),
            EngineError::IdempotencyKeyInUse => Refusal::KeyInUse.into(),
            EngineError::InvalidInput { message, .. } => Self::invalid_input(message),
            EngineError::InputsDeleted(id) => Self::new(
                StatusCode::CONFLICT,
                "INPUTS_DELETED",
                format!("The inputs of job {id} were deleted after the input retention period; submit it again."),
            ),
            EngineError::NotCancellable(state) => Self::new(
                StatusCode::CONFLICT,
                "JOB_NOT_CANCELLABLE",
                format!(
                    "The job is {} and can no longer be cancelled.",
                    state.as_str().to_lowercase()
                ),
            ),
            EngineError::AccountNotFound => Self::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_API_KEY",
                "Account not found.",
            ),
            EngineError::Db(_) | EngineError::Files(_) => {
                Refusal::unavailable(&error, "a Jobs v1 request").into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genq_engine::DbError;

    #[test]
    fn a_job_that_could_not_be_queued_is_a_retryable_503() {
        let error = V1Error::from(EngineError::Db(DbError::other("database is locked")));
        assert_eq!(
            (error.status, error.code),
            (StatusCode::SERVICE_UNAVAILABLE, "PUBSUB_PUBLISH_FAILED")
        );
        let error = V1Error::from(EngineError::Files(std::io::Error::other("disk full")));
        assert_eq!(error.code, "PUBSUB_PUBLISH_FAILED");
        assert!(
            !error.message.contains("disk"),
            "internal details stay in the log"
        );
    }
}
