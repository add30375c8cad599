//! Jobs as their owners see them: submitting, reading, cancelling.

use async_trait::async_trait;

use genq_engine::db::{CancelMode, CancelOutcome, CancelRequest, DbResult, InsertOutcome, JobDb};
use genq_engine::{AccountId, Job, JobId, JobQuery, JobState, SubmitLimits};

use super::queue::settle;
use super::SqliteDb;
use crate::codec::{db_err, job_from_row, parse};
use crate::sql;

#[async_trait]
impl JobDb for SqliteDb {
    async fn insert_job(&self, job: &Job, limits: &SubmitLimits) -> DbResult<InsertOutcome> {
        self.submissions.insert(job, limits).await
    }

    async fn get_job(&self, account: AccountId, id: JobId) -> DbResult<Option<Job>> {
        self.inline.job(account, id)
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
            .fetch_all(&self.reader)
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

impl SqliteDb {
    async fn job_by(&self, sql: &str, token: &str) -> DbResult<Option<Job>> {
        let row = sqlx::query(sql)
            .bind(token)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err("reading a job"))?;
        row.as_ref().map(job_from_row).transpose()
    }
}
