//! The queue: claims, leases, progress and outcomes (heartbeats, progress
//! and releases are in `crate::shared`). Every move to a
//! terminal state settles the job in the same transaction: a refund for a
//! failed or cancelled job that was charged, the webhook it owes, and
//! run-time statistics.

use sqlx::{Sqlite, Transaction};

use genq_engine::db::{ClaimOutcome, ClaimRequest, DbResult};
use genq_engine::job::Lease;
use genq_engine::time::Millis;
use genq_engine::webhook::event_for;
use genq_engine::{JobFailure, JobId, JobOutput, JobState};

use super::accounts::post_ledger;
use super::{outbox, SqliteDb};
use crate::codec::{db_err, job_from_row, to_json, Columns, JOB_COLUMNS};
use crate::policy::{worker_lost_message, RUN_TIME_WEIGHT, WORKER_LOST};
use crate::shared::queue_db;
use crate::sql;

queue_db! { SqliteDb;
    async fn server_version(&self) -> DbResult<String> {
        sqlx::query_scalar("SELECT 'SQLite ' || sqlite_version()")
            .fetch_one(self.reads())
            .await
            .map_err(db_err("reading the database version"))
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> DbResult<ClaimOutcome> {
        let mut outcome = ClaimOutcome::default();
        if request.kinds.is_empty() {
            return Ok(outcome);
        }
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err("starting a transaction"))?;
        let gave_up = sqlx::query(&format!(
            "UPDATE jobs SET state = 'FAILED', error_code = $1, error_message = $2, \
             completed_at = $3, updated_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE state = 'PROCESSING' AND lease_until < $3 AND retries >= $4 \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(WORKER_LOST)
        .bind(worker_lost_message(request.max_retries))
        .bind(request.now)
        .bind(i64::from(request.max_retries))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err("failing abandoned jobs"))?;
        for row in &gave_up {
            let job = job_from_row(row)?;
            settle(&mut tx, &job.id.to_string(), JobState::Failed, request.now).await?;
            outcome.gave_up.push(job);
        }

        let kinds_from = |first: usize| {
            (first..first + request.kinds.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Jobs whose worker vanished go first, earliest expired first: they
        // are older than any pending one. Pending jobs go by fair-queue
        // round (migrations/sqlite/0004_fair_queue.sql), then age.
        let expired = format!(
            "SELECT id, 1 AS retry FROM jobs WHERE state = 'PROCESSING' AND lease_until < $1 \
             AND kind IN ({}) ORDER BY lease_until, id LIMIT 1",
            kinds_from(2)
        );
        let pending = format!(
            "SELECT id, 0 AS retry FROM jobs WHERE state = 'PENDING' \
             AND kind IN ({}) ORDER BY queue_round, id LIMIT 1",
            kinds_from(1)
        );
        // The head of the queue says whose turn it is; the account's best
        // job runs in it (migrations/sqlite/0010_priority_deadlines.sql).
        let best = format!(
            "SELECT best.id, best.queue_round FROM jobs head JOIN jobs best \
             ON best.account_id = head.account_id AND best.state = 'PENDING' \
             WHERE head.id = $1 AND best.kind IN ({}) \
             ORDER BY best.priority DESC, best.queue_round, best.id LIMIT 1",
            kinds_from(2)
        );
        let claim = format!(
            "UPDATE jobs SET state = 'PROCESSING', attempt = attempt + 1, retries = retries + $1, \
             progress = 0, lease_owner = $2, lease_until = $3, started_at = COALESCE(started_at, $4), \
             updated_at = $4 WHERE id = $5 RETURNING attempt, {JOB_COLUMNS}"
        );
        // With no priority set on any pending job, the head of the queue is
        // every turn's runner.
        let prioritised: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'PENDING' AND priority <> 0)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err("claiming a job"))?;
        // One transaction (one commit) for the whole batch.
        while outcome.claimed.len() < request.limit.max(1) as usize {
            let mut candidate = None;
            for (sql, now) in [(&expired, Some(request.now)), (&pending, None)] {
                let mut query = sqlx::query_as::<_, (String, i64)>(sql);
                if let Some(now) = now {
                    query = query.bind(now);
                }
                for kind in request.kinds {
                    query = query.bind(kind);
                }
                candidate = query
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err("claiming a job"))?;
                if candidate.is_some() {
                    break;
                }
            }
            let Some((mut id, retry)) = candidate else {
                break;
            };
            if retry == 0 && prioritised {
                let mut query = sqlx::query_as::<_, (String, i64)>(&best).bind(&id);
                for kind in request.kinds {
                    query = query.bind(kind);
                }
                let (runner, round) = query
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err("claiming a job"))?;
                if runner != id {
                    // The job passed over takes the runner's round: the
                    // account keeps the turns it had.
                    sqlx::query("UPDATE jobs SET queue_round = $1 WHERE id = $2")
                        .bind(round)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err("claiming a job"))?;
                    id = runner;
                }
            }
            let row = sqlx::query(&claim)
                .bind(retry)
                .bind(request.owner)
                .bind(request.lease_until)
                .bind(request.now)
                .bind(&id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err("claiming a job"))?;
            let job = job_from_row(&row)?;
            let lease = Lease {
                job_id: job.id,
                attempt: row.int("attempt")?,
                owner: request.owner.to_owned(),
            };
            outcome.claimed.push((job, lease));
        }
        tx.commit().await.map_err(db_err("committing a claim"))?;
        Ok(outcome)
    }

    async fn complete(&self, lease: &Lease, outputs: &[JobOutput], now: Millis) -> DbResult<bool> {
        let outputs = to_json(&outputs);
        self.finish(lease, JobState::Completed, Some(&outputs), None, now)
            .await
    }

    async fn fail(&self, lease: &Lease, failure: &JobFailure, now: Millis) -> DbResult<bool> {
        self.finish(lease, JobState::Failed, None, Some(failure), now)
            .await
    }

    async fn record_cancelled(&self, lease: &Lease, now: Millis) -> DbResult<bool> {
        self.finish(lease, JobState::Cancelled, None, None, now)
            .await
    }

    async fn jobs_ahead(&self, id: JobId) -> DbResult<u64> {
        // In claim order: fair-queue round, then age. Counted exactly up to
        // EXACT_AHEAD; past that, the whole queue's depth (at most a second
        // old) stands in, so a deep queue doesn't make every submission
        // count it.
        let ahead = self.inline.jobs_ahead(id)?;
        self.queue_depth
            .ahead(ahead, || async {
                let pending: i64 = sqlx::query_scalar(sql::COUNT_PENDING)
                    .fetch_one(&self.reader)
                    .await
                    .map_err(db_err("counting queued jobs"))?;
                Ok(pending as u64)
            })
            .await
    }

    async fn model_run_ms(&self, model: &str) -> DbResult<Option<f64>> {
        self.inline.model_run_ms(model)
    }
}

