//! Method bodies that are the same on both backends, written once and
//! stamped into each backend's impl of the trait they belong to.
//!
//! sqlx's types differ per backend (`Pool<Sqlite>`, `Pool<Postgres>`), and
//! code generic over them needs a bound for every type bound and decoded, so
//! the shared bodies are macros over the backend's type instead. Each
//! backend gives them `reads()` and `writes()` (its pools), `begin()` (a
//! transaction on the write pool), and, in scope where the macro is used,
//! `settle` (what a terminal state owes: backend-specific). Each macro takes
//! the trait's remaining methods, the ones that differ, as they are written
//! in the backend's file.

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

/// `JobDb` for `$db`, given its `insert_job` and `get_job`.
macro_rules! job_db {
    ($db:ty; $($specific:tt)*) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::JobDb for $db {
            async fn job_by_media_token(
                &self,
                token: &str,
            ) -> ::genq_engine::db::DbResult<Option<::genq_engine::Job>> {
                self.job_by(&$crate::sql::JOB_BY_MEDIA_TOKEN, token).await
            }

            async fn job_by_share_token(
                &self,
                token: &str,
            ) -> ::genq_engine::db::DbResult<Option<::genq_engine::Job>> {
                self.job_by(&$crate::sql::JOB_BY_SHARE_TOKEN, token).await
            }

            async fn job_by_id(
                &self,
                id: ::genq_engine::JobId,
            ) -> ::genq_engine::db::DbResult<Option<::genq_engine::Job>> {
                self.job_by(&$crate::sql::JOB_BY_ID, &id.to_string()).await
            }

            async fn list_jobs(
                &self,
                account: ::genq_engine::AccountId,
                query: &::genq_engine::JobQuery,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::Job>> {
                let rows = ::sqlx::query(&$crate::sql::JOB_PAGE)
                    .bind(account.to_string())
                    .bind(query.before.map(|id| id.to_string()))
                    .bind(query.state.map(::genq_engine::JobState::as_str))
                    .bind(query.model.as_deref())
                    .bind(query.dialect.as_deref())
                    .bind(query.correlation_id.as_deref())
                    .bind(query.in_flight_or_finished_since)
                    .bind(i64::from(query.limit))
                    .fetch_all(self.reads())
                    .await
                    .map_err($crate::codec::db_err("listing jobs"))?;
                rows.iter().map($crate::codec::job_from_row).collect()
            }

            async fn cancel(
                &self,
                request: &::genq_engine::db::CancelRequest<'_>,
            ) -> ::genq_engine::db::DbResult<::genq_engine::db::CancelOutcome> {
                use ::genq_engine::db::{CancelMode, CancelOutcome};
                use $crate::codec::{db_err, job_from_row, parse};
                let id = request.job.to_string();
                let account = request.account.to_string();
                let mut tx = self.begin().await?;
                let cancelled = ::sqlx::query(&$crate::sql::CANCEL_PENDING)
                    .bind(request.now)
                    .bind(&id)
                    .bind(&account)
                    .bind(request.dialect)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err("cancelling a job"))?;
                if let Some(row) = cancelled {
                    let state = ::genq_engine::JobState::Cancelled;
                    settle(&mut tx, &id, state, request.now).await?;
                    tx.commit()
                        .await
                        .map_err(db_err("committing a cancellation"))?;
                    return Ok(CancelOutcome::Cancelled(Box::new(job_from_row(&row)?)));
                }
                if request.mode == CancelMode::EvenIfRunning {
                    let requested = ::sqlx::query(&$crate::sql::REQUEST_CANCEL)
                        .bind(request.now)
                        .bind(&id)
                        .bind(&account)
                        .bind(request.dialect)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err("cancelling a job"))?;
                    if let Some(row) = requested {
                        tx.commit()
                            .await
                            .map_err(db_err("committing a cancellation"))?;
                        let job = job_from_row(&row)?;
                        return Ok(CancelOutcome::CancelRequested(Box::new(job)));
                    }
                }
                let state: Option<String> = ::sqlx::query_scalar($crate::sql::STATE_OF_JOB)
                    .bind(&id)
                    .bind(&account)
                    .bind(request.dialect)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err("reading a job"))?;
                Ok(match state {
                    Some(state) => CancelOutcome::NotCancellable(parse(&state, "job state")?),
                    None => CancelOutcome::NotFound,
                })
            }

            async fn requeue(
                &self,
                request: &::genq_engine::db::RequeueRequest<'_>,
            ) -> ::genq_engine::db::DbResult<::genq_engine::db::RequeueOutcome> {
                use ::genq_engine::db::RequeueOutcome;
                use $crate::codec::db_err;
                let account = request.account.to_string();
                let mut tx = self.begin().await?;
                let (head, next): (i64, i64) = ::sqlx::query_as($crate::sql::NEXT_ROUND)
                    .bind(&account)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err("reading the queue's rounds"))?;
                let mut round = head.max(next);
                let mut requeued = Vec::new();
                let mut balance = None;
                let mut charged = 0;
                for job in request.jobs {
                    let id = job.to_string();
                    let cost: Option<i64> = ::sqlx::query_scalar($crate::sql::REQUEUE_JOB)
                        .bind(false)
                        .bind(request.now)
                        .bind(round)
                        .bind(&id)
                        .bind(&account)
                        .bind(request.dialect)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err("queueing a job again"))?;
                    let Some(cost) = cost else {
                        // Not finished (left alone), or not the caller's.
                        let state: Option<(String, Option<i64>)> = ::sqlx::query_as($crate::sql::STATE_OF_JOB)
                            .bind(&id)
                            .bind(&account)
                            .bind(request.dialect)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_err("reading a job"))?;
                        match state {
                            None => return Ok(RequeueOutcome::NotFound(*job)),
                            Some((_, Some(_))) => return Ok(RequeueOutcome::InputsDeleted(*job)),
                            Some((_, None)) => continue,
                        }
                    };
                    round += 1;
                    if cost > 0 {
                        let after =
                            post_ledger(&mut tx, &account, Some(&id), -cost, "reserve", request.now)
                                .await?;
                        balance = after;
                        charged += cost;
                    }
                    requeued.push(*job);
                }
                if let Some(balance) = balance.filter(|b| *b < 0) {
                    // Dropping the transaction undoes every charge.
                    return Ok(RequeueOutcome::InsufficientBalance {
                        balance: balance + charged,
                        cost: charged,
                    });
                }
                tx.commit()
                    .await
                    .map_err(db_err("committing a requeue"))?;
                Ok(RequeueOutcome::Requeued(requeued))
            }

            $($specific)*
        }

        impl $db {
            async fn job_by(
                &self,
                sql: &str,
                token: &str,
            ) -> ::genq_engine::db::DbResult<Option<::genq_engine::Job>> {
                let row = ::sqlx::query(sql)
                    .bind(token)
                    .fetch_optional(self.reads())
                    .await
                    .map_err($crate::codec::db_err("reading a job"))?;
                row.as_ref().map($crate::codec::job_from_row).transpose()
            }
        }
    };
}

