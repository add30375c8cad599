//! Idempotency keys on PostgreSQL: a key in flight is a 'processing' row
//! every API node sees, claimed with one statement; a kept key is the same
//! row, moved to 'kept' in the jobs' own transaction (`jobs.rs`).

use genq_engine::db::{DbResult, IdempotencyDb};
use genq_engine::idempotency::{KeptAnswer, KeptKey, KeyClaim};
use genq_engine::time::Millis;
use genq_engine::AccountId;
use sqlx::{Postgres, Transaction};

use super::PostgresDb;
use crate::codec::db_err;

#[async_trait::async_trait]
impl IdempotencyDb for PostgresDb {
    async fn claim_key(
        &self,
        account: AccountId,
        key: &str,
        now: Millis,
        lease_until: Millis,
    ) -> DbResult<KeyClaim> {
        let token = genq_engine::account::generate_token();
        // Takes a new key, an expired claim or an expired answer; leaves a
        // live one alone (and then says which it is).
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (account_id, key, state, token, locked_until, \
             created_at, expires_at) VALUES ($1, $2, 'processing', $3, $4, $5, $4) \
             ON CONFLICT (account_id, key) DO UPDATE SET state = 'processing', \
             token = excluded.token, locked_until = excluded.locked_until, \
             fingerprint = NULL, status = NULL, body = NULL, job_id = NULL, \
             created_at = excluded.created_at, expires_at = excluded.expires_at \
             WHERE idempotency_keys.expires_at <= $5 \
             RETURNING token",
        )
        .bind(account.to_string())
        .bind(key)
        .bind(&token)
        .bind(lease_until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("claiming an idempotency key"))?;
        if claimed.is_some() {
            return Ok(KeyClaim::Claimed { token });
        }
        let kept: Option<(Vec<u8>, i64, Vec<u8>)> = sqlx::query_as(crate::sql::KEPT_KEY)
            .bind(account.to_string())
            .bind(key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err("reading an idempotency key"))?;
        Ok(match kept {
            Some((fingerprint, status, body)) => KeyClaim::Kept(KeptAnswer {
                fingerprint,
                status: status as u16,
                body,
            }),
            // A live claim, or one that expired or was released a moment
            // ago: either way another request has (or just had) the key.
            None => KeyClaim::InProgress,
        })
    }

    async fn renew_key(
        &self,
        account: AccountId,
        key: &str,
        token: &str,
        lease_until: Millis,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET locked_until = $4, expires_at = $4 \
             WHERE account_id = $1 AND key = $2 AND token = $3 AND state = 'processing'",
        )
        .bind(account.to_string())
        .bind(key)
        .bind(token)
        .bind(lease_until)
        .execute(&self.pool)
        .await
        .map_err(db_err("renewing an idempotency key"))?;
        Ok(())
    }

    async fn release_key(&self, account: AccountId, key: &str, token: &str) -> DbResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE account_id = $1 AND key = $2 AND token = $3 AND state = 'processing'",
        )
        .bind(account.to_string())
        .bind(key)
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(db_err("releasing an idempotency key"))?;
        Ok(())
    }

    async fn delete_expired_keys(&self, now: Millis) -> DbResult<u64> {
        let done = sqlx::query(crate::sql::DELETE_EXPIRED_KEYS)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err("forgetting expired idempotency keys"))?;
        Ok(done.rows_affected())
    }
}

/// Moves this request's claim to 'kept' with its answer; false when the
/// claim is no longer this request's.
pub(super) async fn keep_key(tx: &mut Transaction<'_, Postgres>, key: &KeptKey) -> DbResult<bool> {
    let kept = sqlx::query(
        "UPDATE idempotency_keys SET state = 'kept', token = NULL, locked_until = NULL, \
         fingerprint = $4, status = $5, body = $6, job_id = $7, created_at = $8, expires_at = $9 \
         WHERE account_id = $1 AND key = $2 AND token = $3 AND state = 'processing'",
    )
    .bind(key.account.to_string())
    .bind(&key.key)
    .bind(&key.token)
    .bind(&key.answer.fingerprint)
    .bind(i64::from(key.answer.status))
    .bind(&key.answer.body)
    .bind(&key.job_id)
    .bind(key.created_at)
    .bind(key.expires_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err("keeping an idempotency key"))?;
    Ok(kept.rows_affected() == 1)
}
