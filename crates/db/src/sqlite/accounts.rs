//! Accounts, API keys, credits and the ledger.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use genq_engine::account::{Account, ApiKeyRecord, NewAccount, Principal};
use genq_engine::db::{AccountDb, DbResult, LedgerEntry};
use genq_engine::time::Millis;
use genq_engine::{AccountId, KeyId};

use super::SqliteDb;
use crate::codec::{account_from_row, db_err, ledger_entry_from_row, patterns_to};
use crate::codec::{ACCOUNT_BY_ID, LEDGER_OF_ACCOUNT};
use crate::sql;

/// Moves an account's balance and records why, in one transaction. The new
/// balance, or None when there is no such account (nothing written).
pub(super) async fn post_ledger(
    tx: &mut Transaction<'_, Sqlite>,
    account: &str,
    job: Option<&str>,
    amount: i64,
    reason: &str,
    now: Millis,
) -> DbResult<Option<i64>> {
    let balance: Option<i64> = sqlx::query_scalar(sql::MOVE_BALANCE)
        .bind(amount)
        .bind(account)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err("updating a balance"))?;
    if balance.is_none() {
        return Ok(None);
    }
    sqlx::query(sql::INSERT_LEDGER)
        .bind(account)
        .bind(job)
        .bind(amount)
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err("writing the ledger"))?;
    Ok(balance)
}

#[async_trait]
impl AccountDb for SqliteDb {
    async fn insert_account(
        &self,
        id: AccountId,
        account: &NewAccount,
        webhook_secret: &str,
        now: Millis,
    ) -> DbResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sql::INSERT_ACCOUNT)
            .bind(id.to_string())
            .bind(&account.name)
            .bind(webhook_secret)
            .bind(account.max_concurrent_jobs.map(i64::from))
            .bind(patterns_to(&account.model_patterns))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err("inserting an account"))?;
        if account.credits_micro_cents != 0 {
            let id = id.to_string();
            post_ledger(
                &mut tx,
                &id,
                None,
                account.credits_micro_cents,
                "credit",
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(db_err("committing an account"))
    }

    async fn credit_account(
        &self,
        id: AccountId,
        micro_cents: i64,
        now: Millis,
    ) -> DbResult<Option<i64>> {
        let mut tx = self.begin().await?;
        let balance =
            post_ledger(&mut tx, &id.to_string(), None, micro_cents, "credit", now).await?;
        tx.commit().await.map_err(db_err("committing credits"))?;
        Ok(balance)
    }

    async fn ledger(&self, id: AccountId) -> DbResult<Vec<LedgerEntry>> {
        let rows = sqlx::query(LEDGER_OF_ACCOUNT)
            .bind(id.to_string())
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("reading the ledger"))?;
        rows.iter().map(ledger_entry_from_row).collect()
    }

    async fn active_jobs(&self, id: AccountId) -> DbResult<u64> {
        let count: i64 = sqlx::query_scalar(sql::COUNT_ACTIVE)
            .bind(id.to_string())
            .fetch_one(&self.reader)
            .await
            .map_err(db_err("counting active jobs"))?;
        Ok(count as u64)
    }

    async fn get_account(&self, id: AccountId) -> DbResult<Option<Account>> {
        let row = sqlx::query(ACCOUNT_BY_ID)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err("reading an account"))?;
        row.map(|row| account_from_row(id, &row)).transpose()
    }

    async fn account_count(&self) -> DbResult<u64> {
        let count: i64 = sqlx::query_scalar(sql::COUNT_ACCOUNTS)
            .fetch_one(&self.reader)
            .await
            .map_err(db_err("counting accounts"))?;
        Ok(count as u64)
    }

    async fn rotate_webhook_secret(
        &self,
        id: AccountId,
        secret: &str,
        previous_valid_until: Millis,
    ) -> DbResult<bool> {
        let done = sqlx::query(sql::ROTATE_SECRET)
            .bind(previous_valid_until)
            .bind(secret)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err("rotating a webhook secret"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> DbResult<()> {
        sqlx::query(sql::INSERT_KEY)
            .bind(key.id.to_string())
            .bind(key.account_id.to_string())
            .bind(&key.key_hash)
            .bind(key.scopes.join(","))
            .bind(patterns_to(&key.model_patterns))
            .bind(key.created_at)
            .execute(&self.writer)
            .await
            .map_err(db_err("inserting an API key"))?;
        Ok(())
    }

    async fn revoke_api_key(&self, id: KeyId, now: Millis) -> DbResult<bool> {
        let done = sqlx::query(sql::REVOKE_KEY)
            .bind(now)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err("revoking an API key"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn principal_for_key(&self, key_hash: &[u8]) -> DbResult<Option<Principal>> {
        self.inline.principal(key_hash)
    }
}
