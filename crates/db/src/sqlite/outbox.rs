//! The webhook outbox (attempts and listings are in `crate::shared`).

use sqlx::{Sqlite, Transaction};

use genq_engine::db::DbResult;
use genq_engine::time::Millis;
use genq_engine::webhook::{new_delivery_id, Delivery};

use super::SqliteDb;
use crate::codec::{db_err, delivery_from_row, DELIVERY_COLUMNS};
use crate::shared::outbox_db;

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

outbox_db! { SqliteDb;
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

}
