//! The database: accounts, keys, jobs, the ledger, the webhook outbox and
//! projects.
//! The jobs table is the queue.
//!
//! [`Database`] is the sum of one trait per concern; each backend (the
//! `genq-db` crate: SQLite and PostgreSQL) implements each trait in a file
//! of its own, under the trait's own method names. Every method runs on both
//! backends; `crates/db/tests` holds one behaviour suite that runs on each.

use async_trait::async_trait;

use crate::account::{Account, ApiKeyInfo, ApiKeyRecord, NewAccount, Principal};
use crate::events::{EventBus, JobEvent};
use crate::idempotency::{KeptKey, KeyClaim};
use crate::ids::{AccountId, JobId, KeyId, ProjectId};
use crate::job::{Job, JobFailure, JobOutput, JobQuery, JobState, Lease, LimitKind, SubmitLimits};
use crate::project::Project;
use crate::time::Millis;
use crate::webhook::{Attempt, Delivery, DeliveryRecord, NextStep};

/// Displayed with its cause ("database: committing a job's outcome:
/// database or disk is full"): the log line is where an operator reads it.
#[derive(Debug, thiserror::Error)]
#[error("database: {message}{}", source.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
pub struct DbError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl DbError {
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

pub type DbResult<T> = Result<T, DbError>;

#[derive(Debug, PartialEq)]
pub enum InsertOutcome {
    Inserted,
    /// A bound of [`SubmitLimits`] would be exceeded; nothing was written.
    LimitReached(LimitKind),
    /// The balance does not cover the job's cost (a batch's: every job's);
    /// nothing was written.
    InsufficientBalance {
        balance: i64,
    },
    /// The submission's idempotency key was claimed by another request
    /// meanwhile (this one's claim had expired); nothing was written.
    KeyTaken,
}

/// How far a cancel may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelMode {
    /// Only a PENDING job (one that no worker has started).
    PendingOnly,
    /// A PENDING job at once, or a PROCESSING one by asking its worker to
    /// stop (it becomes CANCELLED, and is refunded, once the worker has).
    EvenIfRunning,
}

/// A cancel asked for by a job's owner.
#[derive(Clone, Debug)]
pub struct CancelRequest<'a> {
    pub account: AccountId,
    pub job: JobId,
    /// Only a job accepted by this dialect (another's is not found).
    pub dialect: Option<&'a str>,
    pub mode: CancelMode,
    pub now: Millis,
}

#[derive(Debug, PartialEq)]
pub enum CancelOutcome {
    Cancelled(Box<Job>),
    /// The job is PROCESSING; its worker has been asked to stop.
    CancelRequested(Box<Job>),
    NotFound,
    NotCancellable(JobState),
}

/// Finished jobs of an owner to run again.
#[derive(Clone, Debug)]
pub struct RequeueRequest<'a> {
    pub account: AccountId,
    pub jobs: &'a [JobId],
    /// Only jobs accepted by this dialect (another's is not found).
    pub dialect: Option<&'a str>,
    pub now: Millis,
}

