//! Accounts, API keys, credits and the ledger (the statements both backends
//! share are in `crate::shared`).

use genq_engine::db::DbResult;
use genq_engine::Principal;

use super::PostgresDb;
use crate::codec::{db_err, principal_from_row, PRINCIPAL_BY_KEY_HASH};
use crate::shared::{account_db, post_ledger};

post_ledger!(sqlx::Postgres);

account_db! { PostgresDb;
    async fn principal_for_key(&self, key_hash: &[u8]) -> DbResult<Option<Principal>> {
        let row = sqlx::query(PRINCIPAL_BY_KEY_HASH)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err("looking up an API key"))?;
        row.as_ref().map(principal_from_row).transpose()
    }
}
