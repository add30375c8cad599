//! Every committed change of a job is announced by the database (a trigger's
//! `NOTIFY genq_job_events`, migrations/postgres/0003_events.sql). One
//! `LISTEN` connection per process hands each announcement to the engine's
//! bus: idle workers, the webhook dispatcher and event streams of every
//! process hear of every change, and only of committed ones.
//!
//! When the connection is lost (the database restarted, say), announcements
//! sent meanwhile are lost: the bus is told ([`EventBus::missed_all`]), so
//! that its subscribers re-read what they follow, and the connection is made
//! again with backoff.

use std::time::Duration;

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

#[async_trait]
impl EventFeed for PostgresDb {
    fn announces_changes(&self) -> bool {
        true
    }

    async fn follow_changes(&self, bus: EventBus) {
        self.listener
            .get_or_init(|| Listener::start(self.options.clone(), bus))
            .await;
    }

    async fn changed_jobs(
        &self,
        _jobs: &[JobId],
        _accounts: &[AccountId],
        _since: Millis,
    ) -> DbResult<Vec<JobEvent>> {
        // Every change is announced; nothing to look for.
        Ok(Vec::new())
    }
}

pub(super) struct Listener {
    task: JoinHandle<()>,
}

impl Listener {
    /// Subscribes before returning, so that changes committed after the
    /// first subscriber arrived are announced; a failure here is retried in
    /// the background like any later one.
    async fn start(options: PgConnectOptions, bus: EventBus) -> Self {
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
            task: tokio::spawn(run(pool, first, bus)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
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