#[derive(Debug, PartialEq)]
pub enum RequeueOutcome {
    /// One of them had its inputs deleted by the retention sweep: it cannot
    /// run again, and nothing changed.
    InputsDeleted(JobId),
    /// The COMPLETED and FAILED jobs among them are PENDING again, each
    /// charged its cost anew; the others were left as they were.
    Requeued(Vec<JobId>),
    /// One of them is not the account's (of the dialect): nothing changed.
    NotFound(JobId),
    /// The balance does not cover the new charges: nothing changed.
    InsufficientBalance { balance: i64, cost: i64 },
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    Held,
    /// Someone asked for the job to be cancelled: stop, then `record_cancelled`.
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

/// How many jobs are in one state, and since when the oldest.
#[derive(Debug, Clone, PartialEq)]
pub struct StateCount {
    pub state: JobState,
    pub jobs: u64,
    pub oldest_created_at: Option<Millis>,
}

/// What one claim found.
#[derive(Debug, Default)]
pub struct ClaimOutcome {
    /// At most `ClaimRequest::limit` jobs, each under its own lease.
    pub claimed: Vec<(Job, Lease)>,
    /// Jobs whose lease expired once too often; now FAILED.
    pub gave_up: Vec<Job>,
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

/// Every concern of the database, as one object.
pub trait Database:
    AccountDb + JobDb + QueueDb + OutboxDb + EventFeed + ProjectDb + IdempotencyDb + RetentionDb
{
}

impl<T> Database for T where
    T: AccountDb + JobDb + QueueDb + OutboxDb + EventFeed + ProjectDb + IdempotencyDb + RetentionDb
{
}

/// What the retention sweep (`crate::retention`) reads and marks.
#[async_trait]
pub trait RetentionDb: Send + Sync + 'static {
    /// Takes (or keeps) the lease `name` for `owner` until `until`, unless
    /// another owner's lease is still running: true when `owner` holds it.
    async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        now: Millis,
        until: Millis,
    ) -> DbResult<bool>;
    /// Finished jobs (of any end) that finished before `before` and still
    /// have their inputs, oldest first.
    async fn jobs_with_inputs(&self, before: Millis, limit: u32) -> DbResult<Vec<Job>>;
    /// Records that a job's inputs are deleted (its input JSON as it is
    /// kept from now on), if it is still finished with its inputs; false
    /// otherwise (it was queued again meanwhile).
    async fn mark_inputs_deleted(
        &self,
        job: JobId,
        input: &serde_json::Value,
        now: Millis,
    ) -> DbResult<bool>;
    /// COMPLETED jobs that completed before `before` and still have their
    /// outputs, oldest first.
    async fn jobs_with_outputs(&self, before: Millis, limit: u32) -> DbResult<Vec<Job>>;
    /// Records that a job's outputs are deleted, if it still has them.
    async fn mark_outputs_deleted(&self, job: JobId, now: Millis) -> DbResult<bool>;
}

/// Idempotency keys in flight (see `crate::idempotency`); a kept key is
/// written by [`JobDb::insert_jobs`], in the jobs' own transaction.
#[async_trait]
pub trait IdempotencyDb: Send + Sync + 'static {
    /// The kept answer of an unexpired key; else claims the key until
    /// `lease_until` unless another request's unexpired claim holds it.
    async fn claim_key(
        &self,
        account: AccountId,
        key: &str,
        now: Millis,
        lease_until: Millis,
    ) -> DbResult<KeyClaim>;
    /// Extends a claim this request still holds.
    async fn renew_key(
        &self,
        account: AccountId,
        key: &str,
        token: &str,
        lease_until: Millis,
    ) -> DbResult<()>;
    /// Gives up a claim that was not kept (a refused request).
    async fn release_key(&self, account: AccountId, key: &str, token: &str) -> DbResult<()>;
    /// Forgets kept answers that expired; returns how many.
    async fn delete_expired_keys(&self, now: Millis) -> DbResult<u64>;
}

/// Accounts, API keys, credits and the ledger.
#[async_trait]
pub trait AccountDb: Send + Sync + 'static {
    /// Creates an account, recording its opening credits in the ledger.
    async fn insert_account(
        &self,
        id: AccountId,
        account: &NewAccount,
        webhook_secret: &str,
        now: Millis,
    ) -> DbResult<()>;
    /// Adds credits (recorded in the ledger); the new balance, or None when
    /// there is no such account.
    async fn credit_account(
        &self,
        id: AccountId,
        micro_cents: i64,
        now: Millis,
    ) -> DbResult<Option<i64>>;
    async fn ledger(&self, id: AccountId) -> DbResult<Vec<LedgerEntry>>;
    /// PENDING + PROCESSING jobs of the account.
    async fn active_jobs(&self, id: AccountId) -> DbResult<u64>;
    async fn get_account(&self, id: AccountId) -> DbResult<Option<Account>>;
    async fn account_count(&self) -> DbResult<u64>;
    /// Makes `secret` the account's webhook secret; the old one keeps signing
    /// until `previous_valid_until`. False when there is no such account.
    async fn rotate_webhook_secret(
        &self,
        id: AccountId,
        secret: &str,
        previous_valid_until: Millis,
    ) -> DbResult<bool>;

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> DbResult<()>;
    /// True when a live key was revoked.
    async fn revoke_api_key(&self, id: KeyId, now: Millis) -> DbResult<bool>;
    /// The principal of a live (not revoked) key with this hash.
    async fn principal_for_key(&self, key_hash: &[u8]) -> DbResult<Option<Principal>>;
    /// The account's keys, revoked ones too, newest first.
    async fn api_keys(&self, account: AccountId) -> DbResult<Vec<ApiKeyInfo>>;
    /// Revokes one of the account's keys; another account's is not found.
    async fn revoke_account_key(
        &self,
        account: AccountId,
        id: KeyId,
        now: Millis,
    ) -> DbResult<bool>;
    /// Records a console session acting as `key`; expired sessions go.
    async fn insert_session(
        &self,
        token_hash: &[u8],
        key: KeyId,
        expires_at: Millis,
        now: Millis,
    ) -> DbResult<()>;
    /// The principal of an unexpired session whose key is not revoked.
    async fn principal_for_session(
        &self,
        token_hash: &[u8],
        now: Millis,
    ) -> DbResult<Option<Principal>>;
    async fn delete_session(&self, token_hash: &[u8]) -> DbResult<()>;
}

