//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit is on disk before the call returns.
//!
//! Writes go through a pool of one connection: SQLite admits one writer at a
//! time anyway, and funnelling them here avoids lock-upgrade deadlocks between
//! our own connections. Transactions that read before writing start with
//! `BEGIN IMMEDIATE` so other processes (the CLI) queue on the busy timeout
//! instead of failing.

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

use genq_engine::account::ApiKeyRecord;
use genq_engine::job::Lease;
use genq_engine::store::{CancelOutcome, ClaimOutcome, ClaimRequest, InsertOutcome, StoreResult};
use genq_engine::time::Millis;
use genq_engine::webhook::{event_for, Attempt, Delivery, DeliveryRecord, NextStep};
use genq_engine::{
    Account, AccountId, Job, JobFailure, JobId, JobOutput, JobQuery, JobState, KeyId, Principal,
    Store, StoreError, SubmitLimits,
};

mod webhooks;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn db_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::new(what, e)
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
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(db_err("could not open the SQLite database"))?;
        Ok(Self { writer, reader })
    }
}

const JOB_COLUMNS: &str = "id, account_id, api_key_id, kind, dialect, input, input_files, state, \
    progress, outputs, error_code, error_message, retries, webhook_url, media_token, share_token, \
    created_at, updated_at, started_at, completed_at";

fn parse<T: FromStr>(value: &str, what: &str) -> StoreResult<T> {
    value
        .parse()
        .map_err(|_| StoreError::other(format!("corrupt {what} in database: {value:?}")))
}

fn json<T: serde::de::DeserializeOwned>(value: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(value)
        .map_err(|e| StoreError::new(format!("corrupt {what} in database"), e))
}

