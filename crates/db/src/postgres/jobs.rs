//! Jobs as their owners see them: submitting, reading, cancelling (what
//! both backends share is in `crate::shared`).

use serde_json::json;

use genq_engine::db::{DbResult, InsertOutcome};
use genq_engine::idempotency::KeptKey;
use genq_engine::{AccountId, DbError, Job, JobId, LimitKind, SubmitLimits};

use super::accounts::post_ledger;
use super::queue::settle;
use super::PostgresDb;
use crate::codec::{db_err, job_from_row, to_json};
use crate::shared::job_db;

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
        "priority": job.priority,
        "timeout_ms": job.timeout_ms,
        "deadline_at": job.deadline_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "run": 0,
    })
}

fn submit_outcome(outcome: &str, balance: Option<i64>, job: &Job) -> DbResult<InsertOutcome> {
    match outcome {
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

job_db! { PostgresDb;
    /// One job without a key: one round trip (`genq_submit`). Otherwise one
    /// transaction: `genq_submit_batch`, then the key.
    async fn insert_jobs(
        &self,
        jobs: &[Job],
        limits: &SubmitLimits,
        key: Option<&KeptKey>,
    ) -> DbResult<InsertOutcome> {
        let Some(first) = jobs.first() else {
            return Ok(InsertOutcome::Inserted);
        };
        let limits = (
            limits.max_active_per_key.map(i64::from),
            limits.max_active_per_account.map(i64::from),
        );
        if let ([job], None) = (jobs, key) {
            let (outcome, balance): (String, Option<i64>) =
                sqlx::query_as("SELECT outcome, balance FROM genq_submit($1::jsonb, $2, $3)")
                    .bind(job_record(job).to_string())
                    .bind(limits.0)
                    .bind(limits.1)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("inserting a job"))?;
            return submit_outcome(&outcome, balance, first);
        }
        let records = serde_json::Value::Array(jobs.iter().map(job_record).collect());
        let mut tx = self.begin().await?;
        let (outcome, balance): (String, Option<i64>) =
            sqlx::query_as("SELECT outcome, balance FROM genq_submit_batch($1::jsonb, $2, $3)")
                .bind(records.to_string())
                .bind(limits.0)
                .bind(limits.1)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err("inserting jobs"))?;
        let outcome = submit_outcome(&outcome, balance, first)?;
        if outcome != InsertOutcome::Inserted {
            // Nothing was written; dropping the transaction ends it.
            return Ok(outcome);
        }
        if let Some(key) = key {
            if !super::keys::keep_key(&mut tx, key).await? {
                return Ok(InsertOutcome::KeyTaken);
            }
        }
        tx.commit().await.map_err(db_err("committing jobs"))?;
        Ok(InsertOutcome::Inserted)
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

}
