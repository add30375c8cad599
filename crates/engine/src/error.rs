use crate::job::JobState;
use crate::store::StoreError;

/// What the engine can answer besides success. Dialects map each variant to
/// their own wire shape and status code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The job does not exist or belongs to another account (never told apart).
    #[error("job not found")]
    NotFound,
    #[error("account not found")]
    AccountNotFound,
    #[error("an active job limit was reached")]
    ActiveLimit,
    #[error("the account's concurrent job limit was reached")]
    ConcurrencyLimit,
    #[error("the balance ({balance} micro-cents) does not cover the cost ({cost} micro-cents)")]
    InsufficientBalance { balance: i64, cost: i64 },
    #[error("job is {0} and can no longer be cancelled")]
    NotCancellable(JobState),
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    /// A stable code for logs and for dialects that expose codes.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::NotFound => "JOB_NOT_FOUND",
            EngineError::AccountNotFound => "ACCOUNT_NOT_FOUND",
            EngineError::ActiveLimit => "ACTIVE_LIMIT",
            EngineError::ConcurrencyLimit => "CONCURRENCY_LIMIT",
            EngineError::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
            EngineError::NotCancellable(_) => "NOT_CANCELLABLE",
            EngineError::Storage(_) => "STORAGE_ERROR",
            EngineError::Store(_) => "STORE_ERROR",
        }
    }
}
