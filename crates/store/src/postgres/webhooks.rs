//! The webhook outbox in PostgreSQL.

use sqlx::Row;

use genq_engine::store::StoreResult;
use genq_engine::time::Millis;
use genq_engine::webhook::{Attempt, Delivery, DeliveryRecord, DeliveryState, NextStep};
use genq_engine::{AccountId, JobId};

use super::{db_err, parse, text, PostgresStore};

impl PostgresStore {
    pub(super) async fn claim_due_deliveries(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        // SKIP LOCKED: dispatchers of other processes claiming at the same
        // moment take other rows instead of waiting for these.
        let rows = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN ( \
                SELECT id FROM webhook_deliveries WHERE state = 'PENDING' AND next_attempt_at <= $2 \
                AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_attempt_at LIMIT $3 \
                FOR UPDATE SKIP LOCKED) \
             RETURNING id, job_id, account_id, url, attempts",
        )
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("claiming webhook deliveries"))?;
        rows.iter()
            .map(|row| {
                let get = |col: &str| -> StoreResult<String> {
                    row.try_get(col).map_err(db_err("reading a delivery"))
                };
                Ok(Delivery {
                    id: get("id")?,
                    job_id: parse(&get("job_id")?, "job id")?,
                    account_id: parse(&get("account_id")?, "account id")?,
                    url: get("url")?,
                    attempts: row
                        .try_get::<i64, _>("attempts")
                        .map_err(db_err("reading a delivery"))?
                        as u32,
                })
            })
            .collect()
    }

    pub(super) async fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: &Attempt,
        next: NextStep,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(delivery_id)
        .bind(attempt.attempted_at)
        .bind(attempt.status_code.map(i64::from))
        .bind(attempt.latency_ms)
        .bind(attempt.error.as_deref().map(text))
        .execute(&mut *tx)
        .await
        .map_err(db_err("recording a webhook attempt"))?;
        let (state, next_at, delivered_at) = match next {
            NextStep::Delivered => (DeliveryState::Delivered, None, Some(attempt.attempted_at)),
            NextStep::RetryAt(at) => (DeliveryState::Pending, Some(at), None),
            NextStep::GiveUp => (DeliveryState::Failed, None, None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, state = $1, next_attempt_at = $2, \
             delivered_at = $3, lease_until = NULL, updated_at = $4 WHERE id = $5 AND state = 'PENDING'",
        )
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

    pub(super) async fn job_deliveries(
        &self,
        account: AccountId,
        job: JobId,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let rows = sqlx::query(
            "SELECT id, url, event, state, next_attempt_at, created_at, delivered_at \
             FROM webhook_deliveries WHERE account_id = $1 AND job_id = $2 ORDER BY created_at, id",
        )
        .bind(account.to_string())
        .bind(job.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("listing webhook deliveries"))?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let get = || db_err("reading a delivery");
            let id: String = row.try_get("id").map_err(get())?;
            let attempts = sqlx::query(
                "SELECT attempted_at, status_code, latency_ms, error FROM webhook_attempts \
                 WHERE delivery_id = $1 ORDER BY id",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err("listing webhook attempts"))?
            .iter()
            .map(|a| {
                let err = || db_err("reading an attempt");
                Ok(Attempt {
                    attempted_at: a.try_get("attempted_at").map_err(err())?,
                    status_code: a
                        .try_get::<Option<i64>, _>("status_code")
                        .map_err(err())?
                        .map(|c| c as u16),
                    latency_ms: a.try_get("latency_ms").map_err(err())?,
                    error: a.try_get("error").map_err(err())?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
            deliveries.push(DeliveryRecord {
                id,
                url: row.try_get("url").map_err(get())?,
                event: row.try_get("event").map_err(get())?,
                state: parse(
                    &row.try_get::<String, _>("state").map_err(get())?,
                    "delivery state",
                )?,
                next_attempt_at: row.try_get("next_attempt_at").map_err(get())?,
                created_at: row.try_get("created_at").map_err(get())?,
                delivered_at: row.try_get("delivered_at").map_err(get())?,
                attempts,
            });
        }
        Ok(deliveries)
    }
}
