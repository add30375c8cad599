//! Idempotency keys on SQLite. A kept key is a row, written with its jobs
//! (`group_commit.rs`); a key in flight is a claim held in this process's
//! memory. One process serves the API of a SQLite data directory, so its
//! memory sees every claim, and a claim costs no write: a written claim
//! would be one more fsync per keyed submission, outside the group commit.
//! (PostgreSQL, where API nodes are many, keeps claims as rows.)

use std::collections::HashMap;
use std::sync::Mutex;

use genq_engine::db::{DbResult, IdempotencyDb};
use genq_engine::idempotency::KeyClaim;
use genq_engine::time::Millis;
use genq_engine::AccountId;

use super::SqliteDb;
use crate::codec::db_err;

/// Keys in flight in this process: (account, key) → (token, lease end).
#[derive(Default)]
pub(super) struct Claims(Mutex<HashMap<(AccountId, String), (String, Millis)>>);

#[async_trait::async_trait]
impl IdempotencyDb for SqliteDb {
    async fn claim_key(
        &self,
        account: AccountId,
        key: &str,
        now: Millis,
        lease_until: Millis,
    ) -> DbResult<KeyClaim> {
        // Inline, as the key lookup before it (see `inline_read.rs`).
        if let Some(answer) = self.inline.kept_key(account, key, now)? {
            return Ok(KeyClaim::Kept(answer));
        }
        let mut claims = self.claims.0.lock().expect("not poisoned");
        let slot = claims.entry((account, key.to_owned())).or_default();
        if slot.1 > now {
            return Ok(KeyClaim::InProgress);
        }
        let token = genq_engine::account::generate_token();
        *slot = (token.clone(), lease_until);
        Ok(KeyClaim::Claimed { token })
    }

    async fn renew_key(
        &self,
        account: AccountId,
        key: &str,
        token: &str,
        lease_until: Millis,
    ) -> DbResult<()> {
        let mut claims = self.claims.0.lock().expect("not poisoned");
        if let Some(slot) = claims.get_mut(&(account, key.to_owned())) {
            if slot.0 == token {
                slot.1 = lease_until;
            }
        }
        Ok(())
    }

    /// Also called once the key is kept: the row answers from then on.
    async fn release_key(&self, account: AccountId, key: &str, token: &str) -> DbResult<()> {
        let mut claims = self.claims.0.lock().expect("not poisoned");
        let id = (account, key.to_owned());
        if claims.get(&id).is_some_and(|slot| slot.0 == token) {
            claims.remove(&id);
        }
        Ok(())
    }

    async fn delete_expired_keys(&self, now: Millis) -> DbResult<u64> {
        let done = sqlx::query(crate::sql::DELETE_EXPIRED_KEYS)
            .bind(now)
            .execute(self.writes())
            .await
            .map_err(db_err("forgetting expired idempotency keys"))?;
        Ok(done.rows_affected())
    }
}
