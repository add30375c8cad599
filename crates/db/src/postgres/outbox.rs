//! The webhook outbox. Deliveries are recorded by `genq_settle`
//! (migrations/postgres/0002_queue_functions.sql).

use async_trait::async_trait;

use genq_engine::db::{DbResult, OutboxDb};
use genq_engine::time::Millis;
use genq_engine::webhook::{Attempt, Delivery, DeliveryRecord, NextStep};
use genq_engine::{AccountId, JobId};

use super::PostgresDb;
use crate::codec::{
    attempt_from_row, db_err, delivery_from_row, delivery_record_from_row, text,
    ATTEMPTS_OF_DELIVERY, DELIVERIES_OF_JOB, DELIVERY_COLUMNS,
};
use crate::sql;

#[async_trait]
impl OutboxDb for PostgresDb {
    async fn claim_deliveries(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> DbResult<Vec<Delivery>> {
        // SKIP LOCKED: dispatchers of other processes claiming at the same
        // moment take other rows instead of waiting for these.
        let rows = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN ( \
                SELECT id FROM webhook_deliveries WHERE state = 'PENDING' AND next_attempt_at <= $2 \
                AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_attempt_at LIMIT $3 \
                FOR UPDATE SKIP LOCKED) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("claiming webhook deliveries"))?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn finish_attempt(
        &self,
        delivery_id: &str,
        attempt: &Attempt,
        next: NextStep,
    ) -> DbResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sql::INSERT_ATTEMPT)
            .bind(delivery_id)
            .bind(attempt.attempted_at)
            .bind(attempt.status_code.map(i64::from))
            .bind(attempt.latency_ms)
            .bind(attempt.error.as_deref().map(text))
            .execute(&mut *tx)
            .await
            .map_err(db_err("recording a webhook attempt"))?;
        let (state, next_at, delivered_at) = next.columns(attempt);
        sqlx::query(sql::FINISH_ATTEMPT)
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

    async fn deliveries_for_job(
        &self,
        account: AccountId,
        job: JobId,
    ) -> DbResult<Vec<DeliveryRecord>> {
        let rows = sqlx::query(DELIVERIES_OF_JOB)
            .bind(account.to_string())
            .bind(job.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err("listing webhook deliveries"))?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let mut delivery = delivery_record_from_row(&row)?;
            delivery.attempts = sqlx::query(ATTEMPTS_OF_DELIVERY)
                .bind(&delivery.id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("listing webhook attempts"))?
                .iter()
                .map(attempt_from_row)
                .collect::<DbResult<_>>()?;
            deliveries.push(delivery);
        }
        Ok(deliveries)
    }
}
