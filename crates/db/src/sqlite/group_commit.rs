//! Group commit for submissions.
//!
//! With `synchronous=FULL` every commit waits for an fsync, and SQLite has one
//! writer, so committing each submission on its own caps the rate at one
//! fsync per job. Instead, submissions queue here; one task takes every
//! submission waiting at that moment, records each inside its own savepoint of
//! one `BEGIN IMMEDIATE` transaction, commits once, and only then answers
//! each caller. Durability is unchanged: nobody hears "inserted" before the
//! fsync that covers their row. A refused or failed submission rolls back to
//! its savepoint and leaves its neighbours alone.
//!
//! The batch runs on a blocking thread through rusqlite, statement after
//! statement, rather than through sqlx, whose SQLite driver hands every
//! statement to a connection thread and back (see `inline_read.rs`): those
//! hand-offs, not SQLite, were the cost of a submission. The connection is
//! a second writer beside the sqlx pool's one; a batch holds that pool's
//! connection while it writes, so the two take turns in the pool's queue
//! instead of colliding on SQLite's lock, whose busy handler sleeps.

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use sqlx::SqlitePool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

use genq_engine::db::{DbResult, InsertOutcome};
use genq_engine::idempotency::KeptKey;
use genq_engine::{DbError, Job, LimitKind, SubmitLimits};

use super::keys::KeptIndex;
use crate::codec::to_json;

/// Most submissions one transaction takes. Large enough to cover a burst of
/// concurrent HTTP requests, small enough that a batch holds the writer for
/// only a few milliseconds.
const MAX_BATCH: usize = 256;

/// One caller's jobs (one, or a batch), all or none.
struct Submission {
    jobs: Vec<Job>,
    limits: SubmitLimits,
    key: Option<KeptKey>,
    reply: oneshot::Sender<DbResult<InsertOutcome>>,
}

type Outcomes = Vec<DbResult<InsertOutcome>>;

/// The submitting side. Dropping it ends the committing task once the
/// submissions already queued are done.
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Submission>,
}

impl GroupCommit {
    /// Keys kept by the batches are recorded in `kept` once committed.
    pub(super) fn start(path: PathBuf, writer: SqlitePool, kept: Arc<KeptIndex>) -> Self {
        let (queue, submissions) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(commit_loop(path, writer, submissions, kept));
        Self { queue }
    }

    pub(super) async fn insert(
        &self,
        jobs: &[Job],
        limits: &SubmitLimits,
        key: Option<&KeptKey>,
    ) -> DbResult<InsertOutcome> {
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            jobs: jobs.to_vec(),
            limits: limits.clone(),
            key: key.cloned(),
            reply,
        };
        self.queue.send(submission).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> DbError {
    DbError::other("the SQLite submission writer stopped")
}

async fn commit_loop(
    path: PathBuf,
    writer: SqlitePool,
    mut submissions: mpsc::Receiver<Submission>,
    kept: Arc<KeptIndex>,
) {
    let mut connection: Option<Connection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while submissions.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let path = path.clone();
        let work = std::mem::take(&mut batch);
        // The turn of the sqlx writer, held until the batch is committed.
        let turn = match writer.acquire().await {
            Ok(turn) => turn,
            Err(e) => {
                let outcomes = fail_all(work.len(), "waiting for the SQLite writer", &e);
                for (submission, outcome) in work.into_iter().zip(outcomes) {
                    let _ = submission.reply.send(outcome);
                }
                continue;
            }
        };
        let held = connection.take();
        let kept = Arc::clone(&kept);
        let done = tokio::task::spawn_blocking(move || {
            let (held, outcomes) = match held.map_or_else(|| open(&path), Ok) {
                Ok(mut c) => {
                    let outcomes = commit_batch(&mut c, &work, &kept);
                    (Some(c), outcomes)
                }
                Err(e) => (None, fail_all(work.len(), "opening the SQLite writer", &e)),
            };
            (held, outcomes, work)
        })
        .await;
        drop(turn);
        let Ok((held, outcomes, work)) = done else {
            // The blocking thread panicked; its callers hear that the writer
            // stopped when their reply senders drop.
            continue;
        };
        connection = held;
        for (submission, outcome) in work.into_iter().zip(outcomes) {
            // The caller may have gone (its request was dropped); the job is
            // recorded all the same, as it would be without batching.
            let _ = submission.reply.send(outcome);
        }
    }
}