/// `QueueDb` for `$db`, given its `claim`, `complete`, `fail`,
/// `record_cancelled`, `jobs_ahead` and `model_run_ms`.
macro_rules! queue_db {
    ($db:ty; $($specific:tt)*) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::QueueDb for $db {
            async fn fail_overdue(
                &self,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::Job>> {
                use $crate::codec::{db_err, job_from_row};
                // Asked every second by every worker process: a read on the
                // deadline index, and a write only when a job is due.
                let due: Vec<(String, Option<i64>)> = ::sqlx::query_as($crate::sql::OVERDUE_JOBS)
                    .bind(now)
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err("reading overdue jobs"))?;
                if due.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin().await?;
                let mut failed = Vec::with_capacity(due.len());
                // In (account, id) order, as every sweep locks them: no deadlock.
                for (id, timeout_ms) in &due {
                    let failure = ::genq_engine::job::deadline_failure(*timeout_ms);
                    let row = ::sqlx::query(&$crate::sql::FAIL_OVERDUE)
                        .bind(&failure.code)
                        .bind(&failure.message)
                        .bind(now)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err("failing an overdue job"))?;
                    // Claimed, cancelled or failed by someone else meanwhile.
                    let Some(row) = row else { continue };
                    settle(&mut tx, id, ::genq_engine::JobState::Failed, now).await?;
                    failed.push(job_from_row(&row)?);
                }
                tx.commit().await.map_err(db_err("committing a sweep"))?;
                Ok(failed)
            }

            async fn state_counts(
                &self,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::db::StateCount>> {
                use $crate::codec::{db_err, parse};
                use $crate::codec::Columns as _;
                let rows = ::sqlx::query($crate::sql::STATE_COUNTS)
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err("counting jobs by state"))?;
                rows.iter()
                    .map(|row| {
                        Ok(::genq_engine::db::StateCount {
                            state: parse(&row.text("state")?, "job state")?,
                            jobs: row.int("jobs")? as u64,
                            oldest_created_at: row.opt_int("oldest")?,
                        })
                    })
                    .collect()
            }

            async fn heartbeat(
                &self,
                lease: &::genq_engine::job::Lease,
                lease_until: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<::genq_engine::db::LeaseStatus> {
                use ::genq_engine::db::LeaseStatus;
                let row: Option<bool> = ::sqlx::query_scalar($crate::sql::HEARTBEAT)
                    .bind(lease_until)
                    .bind(lease.job_id.to_string())
                    .bind(lease.attempt)
                    .fetch_optional(self.writes())
                    .await
                    .map_err($crate::codec::db_err("extending a lease"))?;
                Ok(match row {
                    None => LeaseStatus::Lost,
                    Some(false) => LeaseStatus::Held,
                    Some(true) => LeaseStatus::CancelRequested,
                })
            }

            async fn record_progress(
                &self,
                lease: &::genq_engine::job::Lease,
                progress: u8,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::RECORD_PROGRESS)
                    .bind(i64::from(progress))
                    .bind(now)
                    .bind(lease.job_id.to_string())
                    .bind(lease.attempt)
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("recording progress"))?;
                Ok(done.rows_affected() == 1)
            }

            /// On PostgreSQL, the trigger announces the job PENDING again:
            /// idle workers of every process wake for it.
            async fn release(
                &self,
                lease: &::genq_engine::job::Lease,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::RELEASE)
                    .bind(now)
                    .bind(lease.job_id.to_string())
                    .bind(lease.attempt)
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("releasing a job"))?;
                Ok(done.rows_affected() == 1)
            }

            $($specific)*
        }
    };
}

