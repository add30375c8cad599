//! Accounts, API keys, credits and the ledger (the statements both backends
//! share are in `crate::shared`).

use genq_engine::db::DbResult;
use genq_engine::Principal;

use super::SqliteDb;
use crate::shared::{account_db, post_ledger};

post_ledger!(sqlx::Sqlite);

account_db! { SqliteDb;
    async fn principal_for_key(&self, key_hash: &[u8]) -> DbResult<Option<Principal>> {
        self.inline.principal(key_hash)
    }
}
