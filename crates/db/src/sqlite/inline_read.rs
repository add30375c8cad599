//! Point reads on the request path, run on the calling thread.
//!
//! sqlx's SQLite driver gives every connection a thread of its own and hands
//! each statement and each row over a channel. For the reads every request
//! makes — the API key, one job — those hand-offs cost far more than the
//! lookup: profiling status reads at 64 connections put about two thirds of
//! the server's CPU in thread wake-ups. These reads are index lookups of a
//! few microseconds, so they run inline, through rusqlite, on a small pool of
//! read-only connections. In WAL mode a reader never waits for the writer.

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use genq_engine::db::DbResult;
use genq_engine::idempotency::KeptAnswer;
use genq_engine::{AccountId, DbError, Job, JobId, Principal};

use crate::codec::{job_from_row, principal_from_row, JOB_COLUMNS, PRINCIPAL_BY_KEY_HASH};
use crate::queue_depth::EXACT_AHEAD;

/// Connections kept open between requests; more are opened under load and
/// closed again.
const MAX_IDLE: usize = 8;

pub(super) struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn read_err(what: &'static str) -> impl Fn(rusqlite::Error) -> DbError {
    move |e| DbError::new(what, e)
}

impl InlineReader {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn with<T>(
        &self,
        what: &'static str,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> DbResult<T> {
        let pooled = self.idle.lock().expect("not poisoned").pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(read_err("opening the SQLite database for reading"))?;
                connection
                    .busy_timeout(Duration::from_secs(5))
                    .map_err(read_err("opening the SQLite database for reading"))?;
                connection
            }
        };
        let result = read(&connection).map_err(read_err(what));
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
        result
    }

    pub(super) fn principal(&self, key_hash: &[u8]) -> DbResult<Option<Principal>> {
        self.with("looking up an API key", |c| {
            c.prepare_cached(PRINCIPAL_BY_KEY_HASH)?
                .query_row([key_hash], |row| Ok(principal_from_row(row)))
                .optional()
        })?
        .transpose()
    }

    pub(super) fn job(&self, account: AccountId, id: JobId) -> DbResult<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1 AND account_id = ?2");
        self.with("reading a job", |c| {
            c.prepare_cached(&sql)?
                .query_row([id.to_string(), account.to_string()], |row| {
                    Ok(job_from_row(row))
                })
                .optional()
        })?
        .transpose()
    }

    /// PENDING jobs ahead of this one in claim order, counted up to
    /// `EXACT_AHEAD`.
    pub(super) fn jobs_ahead(&self, id: JobId) -> DbResult<i64> {
        self.with("counting queued jobs", |c| {
            c.prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM jobs j JOIN jobs me ON me.id = ?1 \
                 WHERE j.state = 'PENDING' AND (j.queue_round, j.id) < (me.queue_round, me.id) \
                 LIMIT ?2)",
            )?
            .query_row(rusqlite::params![id.to_string(), EXACT_AHEAD], |row| {
                row.get(0)
            })
        })
    }

    /// The answer kept as row `id`, if that row is still this account's key
    /// and has not expired.
    pub(super) fn kept_key(
        &self,
        id: i64,
        account: AccountId,
        key: &str,
        now: i64,
    ) -> DbResult<Option<KeptAnswer>> {
        self.with("reading an idempotency key", |c| {
            c.prepare_cached(
                "SELECT fingerprint, status, body FROM idempotency_keys \
                 WHERE id = ?1 AND account_id = ?2 AND key = ?3 AND expires_at > ?4",
            )?
            .query_row(
                rusqlite::params![id, account.to_string(), key, now],
                |row| {
                    Ok(KeptAnswer {
                        fingerprint: row.get(0)?,
                        status: row.get::<_, i64>(1)? as u16,
                        body: row.get(2)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Every unexpired kept key: (row id, account, key, expiry).
    pub(super) fn kept_keys(&self, now: i64) -> DbResult<Vec<(i64, String, String, i64)>> {
        self.with("reading the idempotency keys", |c| {
            c.prepare(
                "SELECT id, account_id, key, expires_at FROM idempotency_keys \
                 WHERE expires_at > ?1 ORDER BY id",
            )?
            .query_map([now], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect()
        })
    }

    pub(super) fn model_run_ms(&self, model: &str) -> DbResult<Option<f64>> {
        self.with("reading model statistics", |c| {
            c.prepare_cached("SELECT avg_run_ms FROM model_stats WHERE model = ?1")?
                .query_row([model], |row| row.get(0))
                .optional()
        })
    }
}
