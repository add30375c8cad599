//! The server backend: PostgreSQL, shared by any number of genq processes.
//!
//! Unlike SQLite, writers really run at once, so every read-then-write is made
//! safe by a row lock rather than by a single writer:
//!
//! - A submission first locks its account's row (`SELECT … FOR NO KEY UPDATE`), so
//!   the per-key and per-account counts and the balance check of one account
//!   serialize, while other accounts' submissions run in parallel.
//! - Claims lock their candidate with `FOR UPDATE SKIP LOCKED`: concurrent
//!   claimers each take a different job instead of queueing on one.
//! - Guarded updates (`… WHERE id = $ AND attempt = $ AND state = 'PROCESSING'`)
//!   re-check their condition after waiting for a concurrent writer (READ
//!   COMMITTED), so a stale worker still matches no row.
//!
//! Locks are always taken job row first, then account row (settling a job
//! moves its account's balance), and a claim that gives up several jobs
//! settles them in account order. The one exception is a batch of outcomes
//! (`finish.rs`) that refunds several accounts: two processes' batches may
//! deadlock; PostgreSQL then aborts one, and its outcomes are recorded again
//! one by one.
//!
//! The hot paths (submission, claim, outcomes) are plpgsql functions, one
//! statement each (migrations/postgres/0002_queue_functions.sql, 0003;
//! submissions, one job or a batch, in 0010). Every
//! committed change of a job is announced by a trigger with `NOTIFY
//! genq_job_events` (0003_events.sql); `feed.rs` listens and hands the
//! events to the engine's bus, which wakes idle workers, the webhook
//! dispatcher and the event streams of every process.
//!
//! Each trait of the database is implemented in its own file: `accounts.rs`,
//! `jobs.rs`, `queue.rs` (with `finish.rs`), `outbox.rs`, `feed.rs`.

mod accounts;
mod feed;
mod finish;
mod jobs;
mod keys;
mod outbox;
mod projects;
mod queue;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Connection;
use std::str::FromStr;
use std::time::Duration;

use genq_engine::db::DbResult;
use genq_engine::DbError;

use crate::codec::db_err;

/// Connections per process unless the caller asks otherwise: enough for a
/// worker pool, the HTTP handlers and the webhook dispatcher to overlap,
/// few enough that several processes fit in PostgreSQL's default 100.
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

pub struct PostgresDb {
    pool: PgPool,
    options: PgConnectOptions,
    /// Started by the first subscriber, so processes that follow no events
    /// (the CLI) hold no extra connection.
    listener: tokio::sync::OnceCell<feed::Listener>,
    /// The accounts this process has the database announce changes of.
    followed: std::sync::Arc<feed::Followed>,
    queue_depth: crate::queue_depth::QueueDepth,
    /// When (claimers' clock, ms) the last sweep for abandoned jobs ran.
    last_sweep: std::sync::atomic::AtomicI64,
    finisher: finish::Finisher,
}

/// A pooled connection idle this long is pinged before use.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// How often claims sweep for jobs lost too many times.
const SWEEP_EVERY_MS: i64 = 1_000;

impl PostgresDb {
    /// Connects to `postgres://…` (or `postgresql://…`) and runs migrations.
    pub async fn connect(url: &str) -> DbResult<Self> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As [`Self::connect`], with at most `max_connections` pooled
    /// connections (the event listener takes one more).
    pub async fn connect_with(url: &str, max_connections: u32) -> DbResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(db_err("invalid PostgreSQL URL"))?
            .application_name("genq");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // While the server is down each request waits this long for a
            // connection before it is answered 503: long enough for a
            // restart's blip under load, short enough not to hold clients.
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings every connection it hands out: a round trip more
            // for each statement. A connection in steady use is known to be
            // alive; one idle for a while (across a server restart, say) is
            // checked, and replaced if the ping fails.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(db_err("could not connect to PostgreSQL"))?;
        // sqlx holds an advisory lock while migrating, so processes starting
        // together migrate once.
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| DbError::new("could not migrate the PostgreSQL database", e))?;
        Ok(Self {
            pool,
            options,
            listener: tokio::sync::OnceCell::new(),
            followed: Default::default(),
            queue_depth: Default::default(),
            last_sweep: std::sync::atomic::AtomicI64::new(i64::MIN),
            finisher: Default::default(),
        })
    }

    /// Reads and writes share one pool (`crate::shared`'s bodies name both).
    fn reads(&self) -> &PgPool {
        &self.pool
    }

    fn writes(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool
            .begin()
            .await
            .map_err(db_err("starting a transaction"))
    }
}

crate::retention::retention_db!(PostgresDb);
