//! Committed changes of jobs are announced by the database: a trigger's
//! `NOTIFY genq_job_events` (migrations/postgres/0003_events.sql). One
//! `LISTEN` connection per process hands each announcement to the engine's
//! bus, so idle workers, the webhook dispatcher and event streams of every
//! process hear of committed changes, and only of those.
//!
//! The trigger announces what the engine's hooks act on, and every change of
//! the jobs of a followed account. A process says which accounts it follows
//! in `genq_followed_accounts`: an account's first subscriber registers it
//! ([`EventFeed::follow_account`]), and a keeper renews what the bus still
//! follows every [`RENEW_EVERY`], each row for [`FOLLOW_FOR`], so that rows
//! of a process that died lapse by themselves.
//!
//! When the connection is lost (the database restarted, say), announcements
//! sent meanwhile are lost: the bus is told ([`EventBus::missed_all`]), so
//! that its subscribers re-read what they follow, and the connection is made
//! again with backoff. A renewal that failed is treated the same way once
//! one succeeds again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::task::JoinHandle;

use genq_engine::db::{DbResult, EventFeed};
use genq_engine::events::EventBus;
use genq_engine::time::Millis;
use genq_engine::{AccountId, JobEvent, JobId};

use super::PostgresDb;
use crate::policy::EVENTS_CHANNEL;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Short, so that events flow again within seconds of a database restart.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long one registration of a followed account lasts.
const FOLLOW_FOR: Duration = Duration::from_secs(30);
/// How often the keeper renews the registrations of what the bus follows.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// A registration older than this is made again before a new subscriber
/// relies on it (the keeper may be behind); well inside [`FOLLOW_FOR`].
const RELY_FOR: Duration = Duration::from_secs(20);
/// The longest a registration waits for transactions that were running when
/// it committed (see [`register`]); genq's own changes take milliseconds.
const MOST_WAIT_FOR_RUNNING: Duration = Duration::from_secs(1);

#[async_trait]
impl EventFeed for PostgresDb {
    fn announces_changes(&self) -> bool {
        true
    }

    async fn follow_changes(&self, bus: EventBus) {
        self.listener
            .get_or_init(|| {
                let keeper = keep_followed(self.pool.clone(), bus.clone(), self.followed.clone());
                Listener::start(self.options.clone(), bus, keeper)
            })
            .await;
    }

    async fn follow_account(&self, bus: &EventBus, account: AccountId) {
        // Announcements are heard from here on.
        self.follow_changes(bus.clone()).await;
        let followed = &self.followed;
        if followed.relied_on(account) {
            return;
        }
        // An account's first subscribers come together: one registers it.
        let _one = followed.registering.lock().await;
        if followed.relied_on(account) {
            return;
        }
        followed.renew(&self.pool, bus, &[account], true).await;
    }

    async fn changed_jobs(
        &self,
        _jobs: &[JobId],
        _accounts: &[AccountId],
        _since: Millis,
    ) -> DbResult<Vec<JobEvent>> {
        // Everything followed is announced; nothing to look for.
        Ok(Vec::new())
    }
}

/// The accounts this process registered as followed.
#[derive(Default)]
pub(super) struct Followed {
    /// When each was last registered (this process's clock).
    registered: Mutex<HashMap<AccountId, Instant>>,
    /// Held while registering, so that one account is registered once.
    registering: tokio::sync::Mutex<()>,
    /// A registration failed: changes may have gone unannounced, and the
    /// bus is told so once one succeeds.
    lapsed: AtomicBool,
}

impl Followed {
    fn relied_on(&self, account: AccountId) -> bool {
        self.registered
            .lock()
            .expect("not poisoned")
            .get(&account)
            .is_some_and(|at| at.elapsed() < RELY_FOR)
    }

