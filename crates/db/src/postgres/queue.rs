//! The queue: claims, leases, progress and outcomes (heartbeats, progress
//! and releases are in `crate::shared`). Every move to a terminal state
//! settles the job in the same transaction (`genq_settle`).

use sqlx::{Postgres, Transaction};

use genq_engine::db::{ClaimOutcome, ClaimRequest, DbResult};
use genq_engine::job::Lease;
use genq_engine::time::Millis;
use genq_engine::webhook::{event_for, new_delivery_id};
use genq_engine::{Job, JobFailure, JobId, JobOutput, JobState};

use super::finish::Outcome;
use super::{PostgresDb, SWEEP_EVERY_MS};
use crate::codec::{db_err, job_from_row, text, to_json, Columns, JOB_COLUMNS};
use crate::policy::{worker_lost_message, RUN_TIME_WEIGHT, WORKER_LOST};
use crate::queue_depth::EXACT_AHEAD;
use crate::shared::queue_db;
use crate::sql;

queue_db! { PostgresDb;
    async fn server_version(&self) -> DbResult<String> {
        sqlx::query_scalar("SELECT version()")
            .fetch_one(self.reads())
            .await
            .map_err(db_err("reading the database version"))
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> DbResult<ClaimOutcome> {
        let mut outcome = ClaimOutcome::default();
        if request.kinds.is_empty() {
            return Ok(outcome);
        }
        // Giving up on abandoned jobs is a sweep, not a claim: it runs in
        // its own transaction at most once a second of the claimers' clock.
        let last = self.last_sweep.load(std::sync::atomic::Ordering::Relaxed);
        if !(last..last + SWEEP_EVERY_MS).contains(&request.now) {
            self.last_sweep
                .store(request.now, std::sync::atomic::Ordering::Relaxed);
            outcome.gave_up = self.give_up_abandoned(request).await?;
        }

        // One round trip; see migrations/postgres/0002_queue_functions.sql
        // for why the claim is a function.
        let rows = sqlx::query(&format!(
            "SELECT attempt, {JOB_COLUMNS} FROM genq_claim($1, $2, $3, $4, $5, $6)"
        ))
        .bind(request.kinds)
        .bind(request.owner)
        .bind(request.lease_until)
        .bind(request.now)
        .bind(i64::from(request.max_retries))
        .bind(i64::from(request.limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("claiming a job"))?;
        for row in &rows {
            let job = job_from_row(row)?;
            let lease = Lease {
                job_id: job.id,
                attempt: row.int("attempt")?,
                owner: request.owner.to_owned(),
            };
            outcome.claimed.push((job, lease));
        }
        Ok(outcome)
    }

    async fn complete(&self, lease: &Lease, outputs: &[JobOutput], now: Millis) -> DbResult<bool> {
        self.finish(
            lease,
            JobState::Completed,
            Some(to_json(&outputs)),
            None,
            now,
        )
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

    /// PENDING jobs a claim would take before this one: exactly up to
    /// EXACT_AHEAD, then the queue's depth (see `queue_depth`).
    async fn jobs_ahead(&self, id: JobId) -> DbResult<u64> {
        let ahead: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM jobs j JOIN jobs me ON me.id = $1 \
             WHERE j.state = 'PENDING' AND (j.queue_round, j.id) < (me.queue_round, me.id) \
             LIMIT $2) AS ahead",
        )
        .bind(id.to_string())
        .bind(EXACT_AHEAD)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err("counting queued jobs"))?;
        self.queue_depth
            .ahead(ahead, || async {
                let pending: i64 = sqlx::query_scalar(sql::COUNT_PENDING)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("counting queued jobs"))?;
                Ok(pending as u64)
            })
            .await
    }

    async fn model_run_ms(&self, model: &str) -> DbResult<Option<f64>> {
        sqlx::query_scalar(sql::MODEL_RUN_MS)
            .bind(model)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err("reading model statistics"))
    }
}

impl PostgresDb {
    /// PROCESSING → a terminal state under the caller's lease, settled in
    /// the same statement (see `genq_finish` in
    /// migrations/postgres/0002_queue_functions.sql), grouped with the
    /// process's other outcomes of the moment (`finish.rs`).
    async fn finish(
        &self,
        lease: &Lease,
        state: JobState,
        outputs: Option<String>,
        failure: Option<&JobFailure>,
        now: Millis,
    ) -> DbResult<bool> {
        let outcome = Outcome {
            job_id: lease.job_id.to_string(),
            attempt: lease.attempt,
            state: state.as_str(),
            at: now,
            outputs,
            error_code: failure.map(|f| text(&f.code).into_owned()),
            error_message: failure.map(|f| text(&f.message).into_owned()),
            delivery_id: new_delivery_id(),
            event: event_for(state),
        };
        self.finisher.finish(&self.pool, outcome).await
    }

    /// Fails the jobs whose worker was lost once too often, and settles them.
    async fn give_up_abandoned(&self, request: &ClaimRequest<'_>) -> DbResult<Vec<Job>> {
        let mut tx = self.begin().await?;
        // SKIP LOCKED: a job another claimer is giving up (or its worker is
        // heartbeating) is theirs to handle.
        let rows = sqlx::query(&format!(
            "UPDATE jobs SET state = 'FAILED', error_code = $1, error_message = $2, \
             completed_at = $3, updated_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'PROCESSING' AND lease_until < $3 \
                          AND retries >= $4 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(WORKER_LOST)
        .bind(worker_lost_message(request.max_retries))
        .bind(request.now)
        .bind(i64::from(request.max_retries))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err("failing abandoned jobs"))?;
        let mut gave_up = rows
            .iter()
            .map(job_from_row)
            .collect::<DbResult<Vec<_>>>()?;
        // Account rows are locked in one order by every claimer: no deadlock.
        gave_up.sort_by_key(|job| (job.account_id, job.id));
        for job in &gave_up {
            settle(&mut tx, &job.id.to_string(), JobState::Failed, request.now).await?;
        }
        tx.commit().await.map_err(db_err("committing a sweep"))?;
        Ok(gave_up)
    }
}

/// What a job's move to a terminal state owes (refund, run time, webhook),
/// recorded in the caller's transaction by `genq_settle`
/// (migrations/postgres/0002_queue_functions.sql).
pub(super) async fn settle(
    tx: &mut Transaction<'_, Postgres>,
    job: &str,
    state: JobState,
    now: Millis,
) -> DbResult<()> {
    sqlx::query("SELECT genq_settle($1, $2, $3, $4, $5, $6)")
        .bind(job)
        .bind(state.as_str())
        .bind(now)
        .bind(new_delivery_id())
        .bind(event_for(state))
        .bind(RUN_TIME_WEIGHT)
        .execute(&mut **tx)
        .await
        .map_err(db_err("settling a job"))?;
    Ok(())
}
