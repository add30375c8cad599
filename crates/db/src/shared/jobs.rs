//! The shared body of `JobDb`.

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

pub(crate) use job_db;
