use crate::db::DbError;
use crate::job::{JobState, LimitKind};

/// What the engine can answer besides success. Dialects map each variant to
/// their own wire shape and status code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The job does not exist or belongs to another account (never told apart).
    #[error("job not found")]
    NotFound,
    #[error("account not found")]
    AccountNotFound,
    /// The project does not exist or belongs to another account.
    #[error("project not found")]
    ProjectNotFound,
    /// One of the submission's [`crate::SubmitLimits`] would be exceeded.
    #[error("the active job limit ({0:?}) was reached")]
    LimitReached(LimitKind),
    #[error("the balance ({balance} micro-cents) does not cover the cost ({cost} micro-cents)")]
    InsufficientBalance { balance: i64, cost: i64 },
    /// The job's inputs were deleted by the retention sweep: it cannot run
    /// again.
    #[error("the inputs of job {0} were deleted after the input retention period")]
    InputsDeleted(crate::ids::JobId),
    /// Another request holds the submission's idempotency key.
    #[error("another request with this idempotency key is in progress")]
    IdempotencyKeyInUse,
    #[error("job is {0} and can no longer be cancelled")]
    NotCancellable(JobState),
    /// The input of the `index`th job submitted fails its renderer's check
    /// (the message names the field).
    #[error("{message}")]
    InvalidInput { index: usize, message: String },
    #[error("file storage error: {0}")]
    Files(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl EngineError {
    /// A stable code for logs and for dialects that expose codes.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::NotFound => "JOB_NOT_FOUND",
            EngineError::AccountNotFound => "ACCOUNT_NOT_FOUND",
            EngineError::ProjectNotFound => "PROJECT_NOT_FOUND",
            EngineError::LimitReached(_) => "LIMIT_REACHED",
            EngineError::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
            EngineError::NotCancellable(_) => "NOT_CANCELLABLE",
            EngineError::IdempotencyKeyInUse => "IDEMPOTENCY_KEY_IN_USE",
            EngineError::InputsDeleted(_) => "INPUTS_DELETED",
            EngineError::InvalidInput { .. } => "INVALID_INPUT",
            EngineError::Files(_) => "STORAGE_ERROR",
            EngineError::Db(_) => "DATABASE_ERROR",
        }
    }
}
