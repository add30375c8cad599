//! `RetentionDb`, the same statements on both backends (`crate::sql`).

/// `RetentionDb` for `$db`.
macro_rules! retention_db {
    ($db:ty) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::RetentionDb for $db {
            async fn take_lease(
                &self,
                name: &str,
                owner: &str,
                now: ::genq_engine::time::Millis,
                until: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let holder: Option<String> = ::sqlx::query_scalar($crate::sql::TAKE_LEASE)
                    .bind(name)
                    .bind(owner)
                    .bind(now)
                    .bind(until)
                    .fetch_optional(self.writes())
                    .await
                    .map_err($crate::codec::db_err("taking a lease"))?;
                Ok(holder.as_deref() == Some(owner))
            }

            async fn jobs_with_inputs(
                &self,
                before: ::genq_engine::time::Millis,
                limit: u32,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::Job>> {
                let rows = ::sqlx::query(&$crate::sql::JOBS_WITH_INPUTS)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reads())
                    .await
                    .map_err($crate::codec::db_err("reading jobs to expire"))?;
                rows.iter().map($crate::codec::job_from_row).collect()
            }

            async fn mark_inputs_deleted(
                &self,
                job: ::genq_engine::JobId,
                input: &::serde_json::Value,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::MARK_INPUTS_DELETED)
                    .bind(now)
                    .bind($crate::codec::to_json(input))
                    .bind(job.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("marking inputs deleted"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn jobs_with_outputs(
                &self,
                before: ::genq_engine::time::Millis,
                limit: u32,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::Job>> {
                let rows = ::sqlx::query(&$crate::sql::JOBS_WITH_OUTPUTS)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reads())
                    .await
                    .map_err($crate::codec::db_err("reading jobs to expire"))?;
                rows.iter().map($crate::codec::job_from_row).collect()
            }

            async fn mark_outputs_deleted(
                &self,
                job: ::genq_engine::JobId,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::MARK_OUTPUTS_DELETED)
                    .bind(now)
                    .bind(job.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("marking outputs deleted"))?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use retention_db;