impl SqliteDb {
    /// PROCESSING → a terminal state under the caller's lease, settled in the
    /// same transaction. `outputs` and `failure` are left as they are when
    /// None.
    async fn finish(
        &self,
        lease: &Lease,
        state: JobState,
        outputs: Option<&str>,
        failure: Option<&JobFailure>,
        now: Millis,
    ) -> DbResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, \
             progress = CASE WHEN $1 = 'COMPLETED' THEN 100 ELSE progress END, \
             outputs = COALESCE($2, outputs), error_code = COALESCE($3, error_code), \
             error_message = COALESCE($4, error_message), completed_at = $5, updated_at = $5, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $6 AND attempt = $7 AND state = 'PROCESSING'",
        )
        .bind(state.as_str())
        .bind(outputs)
        .bind(failure.map(|f| f.code.as_str()))
        .bind(failure.map(|f| f.message.as_str()))
        .bind(now)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .execute(&mut *tx)
        .await
        .map_err(db_err("recording a job's outcome"))?;
        let moved = done.rows_affected() == 1;
        if moved {
            settle(&mut tx, &lease.job_id.to_string(), state, now).await?;
        }
        tx.commit()
            .await
            .map_err(db_err("committing a job's outcome"))?;
        Ok(moved)
    }
}

/// What a job's move to a terminal state owes, recorded in the same
/// transaction: its refund (failed or cancelled, once — the ledger's unique
/// index refuses a second), its webhook, and its model's run time. The same
/// rules as `genq_settle` (migrations/postgres/0002_queue_functions.sql).
pub(super) async fn settle(
    tx: &mut Transaction<'_, Sqlite>,
    job: &str,
    state: JobState,
    now: Millis,
) -> DbResult<()> {
    let (account, cost, model, started_at): (String, i64, Option<String>, Option<i64>) =
        sqlx::query_as(
            "SELECT account_id, cost_micro_cents, model, started_at FROM jobs WHERE id = $1",
        )
        .bind(job)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err("reading a job"))?;
    if cost > 0 && matches!(state, JobState::Failed | JobState::Cancelled) {
        post_ledger(tx, &account, Some(job), cost, "refund", now).await?;
    }
    if let (JobState::Completed, Some(model), Some(started)) = (state, model, started_at) {
        let run_ms = (now - started).max(0) as f64;
        sqlx::query(
            "INSERT INTO model_stats (model, runs, avg_run_ms) VALUES ($1, 1, $2) \
             ON CONFLICT (model) DO UPDATE SET runs = runs + 1, \
             avg_run_ms = avg_run_ms * (1 - $3) + $2 * $3",
        )
        .bind(model)
        .bind(run_ms)
        .bind(RUN_TIME_WEIGHT)
        .execute(&mut **tx)
        .await
        .map_err(db_err("recording run time"))?;
    }
    outbox::enqueue(tx, job, event_for(state), now).await?;
    Ok(())
}
