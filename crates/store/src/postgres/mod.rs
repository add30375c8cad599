//! The server backend: PostgreSQL, shared by any number of genq processes.
//!
//! Unlike SQLite, writers really run at once, so every read-then-write is made
//! safe by a row lock rather than by a single writer:
//!
//! - A submission first locks its account's row (`SELECT … FOR NO KEY UPDATE`), so
//!   the per-key and per-account counts and the balance check of one account
//!   serialize, while other accounts' submissions run in parallel.
//! - Claims lock their candidate with `FOR UPDATE SKIP LOCKED`: concurrent
//!   claimers each take a different job instead of queueing on one.
//! - Guarded updates (`… WHERE id = $ AND attempt = $ AND state = 'PROCESSING'`)
//!   re-check their condition after waiting for a concurrent writer (READ
//!   COMMITTED), so a stale worker still matches no row.
//!
//! Locks are always taken job row first, then account row (settling a job
//! moves its account's balance), and a claim that gives up several jobs
//! settles them in account order. The one exception is a batch of outcomes
//! (`finish.rs`) that refunds several accounts: two processes' batches may
//! deadlock; PostgreSQL then aborts one, and its outcomes are recorded again
//! one by one.
//!
//! The hot paths (submission, claim, outcomes) are plpgsql functions, one
//! statement each (migrations/postgres/0002_queue_functions.sql). A job
//! insert also sends `NOTIFY genq_jobs`, delivered on commit, which
//! [`Store::wait_for_jobs`] turns into a wake-up for other processes.

mod accounts;
mod finish;
mod jobs;
mod listen;
mod webhooks;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};
use std::str::FromStr;
use std::time::Duration;

use genq_engine::account::{ApiKeyRecord, NewAccount};
use genq_engine::job::Lease;
use genq_engine::store::{
    CancelOutcome, ClaimOutcome, ClaimRequest, InsertOutcome, LeaseStatus, LedgerEntry, StoreResult,
};
use genq_engine::time::Millis;
use genq_engine::webhook::{Attempt, Delivery, DeliveryRecord, NextStep};
use genq_engine::{
    Account, AccountId, Job, JobFailure, JobId, JobOutput, JobQuery, KeyId, Principal, Store,
    StoreError, SubmitLimits,
};

use crate::codec::{db_err, json, parse, patterns_from, patterns_to, to_json};

/// The channel a job insert notifies.
const JOBS_CHANNEL: &str = "genq_jobs";

/// Connections per process unless the caller asks otherwise: enough for a
/// worker pool, the HTTP handlers and the webhook dispatcher to overlap,
/// few enough that several processes fit in PostgreSQL's default 100.
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// Started by the first `wait_for_jobs`, so stores that never wait (the
    /// CLI) hold no extra connection.
    listener: tokio::sync::OnceCell<listen::Listener>,
    queue_depth: crate::queue_depth::QueueDepth,
    /// When (claimers' clock, ms) the last sweep for abandoned jobs ran.
    last_sweep: std::sync::atomic::AtomicI64,
    finisher: finish::Finisher,
}

/// A pooled connection idle this long is pinged before use.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// How often claims sweep for jobs lost too many times.
const SWEEP_EVERY_MS: i64 = 1_000;

impl PostgresStore {
    /// Connects to `postgres://…` (or `postgresql://…`) and runs migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As [`Self::connect`], with at most `max_connections` pooled
    /// connections (the listener of `wait_for_jobs` takes one more).
    pub async fn connect_with(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(db_err("invalid PostgreSQL URL"))?
            .application_name("genq");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            // sqlx pings every connection it hands out: a round trip more
            // for each statement. A connection in steady use is known to be
            // alive; one idle for a while (across a server restart, say) is
            // checked, and replaced if the ping fails.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(db_err("could not connect to PostgreSQL"))?;
        // sqlx holds an advisory lock while migrating, so processes starting
        // together migrate once.
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::new("could not migrate the PostgreSQL database", e))?;
        Ok(Self {
            pool,
            options,
            listener: tokio::sync::OnceCell::new(),
            queue_depth: Default::default(),
            last_sweep: std::sync::atomic::AtomicI64::new(i64::MIN),
            finisher: Default::default(),
        })
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool
            .begin()
            .await
            .map_err(db_err("starting a transaction"))
    }
}