/// Jobs as their owners see them: submitting, reading, cancelling.
#[async_trait]
pub trait JobDb: Send + Sync + 'static {
    /// Records a new PENDING job (and so enqueues it) and reserves its cost,
    /// unless `limits` or the balance forbid.
    async fn insert_job(&self, job: &Job, limits: &SubmitLimits) -> DbResult<InsertOutcome> {
        self.insert_jobs(std::slice::from_ref(job), limits, None)
            .await
    }
    /// Records every job as [`Self::insert_job`] does, all or none, in one
    /// transaction: `limits` and the balance apply to them together. With
    /// `key`, the idempotency key is kept in the same transaction, or, if
    /// its claim was lost meanwhile, nothing is written
    /// ([`InsertOutcome::KeyTaken`]).
    async fn insert_jobs(
        &self,
        jobs: &[Job],
        limits: &SubmitLimits,
        key: Option<&KeptKey>,
    ) -> DbResult<InsertOutcome>;
    async fn get_job(&self, account: AccountId, id: JobId) -> DbResult<Option<Job>>;
    async fn job_by_media_token(&self, token: &str) -> DbResult<Option<Job>>;
    /// Any account's job: only for requests whose right to it is checked
    /// otherwise (a link signed with the job's own secret).
    async fn job_by_id(&self, id: JobId) -> DbResult<Option<Job>>;
    async fn job_by_share_token(&self, token: &str) -> DbResult<Option<Job>>;
    /// The account's jobs that match `query`, newest first.
    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> DbResult<Vec<Job>>;
    /// PENDING → CANCELLED (refunding its cost and recording a webhook
    /// delivery if the job has a URL); with [`CancelMode::EvenIfRunning`], a
    /// PROCESSING job is marked for its worker to stop.
    async fn cancel(&self, request: &CancelRequest<'_>) -> DbResult<CancelOutcome>;
    /// COMPLETED or FAILED → PENDING for a new run, all or nothing: each
    /// charged again in the same transaction (a job's ledger entries carry
    /// its run, so each run is charged once and refunded at most once).
    async fn requeue(&self, request: &RequeueRequest<'_>) -> DbResult<RequeueOutcome>;
}

/// The queue as workers see it: claims, leases, progress and outcomes.
#[async_trait]
pub trait QueueDb: Send + Sync + 'static {
    /// PENDING (or PROCESSING with an expired lease) → PROCESSING under a new
    /// lease, for up to `request.limit` jobs. Expired leases first (the
    /// earliest expired first); then pending jobs in fair rounds across
    /// accounts (one job per account with queued work per round), oldest
    /// first within a round.
    async fn claim(&self, request: &ClaimRequest<'_>) -> DbResult<ClaimOutcome>;
    /// PENDING jobs whose deadline passed → FAILED (`DEADLINE_EXCEEDED`),
    /// each settled like any failure (refund, webhook); returns them.
    /// (A running job past its deadline is failed by its worker.)
    async fn fail_overdue(&self, now: Millis) -> DbResult<Vec<Job>>;
    /// Extends the lease.
    async fn heartbeat(&self, lease: &Lease, lease_until: Millis) -> DbResult<LeaseStatus>;
    async fn record_progress(&self, lease: &Lease, progress: u8, now: Millis) -> DbResult<bool>;
    /// PROCESSING → COMPLETED (recording a webhook delivery if the job has a URL).
    async fn complete(&self, lease: &Lease, outputs: &[JobOutput], now: Millis) -> DbResult<bool>;
    /// PROCESSING → FAILED (refunding its cost and recording a webhook delivery
    /// if the job has a URL).
    async fn fail(&self, lease: &Lease, failure: &JobFailure, now: Millis) -> DbResult<bool>;
    /// PROCESSING → CANCELLED once the worker stopped (refund and webhook as
    /// for a failure).
    async fn record_cancelled(&self, lease: &Lease, now: Millis) -> DbResult<bool>;
    /// PROCESSING → PENDING without counting a retry: this process is
    /// stopping and another should pick the job up.
    async fn release(&self, lease: &Lease, now: Millis) -> DbResult<bool>;
    /// PENDING jobs that will be claimed before this one (its place in the queue).
    async fn jobs_ahead(&self, id: JobId) -> DbResult<u64>;
    /// The moving average of a model's run time, once it has run.
    async fn model_run_ms(&self, model: &str) -> DbResult<Option<f64>>;
    /// Jobs in each state, with the oldest one's creation time (metrics).
    async fn state_counts(&self) -> DbResult<Vec<StateCount>>;
    /// The database server's own name and version (`genq check`).
    async fn server_version(&self) -> DbResult<String>;
}

/// The webhook outbox.
#[async_trait]
pub trait OutboxDb: Send + Sync + 'static {
    /// Claims up to `limit` due webhook deliveries until `lease_until`.
    async fn claim_deliveries(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> DbResult<Vec<Delivery>>;
    /// Records an attempt and what follows it.
    async fn finish_attempt(
        &self,
        delivery_id: &str,
        attempt: &Attempt,
        next: NextStep,
    ) -> DbResult<()>;
    /// Makes a job's webhook deliveries due now (a delivery that gave up
    /// gets one more attempt; one under a dispatcher's lease is left to
    /// it). Returns how many.
    async fn redeliver(&self, account: AccountId, job: JobId, now: Millis) -> DbResult<u64>;
    /// A job's deliveries with their attempts, oldest first.
    async fn deliveries_for_job(
        &self,
        account: AccountId,
        job: JobId,
    ) -> DbResult<Vec<DeliveryRecord>>;
}

/// Projects, each seen only by its own account.
#[async_trait]
pub trait ProjectDb: Send + Sync + 'static {
    async fn insert_project(&self, project: &Project) -> DbResult<()>;
    async fn get_project(&self, account: AccountId, id: ProjectId) -> DbResult<Option<Project>>;
    /// The account's projects, oldest first.
    async fn list_projects(&self, account: AccountId) -> DbResult<Vec<Project>>;
    /// Replaces the project's name, kind, dates and template (its account's
    /// only); false when there is no such project.
    async fn update_project(&self, project: &Project) -> DbResult<bool>;
    /// False when there is no such project of the account.
    async fn delete_project(&self, account: AccountId, id: ProjectId) -> DbResult<bool>;
}

