//! The PostgreSQL server the `pg-queue` and `scaling` figures run on: a
//! reachability check and throwaway databases, made and dropped with `psql`
//! (the harness needs no driver of its own, and an operator can replay each
//! step by hand).

use anyhow::{bail, Context};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::process::Command;

/// How long `psql` may take to answer before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server, as `postgres://USER@HOST:PORT[?SETTINGS]` (no database: each
/// run makes its own).
#[derive(Clone, Debug)]
pub struct Server {
    base: String,
    settings: String,
}

impl Server {
    pub fn new(url: &str) -> Server {
        // Both queues must reach the server the same way. node-postgres
        // (graphile-worker) speaks plain TCP unless the URL asks for TLS;
        // sqlx, like libpq, tries TLS first ("prefer"). Without settings of
        // the caller's, both get plain TCP.
        let (base, settings) = url.split_once('?').unwrap_or((url, "sslmode=disable"));
        Server {
            base: base.trim_end_matches('/').to_owned(),
            settings: settings.to_owned(),
        }
    }

    fn url_of(&self, database: &str) -> String {
        format!("{}/{database}?{}", self.base, self.settings)
    }

    /// "PostgreSQL 15.20 · synchronous_commit=on · sslmode=disable", or why
    /// it cannot be used.
    /// Both sides of every comparison pay a WAL flush per commit when
    /// synchronous_commit is on, so it belongs beside the figures.
    pub async fn describe(&self) -> anyhow::Result<String> {
        let out = self
            .psql(
                "postgres",
                "SELECT split_part(current_setting('server_version'), ' ', 1) \
                 || ' · synchronous_commit=' || current_setting('synchronous_commit')",
            )
            .await?;
        Ok(format!("PostgreSQL {} · {}", out.trim(), self.settings))
    }

    /// A new empty database, dropped by [`Database::drop_now`].
    pub async fn create_database(&self, purpose: &str) -> anyhow::Result<Database> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // Named after this process, so two harnesses on one server never
        // collide and a leftover from a crashed run says where it came from.
        let name = format!("genq_bench_{}_{n}_{purpose}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .await?;
        Ok(Database {
            server: self.clone(),
            url: self.url_of(&name),
            name,
        })
    }

    async fn psql(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let run = Command::new("psql")
            .arg(self.url_of(database))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT.as_secs().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(CONNECT_TIMEOUT * 3, run)
            .await
            .context("psql did not answer")?
            .context("running psql (is the PostgreSQL client installed?)")?;
        if !out.status.success() {
            bail!(
                "psql {sql:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A throwaway database of one run.
pub struct Database {
    server: Server,
    name: String,
    pub url: String,
}

impl Database {
    /// Drops the database, closing whatever still holds it (a worker the
    /// run left behind must not keep it alive).
    pub async fn drop_now(self) -> anyhow::Result<()> {
        self.server
            .psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            )
            .await
            .map(drop)
    }
}
