//! Which store the end-to-end tests run on: SQLite (the default: genq's own
//! `DATA_DIR/genq.db`) or, with `GENQ_TEST_BACKEND=postgres`, PostgreSQL.
//!
//! On PostgreSQL every data directory a test uses gets its own throwaway
//! database, created on first use and handed to every `genq` process started
//! on that directory through `GENQ_DATABASE_URL`. A database is dropped once
//! its data directory's temporary parent is gone (the test ended), or when
//! the test process exits; the ones a killed run leaves are swept an hour
//! later (see `postgres.rs`).

use super::postgres::{psql, Database};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, Once};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend `GENQ_TEST_BACKEND` selects (`sqlite`, the default, or `postgres`).
pub fn backend() -> Backend {
    match std::env::var("GENQ_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") | Ok("postgresql") => Backend::Postgres,
        Ok(other) => panic!("GENQ_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}

/// The databases of this process, by data directory.
static DATABASES: Mutex<Vec<(PathBuf, Database)>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

fn databases() -> MutexGuard<'static, Vec<(PathBuf, Database)>> {
    DATABASES.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" fn drop_all_databases() {
    let all = std::mem::take(&mut *databases());
    drop(all);
}

/// A data directory whose test has ended: it and its parent (the test's
/// temporary directory) are gone.
fn abandoned(data_dir: &Path) -> bool {
    !data_dir.exists() && data_dir.parent().is_none_or(|p| !p.exists())
}

/// The database URL the `genq` processes on `data_dir` must use, or None
/// for genq's default (SQLite in the data directory).
pub fn database_url(data_dir: &Path) -> Option<String> {
    if backend() == Backend::Sqlite {
        return None;
    }
    let mut all = databases();
    if let Some((_, db)) = all.iter().find(|(dir, _)| dir == data_dir) {
        return Some(db.url.clone());
    }
    // Drop the databases of tests that have ended before making another.
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *all)
        .into_iter()
        .partition(|(dir, _)| abandoned(dir));
    *all = kept;
    drop(gone);
    let db = Database::create().expect(
        "GENQ_TEST_BACKEND=postgres needs a PostgreSQL server, \
         but GENQ_TEST_POSTGRES_URL=off",
    );
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(drop_all_databases);
    });
    let url = db.url.clone();
    all.push((data_dir.to_owned(), db));
    Some(url)
}

/// Points `command` at the database of `data_dir` (no-op on SQLite). A
/// `--database-url` flag given to the command still wins over this.
pub fn use_database(command: &mut Command, data_dir: &Path) {
    if let Some(url) = database_url(data_dir) {
        command.env("GENQ_DATABASE_URL", url);
    }
}

/// The data directory named by `--data-dir` in a genq command line.
pub fn data_dir_arg<'a>(args: &[&'a str]) -> Option<&'a Path> {
    let at = args.iter().position(|a| *a == "--data-dir")?;
    args.get(at + 1).map(|a| Path::new(*a))
}

/// Runs one SQL statement against the store of `data_dir`, whichever the
/// backend, and returns its output (values separated by `|`), trimmed.
/// Write SQL both dialects accept.
pub fn db_query(data_dir: &Path, sql: &str) -> String {
    match database_url(data_dir) {
        Some(url) => psql(&url, sql),
        None => {
            let out = Command::new("sqlite3")
                .arg(data_dir.join("genq.db"))
                .arg(sql)
                .output()
                .expect("sqlite3 is installed");
            assert!(
                out.status.success(),
                "sqlite3 {sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        }
    }
}
