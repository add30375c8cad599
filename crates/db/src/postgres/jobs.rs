//! Jobs as their owners see them: submitting, reading, cancelling (what
//! both backends share is in `crate::shared`).

use genq_engine::db::{DbResult, InsertOutcome};
use genq_engine::idempotency::KeptKey;
use genq_engine::{AccountId, DbError, Job, JobId, LimitKind, SubmitLimits};

use super::accounts::post_ledger;
use super::queue::settle;
use super::PostgresDb;
use crate::codec::{db_err, job_from_row, to_json};
use crate::shared::job_db;

/// The columns of new jobs, one array each, as `genq_submit_batch` takes
/// them (migrations/postgres/0010): PostgreSQL reads binary arrays as they
/// are, where the same jobs as one JSON document cost it more time than
/// inserting them. Every job of a submission belongs to its first job's
/// account and key (one caller submits it); those two are passed once.
#[derive(Default)]
struct BatchColumns {
    ids: Vec<String>,
    kinds: Vec<String>,
    dialects: Vec<String>,
    inputs: Vec<String>,
    input_files: Vec<String>,
    webhook_urls: Vec<Option<String>>,
    models: Vec<Option<String>>,
    model_versions: Vec<Option<String>>,
    costs: Vec<i64>,
    media_tokens: Vec<String>,
    share_tokens: Vec<String>,
    correlation_ids: Vec<Option<String>>,
    priorities: Vec<i64>,
    timeouts_ms: Vec<Option<i64>>,
    deadlines_at: Vec<Option<i64>>,
    created_ats: Vec<i64>,
    updated_ats: Vec<i64>,
}

impl BatchColumns {
    fn of(jobs: &[Job]) -> Self {
        let mut c = Self::default();
        for job in jobs {
            debug_assert_eq!(
                (job.account_id, job.api_key_id),
                (jobs[0].account_id, jobs[0].api_key_id),
                "a batch has one caller"
            );
            c.ids.push(job.id.to_string());
            c.kinds.push(job.kind.clone());
            c.dialects.push(job.dialect.clone());
            c.inputs.push(to_json(&job.input));
            c.input_files.push(to_json(&job.input_files));
            c.webhook_urls.push(job.webhook_url.clone());
            c.models.push(job.model.as_ref().map(|m| m.slug.clone()));
            c.model_versions
                .push(job.model.as_ref().map(|m| m.version.clone()));
            c.costs.push(job.cost_micro_cents);
            c.media_tokens.push(job.media_token.clone());
            c.share_tokens.push(job.share_token.clone());
            c.correlation_ids.push(job.correlation_id.clone());
            c.priorities.push(i64::from(job.priority));
            c.timeouts_ms.push(job.timeout_ms);
            c.deadlines_at.push(job.deadline_at);
            c.created_ats.push(job.created_at);
            c.updated_ats.push(job.updated_at);
        }
        c
    }
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
        "NO_KEY" => Err(DbError::other(format!(
            "no key {} of account {}",
            job.api_key_id, job.account_id
        ))),
        other => Err(DbError::other(format!(
            "unexpected submission outcome {other:?}"
        ))),
    }
}

/// `genq_submit_batch` on `executor`: the outcome's name and the balance.
async fn submit_batch<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    jobs: &[Job],
    first: &Job,
    limits: (Option<i64>, Option<i64>),
) -> DbResult<(String, Option<i64>)> {
    let columns = BatchColumns::of(jobs);
    sqlx::query_as(
        "SELECT outcome, balance FROM genq_submit_batch($1, $2, $3, $4, $5, $6, $7, $8, \
         $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
    )
    .bind(first.account_id.to_string())
    .bind(first.api_key_id.to_string())
    .bind(limits.0)
    .bind(limits.1)
    .bind(columns.ids)
    .bind(columns.kinds)
    .bind(columns.dialects)
    .bind(columns.inputs)
    .bind(columns.input_files)
    .bind(columns.webhook_urls)
    .bind(columns.models)
    .bind(columns.model_versions)
    .bind(columns.costs)
    .bind(columns.media_tokens)
    .bind(columns.share_tokens)
    .bind(columns.correlation_ids)
    .bind(columns.priorities)
    .bind(columns.timeouts_ms)
    .bind(columns.deadlines_at)
    .bind(columns.created_ats)
    .bind(columns.updated_ats)
    .fetch_one(executor)
    .await
    .map_err(db_err("inserting jobs"))
}

job_db! { PostgresDb;
    /// Without a key: one round trip (`genq_submit_batch`, committed on
    /// its own). With one: one transaction, `genq_submit_batch` then the
    /// key. The first job's account and key stand for all: one caller
    /// submits them.
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
        let Some(key) = key else {
            let (outcome, balance) = submit_batch(&self.pool, jobs, first, limits).await?;
            return submit_outcome(&outcome, balance, first);
        };
        let mut tx = self.begin().await?;
        let (outcome, balance) = submit_batch(&mut *tx, jobs, first, limits).await?;
        let outcome = submit_outcome(&outcome, balance, first)?;
        if outcome != InsertOutcome::Inserted {
            // Nothing was written; dropping the transaction ends it.
            return Ok(outcome);
        }
        if !super::keys::keep_key(&mut tx, key).await? {
            return Ok(InsertOutcome::KeyTaken);
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
