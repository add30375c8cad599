//! The shared body of `AccountDb`, and the ledger posting both backends call in their transactions.

/// Moves an account's balance and records why, in the caller's transaction:
/// the new balance, or None when there is no such account (nothing written).
macro_rules! post_ledger {
    ($backend:ty) => {
        pub(super) async fn post_ledger(
            tx: &mut ::sqlx::Transaction<'_, $backend>,
            account: &str,
            job: Option<&str>,
            amount: i64,
            reason: &str,
            now: ::genq_engine::time::Millis,
        ) -> ::genq_engine::db::DbResult<Option<i64>> {
            use $crate::codec::db_err;
            let balance: Option<i64> = ::sqlx::query_scalar($crate::sql::MOVE_BALANCE)
                .bind(amount)
                .bind(account)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_err("updating a balance"))?;
            if balance.is_none() {
                return Ok(None);
            }
            ::sqlx::query($crate::sql::INSERT_LEDGER)
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
    };
}

/// `AccountDb` for `$db`, given its `principal_for_key`.
macro_rules! account_db {
    ($db:ty; $($specific:tt)*) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::AccountDb for $db {
            async fn insert_account(
                &self,
                id: ::genq_engine::AccountId,
                account: &::genq_engine::account::NewAccount,
                webhook_secret: &str,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<()> {
                use $crate::codec::{db_err, patterns_to};
                let mut tx = self.begin().await?;
                ::sqlx::query($crate::sql::INSERT_ACCOUNT)
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
                    let credits = account.credits_micro_cents;
                    post_ledger(&mut tx, &id, None, credits, "credit", now).await?;
                }
                tx.commit().await.map_err(db_err("committing an account"))
            }

            async fn credit_account(
                &self,
                id: ::genq_engine::AccountId,
                micro_cents: i64,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<Option<i64>> {
                let mut tx = self.begin().await?;
                let id = id.to_string();
                let balance = post_ledger(&mut tx, &id, None, micro_cents, "credit", now).await?;
                tx.commit()
                    .await
                    .map_err($crate::codec::db_err("committing credits"))?;
                Ok(balance)
            }

            async fn ledger(
                &self,
                id: ::genq_engine::AccountId,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::db::LedgerEntry>> {
                let rows = ::sqlx::query($crate::codec::LEDGER_OF_ACCOUNT)
                    .bind(id.to_string())
                    .fetch_all(self.reads())
                    .await
                    .map_err($crate::codec::db_err("reading the ledger"))?;
                rows.iter().map($crate::codec::ledger_entry_from_row).collect()
            }

            async fn active_jobs(
                &self,
                id: ::genq_engine::AccountId,
            ) -> ::genq_engine::db::DbResult<u64> {
                let count: i64 = ::sqlx::query_scalar($crate::sql::COUNT_ACTIVE)
                    .bind(id.to_string())
                    .fetch_one(self.reads())
                    .await
                    .map_err($crate::codec::db_err("counting active jobs"))?;
                Ok(count as u64)
            }

            async fn get_account(
                &self,
                id: ::genq_engine::AccountId,
            ) -> ::genq_engine::db::DbResult<Option<::genq_engine::Account>> {
                let row = ::sqlx::query($crate::codec::ACCOUNT_BY_ID)
                    .bind(id.to_string())
                    .fetch_optional(self.reads())
                    .await
                    .map_err($crate::codec::db_err("reading an account"))?;
                row.map(|row| $crate::codec::account_from_row(id, &row))
                    .transpose()
            }

            async fn account_count(&self) -> ::genq_engine::db::DbResult<u64> {
                let count: i64 = ::sqlx::query_scalar($crate::sql::COUNT_ACCOUNTS)
                    .fetch_one(self.reads())
                    .await
                    .map_err($crate::codec::db_err("counting accounts"))?;
                Ok(count as u64)
            }

            async fn rotate_webhook_secret(
                &self,
                id: ::genq_engine::AccountId,
                secret: &str,
                previous_valid_until: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::ROTATE_SECRET)
                    .bind(previous_valid_until)
                    .bind(secret)
                    .bind(id.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("rotating a webhook secret"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_api_key(
                &self,
                key: &::genq_engine::account::ApiKeyRecord,
            ) -> ::genq_engine::db::DbResult<()> {
                ::sqlx::query($crate::sql::INSERT_KEY)
                    .bind(key.id.to_string())
                    .bind(key.account_id.to_string())
                    .bind(&key.key_hash)
                    .bind(key.scopes.join(","))
                    .bind($crate::codec::patterns_to(&key.model_patterns))
                    .bind(key.created_at)
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("inserting an API key"))?;
                Ok(())
            }

            async fn revoke_api_key(
                &self,
                id: ::genq_engine::KeyId,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::REVOKE_KEY)
                    .bind(now)
                    .bind(id.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("revoking an API key"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn api_keys(
                &self,
                account: ::genq_engine::AccountId,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::account::ApiKeyInfo>> {
                let rows = ::sqlx::query($crate::sql::KEYS_OF_ACCOUNT)
                    .bind(account.to_string())
                    .fetch_all(self.reads())
                    .await
                    .map_err($crate::codec::db_err("listing API keys"))?;
                rows.iter().map($crate::codec::key_info_from_row).collect()
            }

            async fn revoke_account_key(
                &self,
                account: ::genq_engine::AccountId,
                id: ::genq_engine::KeyId,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::REVOKE_ACCOUNT_KEY)
                    .bind(now)
                    .bind(id.to_string())
                    .bind(account.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("revoking an API key"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_session(
                &self,
                token_hash: &[u8],
                key: ::genq_engine::KeyId,
                expires_at: ::genq_engine::time::Millis,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<()> {
                use $crate::codec::db_err;
                let mut tx = self.begin().await?;
                ::sqlx::query($crate::sql::DELETE_EXPIRED_SESSIONS)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("deleting expired sessions"))?;
                ::sqlx::query($crate::sql::INSERT_SESSION)
                    .bind(token_hash)
                    .bind(key.to_string())
                    .bind(now)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("recording a session"))?;
                tx.commit().await.map_err(db_err("committing a session"))
            }

            async fn principal_for_session(
                &self,
                token_hash: &[u8],
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<Option<::genq_engine::Principal>> {
                let key_hash: Option<Vec<u8>> = ::sqlx::query_scalar($crate::sql::SESSION_KEY_HASH)
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(self.reads())
                    .await
                    .map_err($crate::codec::db_err("reading a session"))?;
                match key_hash {
                    Some(hash) => self.principal_for_key(&hash).await,
                    None => Ok(None),
                }
            }

            async fn delete_session(&self, token_hash: &[u8]) -> ::genq_engine::db::DbResult<()> {
                ::sqlx::query($crate::sql::DELETE_SESSION)
                    .bind(token_hash)
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("deleting a session"))?;
                Ok(())
            }

            $($specific)*
        }
    };
}

pub(crate) use {account_db, post_ledger};