/// How committed changes of jobs become [`JobEvent`]s.
#[async_trait]
pub trait EventFeed: Send + Sync + 'static {
    /// True when the database announces committed changes of jobs to every
    /// process itself (inside the transaction that makes them), so a process
    /// must not publish its own changes as well. Such a database announces
    /// what the engine's hooks act on — a job queued, a cancel asked for, a
    /// job with a webhook finished — and every change of the jobs of the
    /// accounts some process follows ([`Self::follow_account`]).
    fn announces_changes(&self) -> bool;
    /// Starts delivering the database's announcements to `bus`, and tells
    /// it ([`EventBus::missed_all`]) when some may have been lost. Called
    /// when the process first needs events (again later is a no-op); only
    /// for databases that announce changes.
    async fn follow_changes(&self, bus: EventBus);
    /// For databases that announce changes: makes sure every change of
    /// `account`'s jobs reaches `bus` for as long as the bus follows the
    /// account ([`EventBus::followed_accounts`]). Once it returns, a change
    /// committed afterwards is announced and one committed before can be
    /// read. It does not fail: should the database be out of reach, the
    /// bus is told of the loss once it is back.
    async fn follow_account(&self, bus: &EventBus, account: AccountId);
    /// For databases that do not announce: the jobs among `jobs`, or of
    /// `accounts`, changed at or after `since`, as events of their present
    /// state. This is how one process learns of another's changes.
    async fn changed_jobs(
        &self,
        jobs: &[JobId],
        accounts: &[AccountId],
        since: Millis,
    ) -> DbResult<Vec<JobEvent>>;
}
