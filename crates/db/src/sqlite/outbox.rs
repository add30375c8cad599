//! The webhook outbox.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use genq_engine::db::{DbResult, OutboxDb};
use genq_engine::time::Millis;
use genq_engine::webhook::{new_delivery_id, Attempt, Delivery, DeliveryRecord, NextStep};
use genq_engine::{AccountId, JobId};

use super::SqliteDb;
use crate::codec::{
    attempt_from_row, db_err, delivery_from_row, delivery_record_from_row, text,
    ATTEMPTS_OF_DELIVERY, DELIVERIES_OF_JOB, DELIVERY_COLUMNS,
};
use crate::sql;

/// Records the webhook a job owes, if it has a URL, inside the transaction
/// that moved it to a terminal state. True when one was recorded.
pub(super) async fn enqueue(
    tx: &mut Transaction<'_, Sqlite>,
    job: &str,
    event: &str,
    now: Millis,
) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (id, job_id, account_id, url, event, state, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT $1, id, account_id, webhook_url, $2, 'PENDING', 0, $3, $3, $3 FROM jobs \
         WHERE id = $4 AND webhook_url IS NOT NULL",
    )
    .bind(new_delivery_id())
    .bind(event)
    .bind(now)
    .bind(job)
    .execute(&mut **tx)
    .await
    .map_err(db_err("recording a webhook delivery"))?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl OutboxDb for SqliteDb {
    async fn claim_deliveries(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> DbResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN ( \
                SELECT id FROM webhook_deliveries WHERE state = 'PENDING' AND next_attempt_at <= $2 \
                AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_attempt_at LIMIT $3) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
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
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("listing webhook deliveries"))?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let mut delivery = delivery_record_from_row(&row)?;
            delivery.attempts = sqlx::query(ATTEMPTS_OF_DELIVERY)
                .bind(&delivery.id)
                .fetch_all(&self.reader)
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
