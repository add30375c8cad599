//! The durable store: accounts, keys and jobs. The jobs table is the queue.
//!
//! Every backend-specific statement lives in the backend (the `genq-store`
//! crate); the engine only sees this trait.

use async_trait::async_trait;

use crate::account::{Account, AccountId, ApiKeyRecord, KeyId, NewAccount, Principal};
use crate::job::{Job, JobFailure, JobId, JobOutput, JobQuery, JobState, Lease, SubmitLimits};
use crate::time::Millis;
use crate::webhook::{Attempt, Delivery, DeliveryRecord, NextStep};

#[derive(Debug, thiserror::Error)]
#[error("store: {message}")]
pub struct StoreError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    pub fn new(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, PartialEq)]
pub enum InsertOutcome {
    Inserted,
    /// The per-key bound of [`SubmitLimits`] would be exceeded; nothing was written.
    ActiveLimit,
    /// The per-account bound would be exceeded; nothing was written.
    ConcurrencyLimit,
    /// The balance does not cover the job's cost; nothing was written.
    InsufficientBalance {
        balance: i64,
    },
}

#[derive(Debug, PartialEq)]
pub enum CancelOutcome {
    Cancelled(Box<Job>),
    /// The job is PROCESSING; its worker has been asked to stop.
    CancelRequested(Box<Job>),
    NotFound,
    NotCancellable(JobState),
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    Held,
    /// Someone asked for the job to be cancelled: stop, then `cancel_processing`.
    CancelRequested,
    /// The lease expired and the job moved on without this worker.
    Lost,
}

/// One change to a balance.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub job_id: Option<JobId>,
    pub amount_micro_cents: i64,
    /// `credit`, `reserve` or `refund`.
    pub reason: String,
    pub created_at: Millis,
}

/// What one claim found.
#[derive(Debug, Default)]
pub struct ClaimOutcome {
    /// At most `ClaimRequest::limit` jobs, each under its own lease.
    pub claimed: Vec<(Job, Lease)>,
    /// Jobs whose lease expired once too often; now FAILED.
    pub gave_up: Vec<JobId>,
}

/// Parameters of a claim.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub owner: &'a str,
    pub kinds: &'a [String],
    pub now: Millis,
    pub lease_until: Millis,
    /// A job whose lease expired with this many retries already is failed
    /// instead of claimed again.
    pub max_retries: u32,
    /// How many jobs to claim at most (a worker's free slots): one claim
    /// fills them all, so a busy queue costs a claim per batch, not per job.
    pub limit: u32,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an account, recording its opening credits in the ledger.
    async fn insert_account(
        &self,
        id: AccountId,
        account: &NewAccount,
        webhook_secret: &str,
        now: Millis,
    ) -> StoreResult<()>;
    /// Adds credits (recorded in the ledger); the new balance, or None when
    /// there is no such account.
    async fn credit_account(
        &self,
        id: AccountId,
        micro_cents: i64,
        now: Millis,
    ) -> StoreResult<Option<i64>>;
    async fn ledger(&self, id: AccountId) -> StoreResult<Vec<LedgerEntry>>;
    /// PENDING + PROCESSING jobs of the account.
    async fn active_jobs(&self, id: AccountId) -> StoreResult<u64>;
    async fn get_account(&self, id: AccountId) -> StoreResult<Option<Account>>;
    async fn account_count(&self) -> StoreResult<u64>;
    /// Makes `secret` the account's webhook secret; the old one keeps signing
    /// until `previous_valid_until`. False when there is no such account.
    async fn rotate_webhook_secret(
        &self,
        id: AccountId,
        secret: &str,
        previous_valid_until: Millis,
    ) -> StoreResult<bool>;

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// True when a live key was revoked.
    async fn revoke_api_key(&self, id: KeyId, now: Millis) -> StoreResult<bool>;
    /// The principal of a live (not revoked) key with this hash.
    async fn principal_for_key(&self, key_hash: &[u8]) -> StoreResult<Option<Principal>>;

    /// Records a new PENDING job (and so enqueues it) and reserves its cost,
    /// unless `limits` or the balance forbid.
    async fn insert_job(&self, job: &Job, limits: &SubmitLimits) -> StoreResult<InsertOutcome>;
    async fn get_job(&self, account: AccountId, id: JobId) -> StoreResult<Option<Job>>;
    async fn job_by_media_token(&self, token: &str) -> StoreResult<Option<Job>>;
    async fn job_by_share_token(&self, token: &str) -> StoreResult<Option<Job>>;
    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> StoreResult<Vec<Job>>;
    /// PENDING → CANCELLED (refunding its cost and recording a webhook
    /// delivery if the job has a URL). With `processing` set, a PROCESSING job
    /// is marked for its worker to stop.
    async fn cancel(
        &self,
        account: AccountId,
        id: JobId,
        processing: bool,
        now: Millis,
    ) -> StoreResult<CancelOutcome>;
    /// PROCESSING → CANCELLED once the worker stopped (refund and webhook as above).
    async fn cancel_processing(&self, lease: &Lease, now: Millis) -> StoreResult<bool>;
    /// PENDING jobs that will be claimed before this one (its place in the queue).
    async fn jobs_ahead(&self, id: JobId) -> StoreResult<u64>;
    /// The moving average of a model's run time, once it has run.
    async fn model_run_ms(&self, model: &str) -> StoreResult<Option<f64>>;

    /// PENDING (or PROCESSING with an expired lease) → PROCESSING under a new
    /// lease, for up to `request.limit` jobs. Expired leases first; then
    /// pending jobs in fair rounds across accounts (one job per account with
    /// queued work per round), oldest first within a round.
    async fn claim(&self, request: &ClaimRequest<'_>) -> StoreResult<ClaimOutcome>;
    /// Extends the lease.
    async fn heartbeat(&self, lease: &Lease, lease_until: Millis) -> StoreResult<LeaseStatus>;
    async fn record_progress(&self, lease: &Lease, progress: u8, now: Millis) -> StoreResult<bool>;
    /// PROCESSING → COMPLETED (recording a webhook delivery if the job has a URL).
    async fn complete(
        &self,
        lease: &Lease,
        outputs: &[JobOutput],
        now: Millis,
    ) -> StoreResult<bool>;
    /// PROCESSING → FAILED (refunding its cost and recording a webhook delivery
    /// if the job has a URL).
    async fn fail(&self, lease: &Lease, failure: &JobFailure, now: Millis) -> StoreResult<bool>;
    /// PROCESSING → PENDING without counting a retry: this process is
    /// stopping and another should pick the job up.
    async fn release(&self, lease: &Lease, now: Millis) -> StoreResult<bool>;

    /// Claims up to `limit` due webhook deliveries until `lease_until`.
    async fn claim_deliveries(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Records an attempt and what follows it.
    async fn finish_attempt(
        &self,
        delivery_id: &str,
        attempt: &Attempt,
        next: NextStep,
    ) -> StoreResult<()>;
    /// A job's deliveries with their attempts, oldest first.
    async fn deliveries_for_job(
        &self,
        account: AccountId,
        job: JobId,
    ) -> StoreResult<Vec<DeliveryRecord>>;

    /// Resolves when another process may have enqueued a job (a hint; callers
    /// still poll as a fallback). Backends without cross-process notifications
    /// never resolve.
    async fn wait_for_jobs(&self) {
        std::future::pending::<()>().await
    }
}
