//! The shared body of `OutboxDb`.

/// `OutboxDb` for `$db`, given its `claim_deliveries`.
macro_rules! outbox_db {
    ($db:ty; $($specific:tt)*) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::OutboxDb for $db {
            async fn finish_attempt(
                &self,
                delivery_id: &str,
                attempt: &::genq_engine::webhook::Attempt,
                next: ::genq_engine::webhook::NextStep,
            ) -> ::genq_engine::db::DbResult<()> {
                use $crate::codec::{db_err, text};
                let mut tx = self.begin().await?;
                ::sqlx::query($crate::sql::INSERT_ATTEMPT)
                    .bind(delivery_id)
                    .bind(attempt.attempted_at)
                    .bind(attempt.status_code.map(i64::from))
                    .bind(attempt.latency_ms)
                    .bind(attempt.error.as_deref().map(text))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("recording a webhook attempt"))?;
                let (state, next_at, delivered_at) = next.columns(attempt);
                ::sqlx::query($crate::sql::FINISH_ATTEMPT)
                    .bind(state.as_str())
                    .bind(next_at)
                    .bind(delivered_at)
                    .bind(attempt.attempted_at + attempt.latency_ms)
                    .bind(delivery_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("updating a webhook delivery"))?;
                tx.commit()
                    .await
                    .map_err(db_err("committing a webhook attempt"))
            }

            async fn redeliver(
                &self,
                account: ::genq_engine::AccountId,
                job: ::genq_engine::JobId,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<u64> {
                let done = ::sqlx::query($crate::sql::REDELIVER)
                    .bind(now)
                    .bind(account.to_string())
                    .bind(job.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("queueing a redelivery"))?;
                Ok(done.rows_affected())
            }

            async fn deliveries_for_job(
                &self,
                account: ::genq_engine::AccountId,
                job: ::genq_engine::JobId,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::webhook::DeliveryRecord>> {
                use $crate::codec::{attempt_from_row, db_err, delivery_record_from_row};
                let rows = ::sqlx::query($crate::codec::DELIVERIES_OF_JOB)
                    .bind(account.to_string())
                    .bind(job.to_string())
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err("listing webhook deliveries"))?;
                let mut deliveries = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut delivery = delivery_record_from_row(&row)?;
                    delivery.attempts = ::sqlx::query($crate::codec::ATTEMPTS_OF_DELIVERY)
                        .bind(&delivery.id)
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err("listing webhook attempts"))?
                        .iter()
                        .map(attempt_from_row)
                        .collect::<::genq_engine::db::DbResult<_>>()?;
                    deliveries.push(delivery);
                }
                Ok(deliveries)
            }

            $($specific)*
        }
    };
}

pub(crate) use outbox_db;