/// `OutboxDb` for `$db`, given its `claim_deliveries`.
macro_rules! outbox_db {
    ($db:ty; $($specific:tt)*) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::OutboxDb for $db {
            async fn finish_attempt(
                &self,
                delivery_id: &str,
                attempt: &::genq_engine::webhook::Attempt,
                next: ::genq_engine::webhook::NextStep,
            ) -> ::genq_engine::db::DbResult<()> {
                use $crate::codec::{db_err, text};
                let mut tx = self.begin().await?;
                ::sqlx::query($crate::sql::INSERT_ATTEMPT)
                    .bind(delivery_id)
                    .bind(attempt.attempted_at)
                    .bind(attempt.status_code.map(i64::from))
                    .bind(attempt.latency_ms)
                    .bind(attempt.error.as_deref().map(text))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("recording a webhook attempt"))?;
                let (state, next_at, delivered_at) = next.columns(attempt);
                ::sqlx::query($crate::sql::FINISH_ATTEMPT)
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

            async fn redeliver(
                &self,
                account: ::genq_engine::AccountId,
                job: ::genq_engine::JobId,
                now: ::genq_engine::time::Millis,
            ) -> ::genq_engine::db::DbResult<u64> {
                let done = ::sqlx::query($crate::sql::REDELIVER)
                    .bind(now)
                    .bind(account.to_string())
                    .bind(job.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("queueing a redelivery"))?;
                Ok(done.rows_affected())
            }

            async fn deliveries_for_job(
                &self,
                account: ::genq_engine::AccountId,
                job: ::genq_engine::JobId,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::webhook::DeliveryRecord>> {
                use $crate::codec::{attempt_from_row, db_err, delivery_record_from_row};
                let rows = ::sqlx::query($crate::codec::DELIVERIES_OF_JOB)
                    .bind(account.to_string())
                    .bind(job.to_string())
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err("listing webhook deliveries"))?;
                let mut deliveries = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut delivery = delivery_record_from_row(&row)?;
                    delivery.attempts = ::sqlx::query($crate::codec::ATTEMPTS_OF_DELIVERY)
                        .bind(&delivery.id)
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err("listing webhook attempts"))?
                        .iter()
                        .map(attempt_from_row)
                        .collect::<::genq_engine::db::DbResult<_>>()?;
                    deliveries.push(delivery);
                }
                Ok(deliveries)
            }

            $($specific)*
        }
    };
}