fn open(path: &PathBuf) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(30))?;
    // The same durability as the sqlx pool (`SqliteStore::connect`), and
    // the same in-memory statement journals: each submission's savepoint
    // keeps the pages it changes in one, which SQLite otherwise spills to
    // a temporary file past 64 KiB and then writes page by page. A batch
    // of submissions passed that at once: 37 `pwrite64` calls per job went
    // to that file, more than to the WAL (`perf record -e
    // syscalls:sys_enter_pwrite64` on a server under `genq-bench --only api`).
    c.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )?;
    c.pragma_update(
        None,
        "wal_autocheckpoint",
        super::checkpoint::WRITER_CHECKPOINT_PAGES,
    )?;
    Ok(c)
}

/// One outcome per submission, in order. The keys kept are recorded in
/// `kept` after the commit and before anyone hears of it (whose claim then
/// ends), so that a retry finds its key either in flight or kept.
fn commit_batch(c: &mut Connection, batch: &[Submission], kept: &KeptIndex) -> Outcomes {
    let mut tx = match c.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch.len(), "starting a transaction", &e),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut kept_rows = Vec::new();
    for submission in batch {
        let savepoint = match tx.savepoint() {
            Ok(savepoint) => savepoint,
            Err(e) => return fail_all(batch.len(), "starting a savepoint", &e),
        };
        let outcome = insert_submission(&savepoint, submission)
            .map_err(|e| DbError::new("inserting a job", e));
        // A refusal wrote nothing, but an error may have left half a job:
        // dropping the savepoint rolls it back.
        let outcome = match outcome {
            Ok((InsertOutcome::Inserted, row)) => {
                if let Err(e) = savepoint.commit() {
                    return fail_all(batch.len(), "ending a savepoint", &e);
                }
                if let (Some(key), Some(row)) = (&submission.key, row) {
                    kept_rows.push((key, row));
                }
                Ok(InsertOutcome::Inserted)
            }
            Ok((refused, _)) => Ok(refused),
            Err(e) => Err(e),
        };
        outcomes.push(outcome);
    }
    match tx.commit() {
        Ok(()) => {
            let now = genq_engine::time::now_ms();
            for (key, row) in kept_rows {
                kept.record(key.account, &key.key, row, key.expires_at, now);
            }
            outcomes
        }
        // Nothing of the batch is on disk: every caller hears an error, also
        // those refused, since their refusal may have counted jobs that are
        // now gone.
        Err(e) => fail_all(batch.len(), "committing jobs", &e),
    }
}

/// DbError is not Clone: each caller of a failed batch gets the same message.
fn fail_all(n: usize, what: &str, e: &dyn std::fmt::Display) -> Outcomes {
    tracing::error!(error = %e, "{what} for {n} submissions failed");
    (0..n)
        .map(|_| Err(DbError::other(format!("{what}: {e}"))))
        .collect()
}

/// Records a submission's jobs in order, each checked as it comes (so a
/// batch meets the limits and the balance as a whole), then its key (the
/// row id it was kept as); the first refusal is the answer (the caller's
/// savepoint undoes the rest).
fn insert_submission(
    c: &Connection,
    submission: &Submission,
) -> rusqlite::Result<(InsertOutcome, Option<i64>)> {
    let mut charged = 0;
    for job in &submission.jobs {
        match insert_pending(c, job, &submission.limits)? {
            InsertOutcome::Inserted => charged += job.cost_micro_cents.max(0),
            // The balance before this submission, as the caller asks about.
            InsertOutcome::InsufficientBalance { balance } => {
                let balance = balance + charged;
                return Ok((InsertOutcome::InsufficientBalance { balance }, None));
            }
            refused => return Ok((refused, None)),
        }
    }
    let row = submission
        .key
        .as_ref()
        .map(|key| keep_key(c, key))
        .transpose()?;
    Ok((InsertOutcome::Inserted, row))
}

