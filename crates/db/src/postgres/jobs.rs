//! Jobs as their owners see them: submitting, reading, cancelling.

use async_trait::async_trait;
use serde_json::json;

use genq_engine::db::{CancelMode, CancelOutcome, CancelRequest, DbResult, InsertOutcome, JobDb};
use genq_engine::{AccountId, DbError, Job, JobId, JobQuery, JobState, LimitKind, SubmitLimits};

use super::queue::settle;
use super::PostgresDb;
use crate::codec::{db_err, job_from_row, parse, to_json};
use crate::sql;

/// The columns of a new job, as `genq_submit` takes them
/// (migrations/postgres/0003_events.sql): JSON, so that a new column changes
/// this object, not the function's signature.
fn job_record(job: &Job) -> serde_json::Value {
    json!({
        "id": job.id,
        "account_id": job.account_id,
        "api_key_id": job.api_key_id,
        "kind": job.kind,
        "dialect": job.dialect,
        "input": to_json(&job.input),
        "input_files": to_json(&job.input_files),
        "webhook_url": job.webhook_url,
        "model": job.model.as_ref().map(|m| &m.slug),
        "model_version": job.model.as_ref().map(|m| &m.version),
        "cost_micro_cents": job.cost_micro_cents,
        "media_token": job.media_token,
        "share_token": job.share_token,
        "correlation_id": job.correlation_id,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    })
}

#[async_trait]
impl JobDb for PostgresDb {
    /// One round trip: see `genq_submit`.
    async fn insert_job(&self, job: &Job, limits: &SubmitLimits) -> DbResult<InsertOutcome> {
        let (outcome, balance): (String, Option<i64>) =
            sqlx::query_as("SELECT outcome, balance FROM genq_submit($1::jsonb, $2, $3)")
                .bind(job_record(job).to_string())
                .bind(limits.max_active_per_key.map(i64::from))
                .bind(limits.max_active_per_account.map(i64::from))
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("inserting a job"))?;
        match outcome.as_str() {
            "INSERTED" => Ok(InsertOutcome::Inserted),
            "KEY_LIMIT" => Ok(InsertOutcome::LimitReached(LimitKind::PerKey)),
            "ACCOUNT_LIMIT" => Ok(InsertOutcome::LimitReached(LimitKind::PerAccount)),
            "INSUFFICIENT_BALANCE" => Ok(InsertOutcome::InsufficientBalance {
                balance: balance.unwrap_or_default(),
            }),
            "NO_ACCOUNT" => Err(DbError::other(format!("no account {}", job.account_id))),
            other => Err(DbError::other(format!(
                "unexpected submission outcome {other:?}"
            ))),
        }
    }

    async fn get_job(&self, account: AccountId, id: JobId) -> DbResult<Option<Job>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM jobs WHERE id = $1 AND account_id = $2",
            crate::codec::JOB_COLUMNS
        ))
        .bind(id.to_string())
        .bind(account.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_by_media_token(&self, token: &str) -> DbResult<Option<Job>> {
        self.job_by(&sql::JOB_BY_MEDIA_TOKEN, token).await
    }

    async fn job_by_share_token(&self, token: &str) -> DbResult<Option<Job>> {
        self.job_by(&sql::JOB_BY_SHARE_TOKEN, token).await
    }

    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> DbResult<Vec<Job>> {
        let rows = sqlx::query(&sql::JOB_PAGE)
            .bind(account.to_string())
            .bind(query.before.map(|id| id.to_string()))
            .bind(query.state.map(JobState::as_str))
            .bind(query.model.as_deref())
            .bind(query.dialect.as_deref())
            .bind(query.correlation_id.as_deref())
            .bind(query.updated_since)
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err("listing jobs"))?;
        rows.iter().map(job_from_row).collect()
    }

    async fn cancel(&self, request: &CancelRequest<'_>) -> DbResult<CancelOutcome> {
        let id = request.job.to_string();
        let account = request.account.to_string();
        let mut tx = self.begin().await?;
        let cancelled = sqlx::query(&sql::CANCEL_PENDING)
            .bind(request.now)
            .bind(&id)
            .bind(&account)
            .bind(request.dialect)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err("cancelling a job"))?;
        if let Some(row) = cancelled {
            settle(&mut tx, &id, JobState::Cancelled, request.now).await?;
            tx.commit()
                .await
                .map_err(db_err("committing a cancellation"))?;
            return Ok(CancelOutcome::Cancelled(Box::new(job_from_row(&row)?)));
        }
        if request.mode == CancelMode::EvenIfRunning {
            let requested = sqlx::query(&sql::REQUEST_CANCEL)
                .bind(request.now)
                .bind(&id)
                .bind(&account)
                .bind(request.dialect)
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
        let state: Option<String> = sqlx::query_scalar(sql::STATE_OF_JOB)
            .bind(&id)
            .bind(&account)
            .bind(request.dialect)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err("reading a job"))?;
        Ok(match state {
            Some(state) => CancelOutcome::NotCancellable(parse(&state, "job state")?),
            None => CancelOutcome::NotFound,
        })
    }
}

impl PostgresDb {
    async fn job_by(&self, sql: &str, token: &str) -> DbResult<Option<Job>> {
        let row = sqlx::query(sql)
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }
}