/// PostgreSQL refuses NUL in text; SQLite keeps it. Free text from outside
/// (renderer errors, webhook receivers' errors) loses NULs rather than making
/// the state change that carries it fail.
fn text(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('\0') {
        value.replace('\0', "\u{FFFD}").into()
    } else {
        value.into()
    }
}

const JOB_COLUMNS: &str = "id, account_id, api_key_id, kind, dialect, input, input_files, state, \
    progress, outputs, error_code, error_message, retries, webhook_url, model, model_version, \
    cost_micro_cents, media_token, share_token, created_at, updated_at, started_at, completed_at";

fn job_from_row(row: &PgRow) -> StoreResult<Job> {
    let err = db_err("reading a job");
    let text = |col: &str| -> StoreResult<String> { row.try_get(col).map_err(&err) };
    let error_code: Option<String> = row.try_get("error_code").map_err(&err)?;
    let error_message: Option<String> = row.try_get("error_message").map_err(&err)?;
    let model: Option<String> = row.try_get("model").map_err(&err)?;
    let model_version: Option<String> = row.try_get("model_version").map_err(&err)?;
    Ok(Job {
        id: parse(&text("id")?, "job id")?,
        account_id: parse(&text("account_id")?, "account id")?,
        api_key_id: parse(&text("api_key_id")?, "key id")?,
        kind: text("kind")?,
        dialect: text("dialect")?,
        input: json(&text("input")?, "job input")?,
        input_files: json(&text("input_files")?, "job input files")?,
        state: parse(&text("state")?, "job state")?,
        progress: row
            .try_get::<i64, _>("progress")
            .map_err(&err)?
            .clamp(0, 100) as u8,
        outputs: json(&text("outputs")?, "job outputs")?,
        failure: error_code.map(|code| JobFailure::new(code, error_message.unwrap_or_default())),
        retries: row.try_get::<i64, _>("retries").map_err(&err)? as u32,
        webhook_url: row.try_get("webhook_url").map_err(&err)?,
        model: model.map(|slug| (slug, model_version.unwrap_or_default())),
        cost_micro_cents: row.try_get("cost_micro_cents").map_err(&err)?,
        media_token: text("media_token")?,
        share_token: text("share_token")?,
        created_at: row.try_get("created_at").map_err(&err)?,
        updated_at: row.try_get("updated_at").map_err(&err)?,
        started_at: row.try_get("started_at").map_err(&err)?,
        completed_at: row.try_get("completed_at").map_err(&err)?,
    })
}

