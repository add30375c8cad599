//! Idempotency keys on SQLite. A kept key is a row, written with its jobs
//! (`group_commit.rs`); a key in flight is a claim held in this process's
//! memory. One process serves the API of a SQLite data directory, so its
//! memory sees every claim, and a claim costs no write: a written claim
//! would be one more fsync per keyed submission, outside the group commit.
//! (PostgreSQL, where API nodes are many, keeps claims as rows.)
//!
//! For the same reason the kept keys are found through an index in memory
//! (`KeptIndex`), not one in the database: clients' keys come in no order,
//! and an index on them put each keyed submission on a page of its own, one
//! more WAL frame per job on the single writer's path, besides a read of it
//! before every keyed request (migrations/sqlite/0013). The rows stay in the
//! order they were kept; the index maps a digest of (account, key) to its
//! row and expiry (40 to 150 bytes a key, with the table's spare room and
//! expired keys not yet pruned), and is loaded from the table when
//! the first keyed request comes.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use genq_engine::db::{DbResult, IdempotencyDb};
use genq_engine::idempotency::KeyClaim;
use genq_engine::time::Millis;
use genq_engine::{AccountId, DbError};

use super::inline_read::InlineReader;
use super::SqliteDb;
use crate::codec::db_err;

/// Keys in flight in this process: (account, key) → (token, lease end).
#[derive(Default)]
pub(super) struct Claims(Mutex<HashMap<(AccountId, String), (String, Millis)>>);

/// SHA-256 of account and key, cut to 128 bits: a collision would take
/// about 2^64 keys, and is still caught, since the row a digest leads to
/// is checked against the account and key (`InlineReader::kept_key`).
type KeyDigest = [u8; 16];

fn digest(account: &str, key: &str) -> KeyDigest {
    let mut hasher = Sha256::new();
    hasher.update(account.as_bytes());
    hasher.update([0]);
    hasher.update(key.as_bytes());
    let full = hasher.finalize();
    let mut cut = [0; 16];
    cut.copy_from_slice(&full[..16]);
    cut
}

/// Where each unexpired kept key's row is: digest → (row id, expiry).
/// `None` until loaded.
#[derive(Default)]
pub(super) struct KeptIndex(Mutex<Option<KeptKeys>>);

#[derive(Default)]
struct KeptKeys {
    rows: HashMap<KeyDigest, (i64, Millis)>,
    /// The size after the last pruning; expired entries go when the map has
    /// doubled since, which keeps pruning at a constant cost per key.
    pruned_at: usize,
}

impl KeptIndex {
    fn is_loaded(&self) -> bool {
        self.0.lock().expect("not poisoned").is_some()
    }

    /// Reads the table, unless already done. Runs under the lock, so a key
    /// kept meanwhile is either in what it reads or recorded after it.
    fn load(&self, reader: &InlineReader, now: Millis) -> DbResult<()> {
        let mut index = self.0.lock().expect("not poisoned");
        if index.is_some() {
            return Ok(());
        }
        let mut rows = HashMap::new();
        for (id, account, key, expires_at) in reader.kept_keys(now)? {
            // Later rows of a key (kept again after expiring) win.
            rows.insert(digest(&account, &key), (id, expires_at));
        }
        tracing::debug!(keys = rows.len(), "loaded the kept idempotency keys");
        *index = Some(KeptKeys {
            pruned_at: rows.len(),
            rows,
        });
        Ok(())
    }

    fn find(&self, account: AccountId, key: &str, now: Millis) -> Option<i64> {
        let index = self.0.lock().expect("not poisoned");
        let (id, expires_at) = *index
            .as_ref()?
            .rows
            .get(&digest(&account.to_string(), key))?;
        (expires_at > now).then_some(id)
    }

    /// A key kept as row `id` (committed). Before the index is loaded this
    /// does nothing: loading reads the row.
    pub(super) fn record(
        &self,
        account: AccountId,
        key: &str,
        id: i64,
        expires_at: Millis,
        now: Millis,
    ) {
        let mut index = self.0.lock().expect("not poisoned");
        let Some(kept) = index.as_mut() else { return };
        kept.rows
            .insert(digest(&account.to_string(), key), (id, expires_at));
        if kept.rows.len() >= 2 * kept.pruned_at.max(1024) {
            kept.rows.retain(|_, (_, expires)| *expires > now);
            kept.pruned_at = kept.rows.len();
        }
    }
}

#[async_trait::async_trait]
impl IdempotencyDb for SqliteDb {
    async fn claim_key(
        &self,
        account: AccountId,
        key: &str,
        now: Millis,
        lease_until: Millis,
    ) -> DbResult<KeyClaim> {
        if !self.kept.is_loaded() {
            let (kept, reader) = (Arc::clone(&self.kept), Arc::clone(&self.inline));
            tokio::task::spawn_blocking(move || kept.load(&reader, now))
                .await
                .map_err(|e| DbError::other(format!("loading the idempotency keys: {e}")))??;
        }
        if let Some(id) = self.kept.find(account, key, now) {
            // Inline, as the other point reads of a request (see `inline_read.rs`).
            if let Some(answer) = self.inline.kept_key(id, account, key, now)? {
                return Ok(KeyClaim::Kept(answer));
            }
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