/// `ProjectDb` for `$db`: the same statements on both backends.
macro_rules! project_db {
    ($db:ty) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::ProjectDb for $db {
            async fn insert_project(
                &self,
                project: &::genq_engine::Project,
            ) -> ::genq_engine::db::DbResult<()> {
                ::sqlx::query($crate::sql::INSERT_PROJECT)
                    .bind(project.id.to_string())
                    .bind(project.account_id.to_string())
                    .bind($crate::codec::text(&project.name))
                    .bind(&project.kind)
                    .bind(project.starts_at)
                    .bind(project.ends_at)
                    .bind($crate::codec::text(&project.template))
                    .bind(project.created_at)
                    .bind(project.updated_at)
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("inserting a project"))?;
                Ok(())
            }

            async fn get_project(
                &self,
                account: ::genq_engine::AccountId,
                id: ::genq_engine::ProjectId,
            ) -> ::genq_engine::db::DbResult<Option<::genq_engine::Project>> {
                let row = ::sqlx::query(&$crate::codec::PROJECT_BY_ID)
                    .bind(id.to_string())
                    .bind(account.to_string())
                    .fetch_optional(self.reads())
                    .await
                    .map_err($crate::codec::db_err("reading a project"))?;
                row.as_ref()
                    .map($crate::codec::project_from_row)
                    .transpose()
            }

            async fn list_projects(
                &self,
                account: ::genq_engine::AccountId,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::Project>> {
                let rows = ::sqlx::query(&$crate::codec::PROJECTS_OF_ACCOUNT)
                    .bind(account.to_string())
                    .fetch_all(self.reads())
                    .await
                    .map_err($crate::codec::db_err("listing projects"))?;
                rows.iter().map($crate::codec::project_from_row).collect()
            }

            async fn update_project(
                &self,
                project: &::genq_engine::Project,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::UPDATE_PROJECT)
                    .bind($crate::codec::text(&project.name))
                    .bind(&project.kind)
                    .bind(project.starts_at)
                    .bind(project.ends_at)
                    .bind($crate::codec::text(&project.template))
                    .bind(project.updated_at)
                    .bind(project.id.to_string())
                    .bind(project.account_id.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("updating a project"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_project(
                &self,
                account: ::genq_engine::AccountId,
                id: ::genq_engine::ProjectId,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::DELETE_PROJECT)
                    .bind(id.to_string())
                    .bind(account.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("deleting a project"))?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use {account_db, job_db, outbox_db, post_ledger, project_db, queue_db};
