//! Cross-process wake-ups: one `LISTEN` connection per store, turned into a
//! `Notify` that `wait_for_jobs` waits on.
//!
//! `notify_one` stores a permit when nobody is waiting, so a notification that
//! arrives while the caller is busy claiming is not lost: its next wait
//! returns at once. Spurious wake-ups are harmless (the caller claims, finds
//! nothing, waits again); missed ones are what the caller's poll covers.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(super) struct Listener {
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Subscribes before returning, so that jobs enqueued after the first
    /// `wait_for_jobs` call starts are announced; a failure here is retried
    /// in the background like any later one.
    pub(super) async fn start(options: PgConnectOptions, channel: &'static str) -> Self {
        // Its own connection: a listener holds it for good, and taking it
        // from the store's pool would shrink the pool by one.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options.application_name("genq-listener"));
        let first = match subscribe(&pool, channel).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "could not listen for new jobs; retrying");
                None
            }
        };
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(run(pool, channel, first, notify.clone()));
        Self { notify, task }
    }

    pub(super) async fn notified(&self) {
        self.notify.notified().await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn subscribe(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(channel).await?;
    Ok(listener)
}

async fn run(pool: PgPool, channel: &str, mut current: Option<PgListener>, notify: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut listener = match current.take() {
            Some(listener) => listener,
            None => {
                tokio::time::sleep(backoff).await;
                match subscribe(&pool, channel).await {
                    Ok(listener) => {
                        tracing::info!("listening for new jobs again");
                        // Jobs enqueued while nobody listened went unannounced.
                        notify.notify_one();
                        backoff = MIN_BACKOFF;
                        listener
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not listen for new jobs; retrying");
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => notify.notify_one(),
                // The connection dropped and was re-established: anything
                // sent in between was lost, so wake the caller to look.
                Ok(None) => notify.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the connection listening for new jobs");
                    break;
                }
            }
        }
    }
}
