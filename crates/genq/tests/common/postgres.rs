//! Throwaway PostgreSQL databases for the end-to-end tests, made and queried
//! with `psql` on the server `GENQ_TEST_POSTGRES_URL` names (default: the
//! local one, trust auth). `GENQ_TEST_POSTGRES_URL=off` turns them off.
//!
//! Named `genq_test_<unix seconds>_<uuid>` like the store suite's, and
//! dropped on Drop; the first create of a process also drops those more than
//! an hour old that an aborted run left behind.

use std::net::TcpListener;
use std::path::PathBuf;
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

/// A PostgreSQL cluster of a test's own (stopped mid-test, which the
/// shared server must never be), run as the `postgres` user. `None` without
/// PostgreSQL's binaries or when not root (`runuser postgres` needs root).
pub struct OwnCluster {
    dir: PathBuf,
    pub port: u16,
}

impl OwnCluster {
    fn bin(name: &str) -> Option<PathBuf> {
        let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
        versions
            .filter_map(|v| v.ok())
            .map(|v| v.path().join("bin").join(name))
            .find(|p| p.exists())
    }

    fn as_postgres(args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .output()
            .expect("runuser")
    }

    pub fn create() -> Option<OwnCluster> {
        let initdb = Self::bin("initdb")?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("genq-own-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success());
        let data = dir.join("data");
        let out = Self::as_postgres(&[
            initdb.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = OwnCluster { dir, port };
        cluster.start();
        Some(cluster)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = Self::bin("pg_ctl").unwrap();
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let mut all = vec![
            pg_ctl.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = Self::as_postgres(&all);
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(&["-w", "-o", &options, "start"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let pg_ctl = Self::bin("pg_ctl").unwrap();
        let data = self.dir.join("data");
        let _ = Self::as_postgres(&[
            pg_ctl.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "stop",
        ]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