/// Keeps an idempotency key with its answer, as a new row. This process's
/// claim makes it the key's only writer, and its claim found no unexpired
/// row of the key (see `keys.rs`); an expired one is left to the sweep.
fn keep_key(c: &Connection, key: &KeptKey) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, status, body, job_id, \
         created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        key.account.to_string(),
        key.key,
        key.answer.fingerprint,
        key.answer.status,
        key.answer.body,
        key.job_id,
        key.created_at,
        key.expires_at,
    ])?;
    Ok(c.last_insert_rowid())
}

/// Checks `limits` and the balance, then records the PENDING job and its
/// reservation.
fn insert_pending(
    c: &Connection,
    job: &Job,
    limits: &SubmitLimits,
) -> rusqlite::Result<InsertOutcome> {
    let account = job.account_id.to_string();
    if let Some(max) = limits.max_active_per_key {
        let active: i64 = c
            .prepare_cached(
                "SELECT count(*) FROM jobs WHERE api_key_id = ?1 AND dialect = ?2 \
                 AND state IN ('PENDING', 'PROCESSING')",
            )?
            .query_row(params![job.api_key_id.to_string(), job.dialect], |row| {
                row.get(0)
            })?;
        if active >= i64::from(max) {
            return Ok(InsertOutcome::LimitReached(LimitKind::PerKey));
        }
    }
    if let Some(default) = limits.max_active_per_account {
        // `active_jobs` is kept by triggers (migration 0005).
        let (active, limit): (i64, i64) = c
            .prepare_cached(
                "SELECT active_jobs, COALESCE(max_concurrent_jobs, ?1) FROM accounts WHERE id = ?2",
            )?
            .query_row(params![i64::from(default), account], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        if active >= limit {
            return Ok(InsertOutcome::LimitReached(LimitKind::PerAccount));
        }
    }
    if job.cost_micro_cents > 0 {
        let balance: i64 = c
            .prepare_cached("SELECT balance_micro_cents FROM accounts WHERE id = ?")?
            .query_row([&account], |row| row.get(0))?;
        if balance < job.cost_micro_cents {
            return Ok(InsertOutcome::InsufficientBalance { balance });
        }
    }
    let (model, version) = job
        .model
        .as_ref()
        .map(|m| (m.slug.as_str(), m.version.as_str()))
        .unzip();
    let id = job.id.to_string();
    c.prepare_cached(
        "INSERT INTO jobs (id, account_id, api_key_id, kind, dialect, input, input_files, state, progress, \
         outputs, retries, webhook_url, model, model_version, cost_micro_cents, media_token, share_token, \
         correlation_id, created_at, updated_at, priority, timeout_ms, deadline_at, queue_round) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'PENDING', 0, '[]', 0, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
         ?17, ?18, ?19, \
         max(COALESCE((SELECT min(queue_round) FROM jobs WHERE state = 'PENDING'), \
                      (SELECT queue_round FROM jobs ORDER BY id DESC LIMIT 1), 0), \
             COALESCE((SELECT max(queue_round) + 1 FROM jobs WHERE account_id = ?2 AND state = 'PENDING'), 0)))",
    )?
    .execute(params![
        id,
        account,
        job.api_key_id.to_string(),
        job.kind,
        job.dialect,
        to_json(&job.input),
        to_json(&job.input_files),
        job.webhook_url,
        model,
        version,
        job.cost_micro_cents,
        job.media_token,
        job.share_token,
        job.correlation_id,
        job.created_at,
        job.updated_at,
        job.priority,
        job.timeout_ms,
        job.deadline_at,
    ])?;
    if job.cost_micro_cents > 0 {
        // As `accounts::post_ledger`: the balance and its ledger row move together.
        c.prepare_cached(
            "UPDATE accounts SET balance_micro_cents = balance_micro_cents + ? WHERE id = ?",
        )?
        .execute(params![-job.cost_micro_cents, account])?;
        c.prepare_cached(
            "INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at) \
             VALUES (?, ?, ?, 'reserve', ?)",
        )?
        .execute(params![account, id, -job.cost_micro_cents, job.created_at])?;
    }
    Ok(InsertOutcome::Inserted)
}
