//! Jobs: the queue, leases and state changes. Every move to a terminal state
//! settles the job in the same transaction: a refund for a failed or cancelled
//! job that was charged, the webhook it owes, and run-time statistics.

use sqlx::{Sqlite, Transaction};

use genq_engine::job::Lease;
use genq_engine::store::{CancelOutcome, ClaimOutcome, ClaimRequest, StoreResult};
use genq_engine::time::Millis;
use genq_engine::webhook::event_for;
use genq_engine::{AccountId, Job, JobFailure, JobId, JobOutput, JobQuery, JobState};

use super::accounts::post_ledger;
use super::{column, db_err, job_from_row, parse, to_json, webhooks, SqliteStore, JOB_COLUMNS};

/// Weight of the newest run in a model's moving-average run time.
const RUN_TIME_WEIGHT: f64 = 0.2;

impl SqliteStore {
    pub(super) async fn job_where(
        &self,
        condition: &str,
        binds: &[String],
    ) -> StoreResult<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {condition}");
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = query.bind(value);
        }
        let row = query
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub(super) async fn page(&self, account: AccountId, query: &JobQuery) -> StoreResult<Vec<Job>> {
        // An absent filter binds NULL and drops out of the WHERE clause.
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = ?1 \
             AND (?2 IS NULL OR id < ?2) AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR model = ?4) \
             ORDER BY id DESC LIMIT ?5"
        );
        let rows = sqlx::query(&sql)
            .bind(account.to_string())
            .bind(query.before.map(|id| id.to_string()))
            .bind(query.state.map(JobState::as_str))
            .bind(query.model.as_deref())
            .bind(i64::from(query.limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("listing jobs"))?;
        rows.iter().map(job_from_row).collect()
    }

    pub(super) async fn cancel_job(
        &self,
        account: AccountId,
        id: JobId,
        processing: bool,
        now: Millis,
    ) -> StoreResult<CancelOutcome> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(db_err("starting a transaction"))?;
        let cancelled = sqlx::query(&format!(
            "UPDATE jobs SET state = 'CANCELLED', updated_at = ?, completed_at = ? \
             WHERE id = ? AND account_id = ? AND state = 'PENDING' RETURNING {JOB_COLUMNS}"
        ))
        .bind(now)
        .bind(now)
        .bind(id.to_string())
        .bind(account.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err("cancelling a job"))?;
        if let Some(row) = cancelled {
            settle(&mut tx, &id.to_string(), JobState::Cancelled, now).await?;
            tx.commit()
                .await
                .map_err(db_err("committing a cancellation"))?;
            return Ok(CancelOutcome::Cancelled(Box::new(job_from_row(&row)?)));
        }
        if processing {
            let requested = sqlx::query(&format!(
                "UPDATE jobs SET cancel_requested = 1, updated_at = ? \
                 WHERE id = ? AND account_id = ? AND state = 'PROCESSING' RETURNING {JOB_COLUMNS}"
            ))
            .bind(now)
            .bind(id.to_string())
            .bind(account.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err("cancelling a job"))?;
            if let Some(row) = requested {
                tx.commit()
                    .await
                    .map_err(db_err("committing a cancellation"))?;
                return Ok(CancelOutcome::CancelRequested(Box::new(job_from_row(
                    &row,
                )?)));
            }
        }
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = ? AND account_id = ?")
                .bind(id.to_string())
                .bind(account.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err("reading a job"))?;
        Ok(match state {
            Some(state) => CancelOutcome::NotCancellable(parse(&state, "job state")?),
            None => CancelOutcome::NotFound,
        })
    }

    pub(super) async fn cancel_running(&self, lease: &Lease, now: Millis) -> StoreResult<bool> {
        self.finish(lease, JobState::Cancelled, "", &[], now).await
    }

    pub(super) async fn complete_job(
        &self,
        lease: &Lease,
        outputs: &[JobOutput],
        now: Millis,
    ) -> StoreResult<bool> {
        self.finish(
            lease,
            JobState::Completed,
            ", progress = 100, outputs = ?",
            &[to_json(&outputs)],
            now,
        )
        .await
    }

    pub(super) async fn fail_job(
        &self,
        lease: &Lease,
        failure: &JobFailure,
        now: Millis,
    ) -> StoreResult<bool> {
        self.finish(
            lease,
            JobState::Failed,
            ", error_code = ?, error_message = ?",
            &[failure.code.clone(), failure.message.clone()],
            now,
        )
        .await
    }

    /// PROCESSING → a terminal state under the caller's lease, settled in the
    /// same transaction.
    async fn finish(
        &self,
        lease: &Lease,
        state: JobState,
        set: &str,
        binds: &[String],
        now: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(db_err("starting a transaction"))?;
        let sql = format!(
            "UPDATE jobs SET state = ?{set}, completed_at = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND attempt = ? AND state = 'PROCESSING'"
        );
        let mut query = sqlx::query(&sql).bind(state.as_str());
        for value in binds {
            query = query.bind(value);
        }
        let done = query
            .bind(now)
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

    pub(super) async fn claim_next(&self, request: &ClaimRequest<'_>) -> StoreResult<ClaimOutcome> {
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
            settle(&mut tx, id, JobState::Failed, request.now).await?;
        }
        outcome.gave_up = gave_up
            .iter()
            .map(|id| parse(id, "job id"))
            .collect::<StoreResult<_>>()?;

        let kinds = vec!["?"; request.kinds.len()].join(", ");
        // One transaction (one commit) for the whole batch.
        while outcome.claimed.len() < request.limit.max(1) as usize {
            // Jobs whose worker vanished go first: they are older than any pending one.
            let mut candidate = None;
            for (condition, is_retry) in [
                ("state = 'PROCESSING' AND lease_until < ?", true),
                ("state = 'PENDING'", false),
            ] {
                // Pending jobs go by fair-queue round (migrations/sqlite/0004_fair_queue.sql).
                let order = if is_retry { "id" } else { "queue_round, id" };
                let sql = format!(
                    "SELECT id FROM jobs WHERE {condition} AND kind IN ({kinds}) ORDER BY {order} LIMIT 1"
                );
                let mut query = sqlx::query_scalar::<_, String>(&sql);
                if is_retry {
                    query = query.bind(request.now);
                }
                for kind in request.kinds {
                    query = query.bind(kind);
                }
                if let Some(id) = query
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err("claiming a job"))?
                {
                    candidate = Some((id, is_retry));
                    break;
                }
            }
            let Some((id, is_retry)) = candidate else {
                break;
            };
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
                attempt: column(&row, "attempt", "claiming a job")?,
                owner: request.owner.to_owned(),
            };
            outcome.claimed.push((job, lease));
        }
        tx.commit().await.map_err(db_err("committing a claim"))?;
        Ok(outcome)
    }
}

/// What a job's move to a terminal state owes, recorded in the same
/// transaction: its refund (failed or cancelled, once — the ledger's unique
/// index refuses a second), its webhook, and its model's run time.
async fn settle(
    tx: &mut Transaction<'_, Sqlite>,
    job: &str,
    state: JobState,
    now: Millis,
) -> StoreResult<()> {
    let (account, cost, model, started_at): (String, i64, Option<String>, Option<i64>) =
        sqlx::query_as(
            "SELECT account_id, cost_micro_cents, model, started_at FROM jobs WHERE id = ?",
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
            "INSERT INTO model_stats (model, runs, avg_run_ms) VALUES (?1, 1, ?2) ON CONFLICT (model) DO UPDATE SET \
             runs = runs + 1, avg_run_ms = avg_run_ms * (1 - ?3) + ?2 * ?3",
        )
        .bind(model)
        .bind(run_ms)
        .bind(RUN_TIME_WEIGHT)
        .execute(&mut **tx)
        .await
        .map_err(db_err("recording run time"))?;
    }
    webhooks::enqueue(tx, job, event_for(state), now).await?;
    Ok(())
}
