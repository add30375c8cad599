//! Throwaway PostgreSQL databases, one per test, so tests run in parallel
//! without seeing each other's rows.
//!
//! Named `genq_test_<unix seconds>_<random>` and dropped when the test ends;
//! a run also drops those more than an hour old that an aborted run left.

use sqlx::{Connection, Executor, PgConnection};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PREFIX: &str = "genq_test_";
const STALE_AFTER: Duration = Duration::from_secs(3600);

pub use super::pg_url::{base_url, with_database};

pub struct Database {
    base: String,
    name: String,
    pub url: String,
}

static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

impl Database {
    pub async fn create(base: &str) -> Database {
        let mut admin = PgConnection::connect(base).await.unwrap_or_else(|e| {
            panic!("connecting to {base} (set GENQ_TEST_POSTGRES_URL, or =off): {e}")
        });
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        SWEPT.get_or_init(|| sweep(&mut admin, now)).await;
        let name = format!(
            "{PREFIX}{}_{}",
            now.as_secs(),
            uuid::Uuid::new_v4().simple()
        );
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.ok();
        Database {
            url: with_database(base, &name),
            base: base.to_owned(),
            name,
        }
    }
}

async fn sweep(admin: &mut PgConnection, now: Duration) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'genq\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap();
    for name in names {
        let created = name[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|t| now.as_secs().saturating_sub(t) > STALE_AFTER.as_secs()) {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs outside async; a thread with its own runtime can still
        // talk to the server. FORCE ends the store's pooled connections.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&base).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "could not drop test database {}; a later run will",
                self.name
            );
        }
    }
}
