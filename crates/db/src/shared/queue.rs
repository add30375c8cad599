//! The shared body of `QueueDb`.

/// `QueueDb` for `$db`, given its `claim`, `complete`, `fail`,
/// `record_cancelled`, `jobs_ahead` and `model_run_ms`.
macro_rules! queue_db {
    ($db:ty; $($specific:tt)*) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::QueueDb for $db {
            async fn fail_overdue(
                &self,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::Job>> {
                use $crate::codec::{db_err, job_from_row};
                // Asked every second by every worker process: a read on the
                // deadline index, and a write only when a job is due.
                let due: Vec<(String, Option<i64>)> = ::sqlx::query_as($crate::sql::OVERDUE_JOBS)
                    .bind(now)
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err("reading overdue jobs"))?;
                if due.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin().await?;
                let mut failed = Vec::with_capacity(due.len());
                // In (account, id) order, as every sweep locks them: no deadlock.
                for (id, timeout_ms) in &due {
                    let failure = ::genq_engine::job::deadline_failure(*timeout_ms);
                    let row = ::sqlx::query(&$crate::sql::FAIL_OVERDUE)
                        .bind(&failure.code)
                        .bind(&failure.message)
                        .bind(now)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err("failing an overdue job"))?;
                    // Claimed, cancelled or failed by someone else meanwhile.
                    let Some(row) = row else { continue };
                    settle(&mut tx, id, ::genq_engine::JobState::Failed, now).await?;
                    failed.push(job_from_row(&row)?);
                }
                tx.commit().await.map_err(db_err("committing a sweep"))?;
                Ok(failed)
            }

            async fn state_counts(
                &self,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::db::StateCount>> {
                use $crate::codec::{db_err, parse};
                use $crate::codec::Columns as _;
                let rows = ::sqlx::query($crate::sql::STATE_COUNTS)
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err("counting jobs by state"))?;
                rows.iter()
                    .map(|row| {
                        Ok(::genq_engine::db::StateCount {
                            state: parse(&row.text("state")?, "job state")?,
                            jobs: row.int("jobs")? as u64,
                            oldest_created_at: row.opt_int("oldest")?,
                        })
                    })
                    .collect()
            }

            async fn heartbeat(
                &self,
                lease: &::genq_engine::job::Lease,
                lease_until: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<::genq_engine::db::LeaseStatus> {
                use ::genq_engine::db::LeaseStatus;
                let row: Option<bool> = ::sqlx::query_scalar($crate::sql::HEARTBEAT)
                    .bind(lease_until)
                    .bind(lease.job_id.to_string())
                    .bind(lease.attempt)
                    .fetch_optional(self.writes())
                    .await
                    .map_err($crate::codec::db_err("extending a lease"))?;
                Ok(match row {
                    None => LeaseStatus::Lost,
                    Some(false) => LeaseStatus::Held,
                    Some(true) => LeaseStatus::CancelRequested,
                })
            }

            async fn record_progress(
                &self,
                lease: &::genq_engine::job::Lease,
                progress: u8,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::RECORD_PROGRESS)
                    .bind(i64::from(progress))
                    .bind(now)
                    .bind(lease.job_id.to_string())
                    .bind(lease.attempt)
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("recording progress"))?;
                Ok(done.rows_affected() == 1)
            }

            /// On PostgreSQL, the trigger announces the job PENDING again:
            /// idle workers of every process wake for it.
            async fn release(
                &self,
                lease: &::genq_engine::job::Lease,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::RELEASE)
                    .bind(now)
                    .bind(lease.job_id.to_string())
                    .bind(lease.attempt)
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("releasing a job"))?;
                Ok(done.rows_affected() == 1)
            }

            $($specific)*
        }
    };
}

pub(crate) use queue_db;
