//! Accounts, API keys, credits and the ledger.

use genq_engine::account::{ApiKeyRecord, NewAccount};
use genq_engine::store::{LedgerEntry, StoreResult};
use genq_engine::time::Millis;
use genq_engine::{Account, AccountId, KeyId, Principal};
use sqlx::{Postgres, Transaction};

use super::{column, db_err, parse, patterns_from, patterns_to, PostgresStore};

/// Moves an account's balance and records why, in one transaction. The
/// new balance, or None when there is no such account (nothing written).
async fn post_ledger(
    tx: &mut Transaction<'_, Postgres>,
    account: &str,
    job: Option<&str>,
    amount: i64,
    reason: &str,
    now: Millis,
) -> StoreResult<Option<i64>> {
    let balance: Option<i64> = sqlx::query_scalar(
        "UPDATE accounts SET balance_micro_cents = balance_micro_cents + $1 WHERE id = $2 \
         RETURNING balance_micro_cents",
    )
    .bind(amount)
    .bind(account)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err("updating a balance"))?;
    if balance.is_none() {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
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

impl PostgresStore {
    pub(super) async fn create_account(
        &self,
        id: AccountId,
        account: &NewAccount,
        webhook_secret: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, name, webhook_secret, max_concurrent_jobs, model_patterns, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
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
            post_ledger(
                &mut tx,
                &id.to_string(),
                None,
                account.credits_micro_cents,
                "credit",
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(db_err("committing an account"))
    }

    pub(super) async fn add_credits(
        &self,
        id: AccountId,
        micro_cents: i64,
        now: Millis,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.begin().await?;
        let balance =
            post_ledger(&mut tx, &id.to_string(), None, micro_cents, "credit", now).await?;
        tx.commit().await.map_err(db_err("committing credits"))?;
        Ok(balance)
    }

    pub(super) async fn ledger_entries(&self, id: AccountId) -> StoreResult<Vec<LedgerEntry>> {
        let rows = sqlx::query(
            "SELECT job_id, amount_micro_cents, reason, created_at FROM ledger \
             WHERE account_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("reading the ledger"))?;
        rows.iter()
            .map(|row| {
                let what = "reading the ledger";
                let job: Option<String> = column(row, "job_id", what)?;
                Ok(LedgerEntry {
                    job_id: job.map(|j| parse(&j, "job id")).transpose()?,
                    amount_micro_cents: column(row, "amount_micro_cents", what)?,
                    reason: column(row, "reason", what)?,
                    created_at: column(row, "created_at", what)?,
                })
            })
            .collect()
    }

    pub(super) async fn count_active(&self, id: AccountId) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE account_id = $1 AND state IN ('PENDING', 'PROCESSING')",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(db_err("counting active jobs"))?;
        Ok(count as u64)
    }

    pub(super) async fn account(&self, id: AccountId) -> StoreResult<Option<Account>> {
        let row = sqlx::query(
            "SELECT name, webhook_secret, previous_webhook_secret, previous_secret_valid_until, \
             balance_micro_cents, max_concurrent_jobs, model_patterns, created_at \
             FROM accounts WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("reading an account"))?;
        row.map(|row| {
            let what = "reading an account";
            Ok(Account {
                id,
                name: column(&row, "name", what)?,
                webhook_secret: column(&row, "webhook_secret", what)?,
                previous_webhook_secret: column(&row, "previous_webhook_secret", what)?,
                previous_secret_valid_until: column(&row, "previous_secret_valid_until", what)?,
                balance_micro_cents: column(&row, "balance_micro_cents", what)?,
                max_concurrent_jobs: column::<Option<i64>>(&row, "max_concurrent_jobs", what)?
                    .map(|n| n as u32),
                model_patterns: patterns_from(column(&row, "model_patterns", what)?),
                created_at: column(&row, "created_at", what)?,
            })
        })
        .transpose()
    }

    pub(super) async fn rotate_secret(
        &self,
        id: AccountId,
        secret: &str,
        previous_valid_until: Millis,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET previous_webhook_secret = webhook_secret, \
             previous_secret_valid_until = $1, webhook_secret = $2 WHERE id = $3",
        )
        .bind(previous_valid_until)
        .bind(secret)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err("rotating a webhook secret"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn create_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, key_hash, scopes, model_patterns, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.id.to_string())
        .bind(key.account_id.to_string())
        .bind(&key.key_hash)
        .bind(key.scopes.join(","))
        .bind(patterns_to(&key.model_patterns))
        .bind(key.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_err("inserting an API key"))?;
        Ok(())
    }

    pub(super) async fn revoke_key(&self, id: KeyId, now: Millis) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(db_err("revoking an API key"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn principal(&self, key_hash: &[u8]) -> StoreResult<Option<Principal>> {
        let row = sqlx::query(
            "SELECT k.id, k.account_id, k.scopes, k.model_patterns AS key_models, \
             a.model_patterns AS account_models \
             FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("looking up an API key"))?;
        row.map(|row| {
            let what = "reading an API key";
            let scopes: String = column(&row, "scopes", what)?;
            Ok(Principal {
                key_id: parse(&column::<String>(&row, "id", what)?, "key id")?,
                account_id: parse(&column::<String>(&row, "account_id", what)?, "account id")?,
                scopes: scopes
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                account_models: patterns_from(column(&row, "account_models", what)?),
                key_models: patterns_from(column(&row, "key_models", what)?),
            })
        })
        .transpose()
    }
}