fn job_from_row(row: &SqliteRow) -> StoreResult<Job> {
    let get_str =
        |col: &str| -> StoreResult<String> { row.try_get(col).map_err(db_err("reading a job")) };
    let error_code: Option<String> = row.try_get("error_code").map_err(db_err("reading a job"))?;
    let error_message: Option<String> = row
        .try_get("error_message")
        .map_err(db_err("reading a job"))?;
    Ok(Job {
        id: parse(&get_str("id")?, "job id")?,
        account_id: parse(&get_str("account_id")?, "account id")?,
        api_key_id: parse(&get_str("api_key_id")?, "key id")?,
        kind: get_str("kind")?,
        dialect: get_str("dialect")?,
        input: json(&get_str("input")?, "job input")?,
        input_files: json(&get_str("input_files")?, "job input files")?,
        state: parse(&get_str("state")?, "job state")?,
        progress: row
            .try_get::<i64, _>("progress")
            .map_err(db_err("reading a job"))?
            .clamp(0, 100) as u8,
        outputs: json(&get_str("outputs")?, "job outputs")?,
        failure: error_code.map(|code| JobFailure::new(code, error_message.unwrap_or_default())),
        retries: row
            .try_get::<i64, _>("retries")
            .map_err(db_err("reading a job"))? as u32,
        webhook_url: row
            .try_get("webhook_url")
            .map_err(db_err("reading a job"))?,
        media_token: get_str("media_token")?,
        share_token: get_str("share_token")?,
        created_at: row.try_get("created_at").map_err(db_err("reading a job"))?,
        updated_at: row.try_get("updated_at").map_err(db_err("reading a job"))?,
        started_at: row.try_get("started_at").map_err(db_err("reading a job"))?,
        completed_at: row
            .try_get("completed_at")
            .map_err(db_err("reading a job"))?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("engine types serialize")
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_account(&self, account: &Account) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO accounts (id, name, webhook_secret, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(account.id.to_string())
        .bind(&account.name)
        .bind(&account.webhook_secret)
        .bind(account.created_at)
        .execute(&self.writer)
        .await
        .map_err(db_err("inserting an account"))?;
        Ok(())
    }

    async fn get_account(&self, id: AccountId) -> StoreResult<Option<Account>> {
        let row = sqlx::query(
            "SELECT name, webhook_secret, previous_webhook_secret, previous_secret_valid_until, created_at \
             FROM accounts WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err("reading an account"))?;
        row.map(|row| {
            let err = || db_err("reading an account");
            Ok(Account {
                id,
                name: row.try_get("name").map_err(err())?,
                webhook_secret: row.try_get("webhook_secret").map_err(err())?,
                previous_webhook_secret: row.try_get("previous_webhook_secret").map_err(err())?,
                previous_secret_valid_until: row
                    .try_get("previous_secret_valid_until")
                    .map_err(err())?,
                created_at: row.try_get("created_at").map_err(err())?,
            })
        })
        .transpose()
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
        let done = sqlx::query(
            "UPDATE accounts SET previous_webhook_secret = webhook_secret, previous_secret_valid_until = ?, \
             webhook_secret = ? WHERE id = ?",
        )
        .bind(previous_valid_until)
        .bind(secret)
        .bind(id.to_string())
        .execute(&self.writer)
        .await
        .map_err(db_err("rotating a webhook secret"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (id, account_id, key_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(key.id.to_string())
            .bind(key.account_id.to_string())
            .bind(&key.key_hash)
            .bind(key.scopes.join(","))
            .bind(key.created_at)
            .execute(&self.writer)
            .await
            .map_err(db_err("inserting an API key"))?;
        Ok(())
    }

    async fn revoke_api_key(&self, id: KeyId, now: Millis) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id.to_string())
                .execute(&self.writer)
                .await
                .map_err(db_err("revoking an API key"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn principal_for_key(&self, key_hash: &[u8]) -> StoreResult<Option<Principal>> {
        let row = sqlx::query(
            "SELECT id, account_id, scopes FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err("looking up an API key"))?;
        row.map(|row| {
            let scopes: String = row
                .try_get("scopes")
                .map_err(db_err("reading an API key"))?;
            Ok(Principal {
                key_id: parse(
                    &row.try_get::<String, _>("id")
                        .map_err(db_err("reading an API key"))?,
                    "key id",
                )?,
                account_id: parse(
                    &row.try_get::<String, _>("account_id")
                        .map_err(db_err("reading an API key"))?,
                    "account id",
                )?,
                scopes: scopes
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .transpose()
    }

    async fn insert_job(&self, job: &Job, limits: &SubmitLimits) -> StoreResult<InsertOutcome> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err("starting a transaction"))?;
        if let Some(max) = limits.max_active_per_key {
            let active: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE api_key_id = ? AND state IN ('PENDING', 'PROCESSING')",
            )
            .bind(job.api_key_id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err("counting active jobs"))?;
            if active >= i64::from(max) {
                return Ok(InsertOutcome::ActiveLimit);
            }
        }
        sqlx::query(
            "INSERT INTO jobs (id, account_id, api_key_id, kind, dialect, input, input_files, state, \
             progress, outputs, retries, webhook_url, media_token, share_token, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', 0, '[]', 0, ?, ?, ?, ?, ?)",
        )
        .bind(job.id.to_string())
        .bind(job.account_id.to_string())
        .bind(job.api_key_id.to_string())
        .bind(&job.kind)
        .bind(&job.dialect)
        .bind(to_json(&job.input))
        .bind(to_json(&job.input_files))
        .bind(&job.webhook_url)
        .bind(&job.media_token)
        .bind(&job.share_token)
        .bind(job.created_at)
        .bind(job.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err("inserting a job"))?;
        tx.commit().await.map_err(db_err("committing a job"))?;
        Ok(InsertOutcome::Inserted)
    }

    async fn get_job(&self, account: AccountId, id: JobId) -> StoreResult<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND account_id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(account.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_by_media_token(&self, token: &str) -> StoreResult<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE media_token = ?");
        let row = sqlx::query(&sql)
            .bind(token)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_by_share_token(&self, token: &str) -> StoreResult<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE share_token = ?");
        let row = sqlx::query(&sql)
            .bind(token)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> StoreResult<Vec<Job>> {
        // An absent filter binds NULL and drops out of the WHERE clause.
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = ? \
             AND (?2 IS NULL OR id < ?2) AND (?3 IS NULL OR state = ?3) \
             ORDER BY id DESC LIMIT ?4"
        );
        let rows = sqlx::query(&sql)
            .bind(account.to_string())
            .bind(query.before.map(|id| id.to_string()))
            .bind(query.state.map(JobState::as_str))
            .bind(i64::from(query.limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("listing jobs"))?;
        rows.iter().map(job_from_row).collect()
    }

    async fn cancel_pending(
        &self,
        account: AccountId,
        id: JobId,
        now: Millis,
    ) -> StoreResult<CancelOutcome> {
        let sql = format!(
            "UPDATE jobs SET state = 'CANCELLED', updated_at = ?, completed_at = ? \
             WHERE id = ? AND account_id = ? AND state = 'PENDING' RETURNING {JOB_COLUMNS}"
        );
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(db_err("starting a transaction"))?;
        let row = sqlx::query(&sql)
            .bind(now)
            .bind(now)
            .bind(id.to_string())
            .bind(account.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err("cancelling a job"))?;
        if row.is_some() {
            webhooks::enqueue(
                &mut tx,
                &id.to_string(),
                event_for(JobState::Cancelled),
                now,
            )
            .await?;
        }
        tx.commit()
            .await
            .map_err(db_err("committing a cancellation"))?;
        if let Some(row) = row {
            return Ok(CancelOutcome::Cancelled(Box::new(job_from_row(&row)?)));
        }
        Ok(match self.get_job(account, id).await? {
            Some(job) => CancelOutcome::NotCancellable(job.state),
            None => CancelOutcome::NotFound,
        })
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> StoreResult<ClaimOutcome> {
        let mut outcome = ClaimOutcome::default();
        if request.kinds.is_empty() {
            return Ok(outcome);
        }
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err("starting a transaction"))?;
        let message = format!(
            "the job was interrupted {} times (its worker stopped responding) and was given up",
            request.max_retries + 1
        );
        let gave_up: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'FAILED', error_code = 'WORKER_LOST', error_message = ?, \
             completed_at = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL \
             WHERE state = 'PROCESSING' AND lease_until < ? AND retries >= ? RETURNING id",
        )
        .bind(&message)
        .bind(request.now)
        .bind(request.now)
        .bind(request.now)
        .bind(i64::from(request.max_retries))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err("failing abandoned jobs"))?;
        for id in &gave_up {
            webhooks::enqueue(&mut tx, id, event_for(JobState::Failed), request.now).await?;
        }
        outcome.gave_up = gave_up
            .iter()
            .map(|id| parse(id, "job id"))
            .collect::<StoreResult<_>>()?;

        let kinds = vec!["?"; request.kinds.len()].join(", ");
        // Jobs whose worker vanished go first: they are older than any pending one.
        let expired_sql = format!(
            "SELECT id FROM jobs WHERE state = 'PROCESSING' AND lease_until < ? AND kind IN ({kinds}) ORDER BY id LIMIT 1"
        );
        let mut expired = sqlx::query_scalar::<_, String>(&expired_sql).bind(request.now);
        for kind in request.kinds {
            expired = expired.bind(kind);
        }
        let (candidate, is_retry) = match expired
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err("claiming a job"))?
        {
            Some(id) => (Some(id), true),
            None => {
                let pending_sql =
                    format!("SELECT id FROM jobs WHERE state = 'PENDING' AND kind IN ({kinds}) ORDER BY id LIMIT 1");
                let mut pending = sqlx::query_scalar::<_, String>(&pending_sql);
                for kind in request.kinds {
                    pending = pending.bind(kind);
                }
                (
                    pending
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err("claiming a job"))?,
                    false,
                )
            }
        };
        if let Some(id) = candidate {
            let sql = format!(
                "UPDATE jobs SET state = 'PROCESSING', attempt = attempt + 1, retries = retries + ?, \
                 progress = 0, lease_owner = ?, lease_until = ?, started_at = COALESCE(started_at, ?), \
                 updated_at = ? WHERE id = ? RETURNING attempt, {JOB_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(i64::from(is_retry))
                .bind(request.owner)
                .bind(request.lease_until)
                .bind(request.now)
                .bind(request.now)
                .bind(&id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err("claiming a job"))?;
            let job = job_from_row(&row)?;
            let lease = Lease {
                job_id: job.id,
                attempt: row.try_get("attempt").map_err(db_err("claiming a job"))?,
                owner: request.owner.to_owned(),
            };
            outcome.claimed = Some((job, lease));
        }
        tx.commit().await.map_err(db_err("committing a claim"))?;
        Ok(outcome)
    }

    async fn heartbeat(&self, lease: &Lease, lease_until: Millis) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND attempt = ? AND state = 'PROCESSING'",
        )
        .bind(lease_until)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .execute(&self.writer)
        .await
        .map_err(db_err("extending a lease"))?;
        Ok(done.rows_affected() == 1)
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
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(db_err("starting a transaction"))?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'COMPLETED', progress = 100, outputs = ?, completed_at = ?, \
             updated_at = ?, lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND attempt = ? AND state = 'PROCESSING'",
        )
        .bind(to_json(&outputs))
        .bind(now)
        .bind(now)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .execute(&mut *tx)
        .await
        .map_err(db_err("completing a job"))?;
        self.finish_terminal(
            tx,
            lease,
            done.rows_affected() == 1,
            JobState::Completed,
            now,
        )
        .await
    }

    async fn fail(&self, lease: &Lease, failure: &JobFailure, now: Millis) -> StoreResult<bool> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(db_err("starting a transaction"))?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'FAILED', error_code = ?, error_message = ?, completed_at = ?, \
             updated_at = ?, lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND attempt = ? AND state = 'PROCESSING'",
        )
        .bind(&failure.code)
        .bind(&failure.message)
        .bind(now)
        .bind(now)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .execute(&mut *tx)
        .await
        .map_err(db_err("failing a job"))?;
        self.finish_terminal(tx, lease, done.rows_affected() == 1, JobState::Failed, now)
            .await
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

impl SqliteStore {
    /// Ends a transaction that may have moved a job to a terminal state: the
    /// webhook it owes is recorded in the same commit.
    async fn finish_terminal(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Sqlite>,
        lease: &Lease,
        moved: bool,
        state: JobState,
        now: Millis,
    ) -> StoreResult<bool> {
        if moved {
            webhooks::enqueue(&mut tx, &lease.job_id.to_string(), event_for(state), now).await?;
        }
        tx.commit()
            .await
            .map_err(db_err("committing a job's outcome"))?;
        Ok(moved)
    }
}
