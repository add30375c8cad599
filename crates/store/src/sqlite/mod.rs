//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit is on disk before the call returns.
//!
//! Writes go through a pool of one connection: SQLite admits one writer at a
//! time anyway, and funnelling them here avoids lock-upgrade deadlocks between
//! our own connections. Transactions that read before writing start with
//! `BEGIN IMMEDIATE` so other processes (the CLI) queue on the busy timeout
//! instead of failing.

mod accounts;
mod group_commit;
mod inline_read;
mod jobs;
mod webhooks;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
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
use crate::queue_depth::QueueDepth;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    submissions: group_commit::GroupCommit,
    inline: inline_read::InlineReader,
    queue_depth: QueueDepth,
}

impl SqliteStore {
    /// Connects to `sqlite://PATH`, creating the file and running migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_err("invalid SQLite URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db_err("could not open the SQLite database"))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::new("could not migrate the SQLite database", e))?;
        let path = options.get_filename().to_owned();
        let inline = inline_read::InlineReader::new(path.clone());
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(db_err("could not open the SQLite database"))?;
        let submissions = group_commit::GroupCommit::start(path, writer.clone());
        Ok(Self {
            writer,
            reader,
            submissions,
            inline,
            queue_depth: QueueDepth::default(),
        })
    }
}

const JOB_COLUMNS: &str = "id, account_id, api_key_id, kind, dialect, input, input_files, state, \
    progress, outputs, error_code, error_message, retries, webhook_url, model, model_version, \
    cost_micro_cents, media_token, share_token, created_at, updated_at, started_at, completed_at";

/// A row's columns by name, from either driver: sqlx for most statements,
/// rusqlite for the inline reads (`inline_read.rs`).
trait Columns {
    fn text(&self, name: &str) -> StoreResult<String>;
    fn opt_text(&self, name: &str) -> StoreResult<Option<String>>;
    fn int(&self, name: &str) -> StoreResult<i64>;
    fn opt_int(&self, name: &str) -> StoreResult<Option<i64>>;
}

impl Columns for SqliteRow {
    fn text(&self, name: &str) -> StoreResult<String> {
        self.try_get(name).map_err(db_err("reading a row"))
    }
    fn opt_text(&self, name: &str) -> StoreResult<Option<String>> {
        self.try_get(name).map_err(db_err("reading a row"))
    }
    fn int(&self, name: &str) -> StoreResult<i64> {
        self.try_get(name).map_err(db_err("reading a row"))
    }
    fn opt_int(&self, name: &str) -> StoreResult<Option<i64>> {
        self.try_get(name).map_err(db_err("reading a row"))
    }
}

fn job_from_row(row: &impl Columns) -> StoreResult<Job> {
    let error_message = row.opt_text("error_message")?;
    let model_version = row.opt_text("model_version")?;
    Ok(Job {
        id: parse(&row.text("id")?, "job id")?,
        account_id: parse(&row.text("account_id")?, "account id")?,
        api_key_id: parse(&row.text("api_key_id")?, "key id")?,
        kind: row.text("kind")?,
        dialect: row.text("dialect")?,
        input: json(&row.text("input")?, "job input")?,
        input_files: json(&row.text("input_files")?, "job input files")?,
        state: parse(&row.text("state")?, "job state")?,
        progress: row.int("progress")?.clamp(0, 100) as u8,
        outputs: json(&row.text("outputs")?, "job outputs")?,
        failure: row
            .opt_text("error_code")?
            .map(|code| JobFailure::new(code, error_message.unwrap_or_default())),
        retries: row.int("retries")? as u32,
        webhook_url: row.opt_text("webhook_url")?,
        model: row
            .opt_text("model")?
            .map(|slug| (slug, model_version.unwrap_or_default())),
        cost_micro_cents: row.int("cost_micro_cents")?,
        media_token: row.text("media_token")?,
        share_token: row.text("share_token")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        started_at: row.opt_int("started_at")?,
        completed_at: row.opt_int("completed_at")?,
    })
}

const PRINCIPAL_BY_KEY_HASH: &str = "SELECT k.id, k.account_id, k.scopes, \
    k.model_patterns AS key_models, a.model_patterns AS account_models \
    FROM api_keys k JOIN accounts a ON a.id = k.account_id \
    WHERE k.key_hash = ? AND k.revoked_at IS NULL";

fn principal_from_row(row: &impl Columns) -> StoreResult<Principal> {
    Ok(Principal {
        key_id: parse(&row.text("id")?, "key id")?,
        account_id: parse(&row.text("account_id")?, "account id")?,
        scopes: row
            .text("scopes")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        account_models: patterns_from(row.opt_text("account_models")?),
        key_models: patterns_from(row.opt_text("key_models")?),
    })
}

#[async_trait]
impl Store for SqliteStore {
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
            .fetch_one(&self.reader)
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
        self.inline.principal(key_hash)
    }

    async fn insert_job(&self, job: &Job, limits: &SubmitLimits) -> StoreResult<InsertOutcome> {
        self.submissions.insert(job, limits).await
    }

    async fn get_job(&self, account: AccountId, id: JobId) -> StoreResult<Option<Job>> {
        self.inline.job(account, id)
    }

    async fn job_by_media_token(&self, token: &str) -> StoreResult<Option<Job>> {
        self.job_where("media_token = ?", &[token.to_owned()]).await
    }

    async fn job_by_share_token(&self, token: &str) -> StoreResult<Option<Job>> {
        self.job_where("share_token = ?", &[token.to_owned()]).await
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
        // In claim order: fair-queue round, then age. Counted exactly up to
        // EXACT_AHEAD; past that, the whole queue's depth (at most a second
        // old) stands in, so a deep queue doesn't make every submission
        // count it.
        let ahead = self.inline.jobs_ahead(id)?;
        self.queue_depth
            .ahead(ahead, || async {
                let pending: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'PENDING'")
                        .fetch_one(&self.reader)
                        .await
                        .map_err(db_err("counting queued jobs"))?;
                Ok(pending as u64)
            })
            .await
    }

    async fn model_run_ms(&self, model: &str) -> StoreResult<Option<f64>> {
        self.inline.model_run_ms(model)
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> StoreResult<ClaimOutcome> {
        self.claim_next(request).await
    }

    async fn heartbeat(&self, lease: &Lease, lease_until: Millis) -> StoreResult<LeaseStatus> {
        let row: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND attempt = ? AND state = 'PROCESSING' \
             RETURNING cancel_requested",
        )
        .bind(lease_until)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err("extending a lease"))?;
        Ok(match row {
            None => LeaseStatus::Lost,
            Some(0) => LeaseStatus::Held,
            Some(_) => LeaseStatus::CancelRequested,
        })
    }

    async fn record_progress(&self, lease: &Lease, progress: u8, now: Millis) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? AND attempt = ? AND state = 'PROCESSING'",
        )
        .bind(i64::from(progress))
        .bind(now)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .execute(&self.writer)
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
        let done = sqlx::query(
            "UPDATE jobs SET state = 'PENDING', progress = 0, updated_at = ?, lease_owner = NULL, \
             lease_until = NULL WHERE id = ? AND attempt = ? AND state = 'PROCESSING'",
        )
        .bind(now)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .execute(&self.writer)
        .await
        .map_err(db_err("releasing a job"))?;
        Ok(done.rows_affected() == 1)
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
}

/// Reads a row's column, naming the table in the error.
fn column<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    name: &str,
    what: &'static str,
) -> StoreResult<T> {
    row.try_get(name).map_err(db_err(what))
}