/// Reads a row's column, naming the table in the error.
fn column<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    name: &str,
    what: &'static str,
) -> StoreResult<T> {
    row.try_get(name).map_err(db_err(what))
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_account(
        &self,
        id: AccountId,
        account: &NewAccount,
        webhook_secret: &str,
        now: Millis,
    ) -> StoreResult<()> {
        self.create_account(id, account, webhook_secret, now).await
    }

    async fn credit_account(
        &self,
        id: AccountId,
        micro_cents: i64,
        now: Millis,
    ) -> StoreResult<Option<i64>> {
        self.add_credits(id, micro_cents, now).await
    }

    async fn ledger(&self, id: AccountId) -> StoreResult<Vec<LedgerEntry>> {
        self.ledger_entries(id).await
    }

    async fn active_jobs(&self, id: AccountId) -> StoreResult<u64> {
        self.count_active(id).await
    }

    async fn get_account(&self, id: AccountId) -> StoreResult<Option<Account>> {
        self.account(id).await
    }

    async fn account_count(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err("counting accounts"))?;
        Ok(count as u64)
    }

    async fn rotate_webhook_secret(
        &self,
        id: AccountId,
        secret: &str,
        previous_valid_until: Millis,
    ) -> StoreResult<bool> {
        self.rotate_secret(id, secret, previous_valid_until).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        self.create_api_key(key).await
    }

    async fn revoke_api_key(&self, id: KeyId, now: Millis) -> StoreResult<bool> {
        self.revoke_key(id, now).await
    }

    async fn principal_for_key(&self, key_hash: &[u8]) -> StoreResult<Option<Principal>> {
        self.principal(key_hash).await
    }

    async fn insert_job(&self, job: &Job, limits: &SubmitLimits) -> StoreResult<InsertOutcome> {
        self.enqueue(job, limits).await
    }

    async fn get_job(&self, account: AccountId, id: JobId) -> StoreResult<Option<Job>> {
        self.job_where(
            "id = $1 AND account_id = $2",
            &[id.to_string(), account.to_string()],
        )
        .await
    }

    async fn job_by_media_token(&self, token: &str) -> StoreResult<Option<Job>> {
        self.job_where("media_token = $1", &[token.to_owned()])
            .await
    }

    async fn job_by_share_token(&self, token: &str) -> StoreResult<Option<Job>> {
        self.job_where("share_token = $1", &[token.to_owned()])
            .await
    }

    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> StoreResult<Vec<Job>> {
        self.page(account, query).await
    }

    async fn cancel(
        &self,
        account: AccountId,
        id: JobId,
        processing: bool,
        now: Millis,
    ) -> StoreResult<CancelOutcome> {
        self.cancel_job(account, id, processing, now).await
    }

    async fn cancel_processing(&self, lease: &Lease, now: Millis) -> StoreResult<bool> {
        self.cancel_running(lease, now).await
    }

    async fn jobs_ahead(&self, id: JobId) -> StoreResult<u64> {
        self.count_ahead(id).await
    }

    async fn model_run_ms(&self, model: &str) -> StoreResult<Option<f64>> {
        sqlx::query_scalar("SELECT avg_run_ms FROM model_stats WHERE model = $1")
            .bind(model)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err("reading model statistics"))
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> StoreResult<ClaimOutcome> {
        self.claim_next(request).await
    }

    async fn heartbeat(&self, lease: &Lease, lease_until: Millis) -> StoreResult<LeaseStatus> {
        let row: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND attempt = $3 AND state = 'PROCESSING' \
             RETURNING cancel_requested",
        )
        .bind(lease_until)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("extending a lease"))?;
        Ok(match row {
            None => LeaseStatus::Lost,
            Some(false) => LeaseStatus::Held,
            Some(true) => LeaseStatus::CancelRequested,
        })
    }

    async fn record_progress(&self, lease: &Lease, progress: u8, now: Millis) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET progress = $1, updated_at = $2 \
             WHERE id = $3 AND attempt = $4 AND state = 'PROCESSING'",
        )
        .bind(i64::from(progress))
        .bind(now)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .execute(&self.pool)
        .await
        .map_err(db_err("recording progress"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(
        &self,
        lease: &Lease,
        outputs: &[JobOutput],
        now: Millis,
    ) -> StoreResult<bool> {
        self.complete_job(lease, outputs, now).await
    }

    async fn fail(&self, lease: &Lease, failure: &JobFailure, now: Millis) -> StoreResult<bool> {
        self.fail_job(lease, failure, now).await
    }

    async fn release(&self, lease: &Lease, now: Millis) -> StoreResult<bool> {
        self.release_job(lease, now).await
    }

    async fn claim_deliveries(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        self.claim_due_deliveries(now, lease_until, limit).await
    }

    async fn finish_attempt(
        &self,
        delivery_id: &str,
        attempt: &Attempt,
        next: NextStep,
    ) -> StoreResult<()> {
        self.record_attempt(delivery_id, attempt, next).await
    }

    async fn deliveries_for_job(
        &self,
        account: AccountId,
        job: JobId,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        self.job_deliveries(account, job).await
    }

    async fn wait_for_jobs(&self) {
        let listener = self
            .listener
            .get_or_init(|| listen::Listener::start(self.options.clone(), JOBS_CHANNEL))
            .await;
        listener.notified().await;
    }
}
