//! The webhook outbox (attempts and listings are in `crate::shared`).
//! Deliveries are recorded by `genq_settle`
//! (migrations/postgres/0002_queue_functions.sql).

use genq_engine::db::DbResult;
use genq_engine::time::Millis;
use genq_engine::webhook::Delivery;

use super::PostgresDb;
use crate::codec::{db_err, delivery_from_row, DELIVERY_COLUMNS};
use crate::shared::outbox_db;

outbox_db! { PostgresDb;
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

}