    /// Registers `accounts` (sorted, so that concurrent registrations lock
    /// rows in one order), waiting for transactions that were running when
    /// it committed if `settle`; on success forgets every other account.
    async fn renew(&self, pool: &PgPool, bus: &EventBus, accounts: &[AccountId], settle: bool) {
        let started = Instant::now();
        match register(
            pool,
            accounts,
            settle || self.lapsed.load(Ordering::Acquire),
        )
        .await
        {
            Ok(()) => {
                let mut registered = self.registered.lock().expect("not poisoned");
                for account in accounts {
                    registered.insert(*account, started);
                }
                drop(registered);
                if self.lapsed.swap(false, Ordering::AcqRel) {
                    bus.missed_all();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not register the accounts followed for job events");
                self.lapsed.store(true, Ordering::Release);
            }
        }
    }

    /// Forgets the accounts no longer followed (their rows lapse).
    fn keep_only(&self, accounts: &[AccountId]) {
        self.registered
            .lock()
            .expect("not poisoned")
            .retain(|account, _| accounts.binary_search(account).is_ok());
    }
}

/// Has the trigger announce every change of `accounts`' jobs for
/// [`FOLLOW_FOR`] from now, and drops registrations long lapsed.
///
/// A transaction that ran the trigger just before this committed announced
/// nothing, and may commit just after: with `settle`, this waits (at most
/// [`MOST_WAIT_FOR_RUNNING`]) until every transaction running at its commit
/// has ended, so that what the caller reads next includes such changes.
async fn register(pool: &PgPool, accounts: &[AccountId], settle: bool) -> Result<(), sqlx::Error> {
    const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";
    let accounts: Vec<String> = accounts.iter().map(ToString::to_string).collect();
    sqlx::query(&format!(
        "INSERT INTO genq_followed_accounts (account_id, until) \
         SELECT account, {NOW_MS} + $2 FROM unnest($1::TEXT[]) AS account ORDER BY account \
         ON CONFLICT (account_id) DO UPDATE \
         SET until = GREATEST(genq_followed_accounts.until, EXCLUDED.until)"
    ))
    .bind(&accounts)
    .bind(FOLLOW_FOR.as_millis() as i64)
    .execute(pool)
    .await?;
    // Jobs in flight were claimed before the account was followed: from now
    // on their changes are announced too (a claim marks the jobs it takes
    // itself). A row a running transaction holds is marked once it commits.
    sqlx::query(
        "UPDATE jobs SET announce = TRUE WHERE account_id = ANY($1::TEXT[]) \
         AND state IN ('PENDING', 'PROCESSING') AND NOT announce",
    )
    .bind(&accounts)
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "DELETE FROM genq_followed_accounts WHERE until < {NOW_MS} - $1"
    ))
    .bind(FOLLOW_FOR.as_millis() as i64)
    .execute(pool)
    .await?;
    if !settle {
        return Ok(());
    }
    let running: Vec<String> =
        sqlx::query_scalar("SELECT xid::TEXT FROM pg_snapshot_xip(pg_current_snapshot()) AS xid")
            .fetch_all(pool)
            .await?;
    let deadline = Instant::now() + MOST_WAIT_FOR_RUNNING;
    while !running.is_empty() && Instant::now() < deadline {
        let still: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM unnest($1::TEXT[]) AS xid \
             WHERE pg_xact_status(xid::xid8) = 'in progress'",
        )
        .bind(&running)
        .fetch_one(pool)
        .await?;
        if still == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Renews the registrations of what `bus` follows, every [`RENEW_EVERY`].
async fn keep_followed(pool: PgPool, bus: EventBus, followed: Arc<Followed>) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let accounts = bus.followed_accounts();
        followed.keep_only(&accounts);
        if accounts.is_empty() {
            continue;
        }
        let _one = followed.registering.lock().await;
        followed.renew(&pool, &bus, &accounts, false).await;
    }
}

pub(super) struct Listener {
    listening: JoinHandle<()>,
    keeper: JoinHandle<()>,
}

impl Listener {
    /// Subscribes before returning, so that changes committed after the
    /// first subscriber arrived are announced; a failure here is retried in
    /// the background like any later one. Runs `keeper` alongside.
    async fn start(
        options: PgConnectOptions,
        bus: EventBus,
        keeper: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Self {
        // Its own connection: a listener holds it for good, and taking it
        // from the pool would shrink the pool by one.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options.application_name("genq-listener"));
        let first = match subscribe(&pool).await {
            Ok(listener) => {
                // Whoever subscribed before this connection listened may
                // have missed changes: they re-read what they follow.
                bus.missed_all();
                Some(listener)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not listen for job events; retrying");
                None
            }
        };
        Self {
            listening: tokio::spawn(run(pool, first, bus)),
            keeper: tokio::spawn(keeper),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.listening.abort();
        self.keeper.abort();
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(EVENTS_CHANNEL).await?;
    Ok(listener)
}

async fn run(pool: PgPool, mut current: Option<PgListener>, bus: EventBus) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut listener = match current.take() {
            Some(listener) => listener,
            None => {
                tokio::time::sleep(backoff).await;
                match subscribe(&pool).await {
                    Ok(listener) => {
                        tracing::info!("listening for job events again");
                        // Changes committed while nobody listened went unheard.
                        bus.missed_all();
                        backoff = MIN_BACKOFF;
                        listener
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not listen for job events; retrying");
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<JobEvent>(notification.payload()) {
                        Ok(event) => bus.publish(event),
                        Err(e) => tracing::warn!(
                            error = %e, payload = notification.payload(),
                            "an unreadable job event"
                        ),
                    }
                }
                // The connection dropped and was re-established: anything
                // sent in between was lost.
                Ok(None) => bus.missed_all(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the connection listening for job events");
                    break;
                }
            }
        }
    }
}
