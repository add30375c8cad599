//! Throwaway PostgreSQL databases for the end-to-end tests, made and queried
//! with `psql` on the server `GENQ_TEST_POSTGRES_URL` names (default: the
//! local one, trust auth). `GENQ_TEST_POSTGRES_URL=off` turns them off.
//!
//! Named `genq_test_<unix seconds>_<uuid>` like the store suite's, and
//! dropped on Drop; the first create of a process also drops those more than
//! an hour old that an aborted run left behind.

use std::process::Command;
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX: &str = "genq_test_";
const STALE_AFTER_SECS: u64 = 3600;

#[path = "../../../db/tests/common/pg_url.rs"]
mod pg_url;
pub use pg_url::{base_url, with_database};

/// Runs one statement with `psql` against `url`, returning its unaligned
/// tuples-only output; panics (with psql's stderr) when it fails.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-tAc", sql, "-d", url])
        .output()
        .expect("psql is installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A throwaway database on the test server, dropped on Drop.
pub struct Database {
    pub name: String,
    pub url: String,
    base: String,
}

static SWEPT: Once = Once::new();

impl Database {
    /// None when PostgreSQL tests are off (`GENQ_TEST_POSTGRES_URL=off`).
    pub fn create() -> Option<Database> {
        let Some(base) = base_url() else {
            eprintln!("PostgreSQL tests are off (GENQ_TEST_POSTGRES_URL=off)");
            return None;
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        SWEPT.call_once(|| sweep(&base, now.as_secs()));
        let name = format!(
            "{PREFIX}{}_{}",
            now.as_secs(),
            uuid::Uuid::new_v4().simple()
        );
        psql(&base, &format!("CREATE DATABASE {name}"));
        Some(Database {
            url: with_database(&base, &name),
            name,
            base,
        })
    }

    /// Runs `sql` in this database; its output, trimmed.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// Drops the database now (also what Drop does); false if that failed.
    pub fn drop_now(&self) -> bool {
        Command::new("psql")
            .args(["-X", "-tAc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .args(["-d", &self.base])
            .output()
            .is_ok_and(|out| out.status.success())
    }
}

/// Drops `genq_test_*` databases older than an hour (aborted runs).
fn sweep(base: &str, now: u64) {
    let names = psql(
        base,
        "SELECT datname FROM pg_database WHERE datname LIKE 'genq\\_test\\_%'",
    );
    for name in names.lines() {
        let created = name[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > STALE_AFTER_SECS) {
            let _ = Command::new("psql")
                .args(["-X", "-tAc"])
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .args(["-d", base])
                .output();
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if !self.drop_now() {
            eprintln!(
                "could not drop test database {}; a later run will",
                self.name
            );
        }
    }
}
