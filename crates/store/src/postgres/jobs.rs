//! Jobs: the queue, leases and state changes. Every move to a terminal state
//! settles the job in the same transaction: a refund for a failed or cancelled
//! job that was charged, the webhook it owes, and run-time statistics.

use sqlx::{Postgres, Transaction};

use genq_engine::job::Lease;
use genq_engine::store::{CancelOutcome, ClaimOutcome, ClaimRequest, InsertOutcome, StoreResult};
use genq_engine::time::Millis;
use genq_engine::webhook::{event_for, new_delivery_id};
use genq_engine::{
    AccountId, Job, JobFailure, JobId, JobOutput, JobQuery, JobState, StoreError, SubmitLimits,
};

use super::finish::Outcome;
use super::{
    column, db_err, job_from_row, parse, text, to_json, PostgresStore, JOBS_CHANNEL, JOB_COLUMNS,
    SWEEP_EVERY_MS,
};
use crate::queue_depth::EXACT_AHEAD;

/// Weight of the newest run in a model's moving-average run time.
pub(super) const RUN_TIME_WEIGHT: f64 = 0.2;

impl PostgresStore {
    /// One round trip: see migrations/postgres/0002_queue_functions.sql.
    pub(super) async fn enqueue(
        &self,
        job: &Job,
        limits: &SubmitLimits,
    ) -> StoreResult<InsertOutcome> {
        let (model, version) = job.model.clone().unzip();
        let (outcome, balance): (String, Option<i64>) = sqlx::query_as(
            "SELECT outcome, balance FROM genq_submit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(job.id.to_string())
        .bind(job.account_id.to_string())
        .bind(job.api_key_id.to_string())
        .bind(&job.kind)
        .bind(&job.dialect)
        .bind(to_json(&job.input))
        .bind(to_json(&job.input_files))
        .bind(&job.webhook_url)
        .bind(model)
        .bind(version)
        .bind(job.cost_micro_cents)
        .bind(&job.media_token)
        .bind(&job.share_token)
        .bind(job.created_at)
        .bind(job.updated_at)
        .bind(limits.max_active_per_key.map(i64::from))
        .bind(limits.max_active_per_account.map(i64::from))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err("inserting a job"))?;
        match outcome.as_str() {
            "INSERTED" => Ok(InsertOutcome::Inserted),
            "ACTIVE_LIMIT" => Ok(InsertOutcome::ActiveLimit),
            "CONCURRENCY_LIMIT" => Ok(InsertOutcome::ConcurrencyLimit),
            "INSUFFICIENT_BALANCE" => Ok(InsertOutcome::InsufficientBalance {
                balance: balance.unwrap_or_default(),
            }),
            "NO_ACCOUNT" => Err(StoreError::other(format!("no account {}", job.account_id))),
            other => Err(StoreError::other(format!(
                "unexpected submission outcome {other:?}"
            ))),
        }
    }

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
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub(super) async fn page(&self, account: AccountId, query: &JobQuery) -> StoreResult<Vec<Job>> {
        // An absent filter binds NULL and drops out of the WHERE clause.
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = $1 \
             AND ($2::text IS NULL OR id < $2) AND ($3::text IS NULL OR state = $3) \
             AND ($4::text IS NULL OR model = $4) ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(account.to_string())
            .bind(query.before.map(|id| id.to_string()))
            .bind(query.state.map(JobState::as_str))
            .bind(query.model.as_deref())
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err("listing jobs"))?;
        rows.iter().map(job_from_row).collect()
    }

    /// PENDING jobs a claim would take before this one: exactly up to
    /// EXACT_AHEAD, then the queue's depth (see `queue_depth`).
    pub(super) async fn count_ahead(&self, id: JobId) -> StoreResult<u64> {
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
                let pending: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'PENDING'")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(db_err("counting queued jobs"))?;
                Ok(pending as u64)
            })
            .await
    }

    pub(super) async fn cancel_job(
        &self,
        account: AccountId,
        id: JobId,
        processing: bool,
        now: Millis,
    ) -> StoreResult<CancelOutcome> {
        let mut tx = self.begin().await?;
        let cancelled = sqlx::query(&format!(
            "UPDATE jobs SET state = 'CANCELLED', updated_at = $1, completed_at = $1 \
             WHERE id = $2 AND account_id = $3 AND state = 'PENDING' RETURNING {JOB_COLUMNS}"
        ))
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
                "UPDATE jobs SET cancel_requested = TRUE, updated_at = $1 \
                 WHERE id = $2 AND account_id = $3 AND state = 'PROCESSING' RETURNING {JOB_COLUMNS}"
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
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 AND account_id = $2")
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
        self.finish(lease, JobState::Cancelled, None, None, now)
            .await
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
            Some(to_json(&outputs)),
            None,
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
        self.finish(lease, JobState::Failed, None, Some(failure), now)
            .await
    }

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
    ) -> StoreResult<bool> {
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

    pub(super) async fn release_job(&self, lease: &Lease, now: Millis) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'PENDING', progress = 0, updated_at = $1, lease_owner = NULL, \
             lease_until = NULL WHERE id = $2 AND attempt = $3 AND state = 'PROCESSING'",
        )
        .bind(now)
        .bind(lease.job_id.to_string())
        .bind(lease.attempt)
        .execute(&mut *tx)
        .await
        .map_err(db_err("releasing a job"))?;
        let moved = done.rows_affected() == 1;
        if moved {
            // Another process should take the job over: tell it, as an insert does.
            notify_jobs(&mut tx).await?;
        }
        tx.commit().await.map_err(db_err("committing a release"))?;
        Ok(moved)
    }

    pub(super) async fn claim_next(&self, request: &ClaimRequest<'_>) -> StoreResult<ClaimOutcome> {
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
                attempt: column(row, "attempt", "claiming a job")?,
                owner: request.owner.to_owned(),
            };
            outcome.claimed.push((job, lease));
        }
        Ok(outcome)
    }

    /// Fails the jobs whose worker was lost once too often, and settles them.
    async fn give_up_abandoned(&self, request: &ClaimRequest<'_>) -> StoreResult<Vec<JobId>> {
        let mut tx = self.begin().await?;
        let message = format!(
            "the job was interrupted {} times (its worker stopped responding) and was given up",
            request.max_retries + 1
        );
        // SKIP LOCKED: a job another claimer is giving up (or its worker is
        // heartbeating) is theirs to handle.
        let mut gave_up: Vec<(String, String)> = sqlx::query_as(
            "UPDATE jobs SET state = 'FAILED', error_code = 'WORKER_LOST', error_message = $1, \
             completed_at = $2, updated_at = $2, lease_owner = NULL, lease_until = NULL \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'PROCESSING' AND lease_until < $2 \
                          AND retries >= $3 FOR UPDATE SKIP LOCKED) \
             RETURNING account_id, id",
        )
        .bind(&message)
        .bind(request.now)
        .bind(i64::from(request.max_retries))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err("failing abandoned jobs"))?;
        // Account rows are locked in one order by every claimer: no deadlock.
        gave_up.sort();
        for (_, id) in &gave_up {
            settle(&mut tx, id, JobState::Failed, request.now).await?;
        }
        tx.commit().await.map_err(db_err("committing a sweep"))?;
        gave_up.iter().map(|(_, id)| parse(id, "job id")).collect()
    }
}

/// Wakes other processes' `wait_for_jobs` once the transaction commits.
async fn notify_jobs(tx: &mut Transaction<'_, Postgres>) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(&mut **tx)
        .await
        .map_err(db_err("announcing a job"))?;
    Ok(())
}

/// What a job's move to a terminal state owes (refund, run time, webhook),
/// recorded in the caller's transaction by `genq_settle`
/// (migrations/postgres/0002_queue_functions.sql).
async fn settle(
    tx: &mut Transaction<'_, Postgres>,
    job: &str,
    state: JobState,
    now: Millis,
) -> StoreResult<()> {
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
