//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit is on disk before the call returns.
//!
//! Writes go through a pool of one connection: SQLite admits one writer at a
//! time anyway, and funnelling them here avoids lock-upgrade deadlocks between
//! our own connections. Transactions that read before writing start with
//! `BEGIN IMMEDIATE` so other processes (the CLI) queue on the busy timeout
//! instead of failing.
//!
//! Each trait of the database is implemented in its own file: `accounts.rs`,
//! `jobs.rs`, `queue.rs`, `outbox.rs`, `feed.rs`. Submissions are group
//! committed (`group_commit.rs`); the point reads of the request path run
//! inline (`inline_read.rs`); kept idempotency keys are found through an
//! index in memory (`keys.rs`); the WAL is checkpointed on a thread of its
//! own (`checkpoint.rs`).

mod accounts;
mod checkpoint;
mod feed;
mod group_commit;
mod inline_read;
mod jobs;
mod keys;
mod outbox;
mod projects;
mod queue;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Connection as _;
use sqlx::SqlitePool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use genq_engine::db::DbResult;
use genq_engine::DbError;

use crate::codec::db_err;
use crate::queue_depth::QueueDepth;

pub struct SqliteDb {
    writer: SqlitePool,
    reader: SqlitePool,
    submissions: group_commit::GroupCommit,
    inline: Arc<inline_read::InlineReader>,
    queue_depth: QueueDepth,
    claims: keys::Claims,
    kept: Arc<keys::KeptIndex>,
    _checkpointer: checkpoint::Checkpointer,
}

impl SqliteDb {
    /// Connects to `sqlite://PATH`, creating the file and running migrations.
    pub async fn connect(url: &str) -> DbResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_err("invalid SQLite URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Statement journals (and the rare temporary table) stay in
            // memory instead of spilling to temporary files (see
            // `group_commit::open`).
            .pragma("temp_store", "memory")
            // Checkpoints are the checkpointer's, but for a WAL grown large.
            .pragma(
                "wal_autocheckpoint",
                checkpoint::WRITER_CHECKPOINT_PAGES.to_string(),
            )
            .busy_timeout(Duration::from_secs(30));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // SQLite rolls a transaction back by itself when a COMMIT fails
            // with SQLITE_FULL or SQLITE_IOERR; sqlx's ROLLBACK on drop then
            // fails, and its connection believes for ever that it is inside
            // a transaction ("begin_with at non-zero transaction depth"):
            // a full disk stopped every later write, even after space came
            // back. Such a connection is replaced. A healthy one pays
            // nothing: the depth is 0, or its queued ROLLBACK (the ping
            // waits behind it) brings it to 0.
            .before_acquire(|conn, _| {
                Box::pin(async move {
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(db_err("could not open the SQLite database"))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| DbError::new("could not migrate the SQLite database", e))?;
        let path = options.get_filename().to_owned();
        let inline = Arc::new(inline_read::InlineReader::new(path.clone()));
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(db_err("could not open the SQLite database"))?;
        let checkpointer = checkpoint::Checkpointer::start(path.clone())
            .map_err(|e| DbError::new("could not start the SQLite checkpointer", e))?;
        let kept = Arc::new(keys::KeptIndex::default());
        let submissions = group_commit::GroupCommit::start(path, writer.clone(), Arc::clone(&kept));
        Ok(Self {
            writer,
            reader,
            submissions,
            inline,
            queue_depth: QueueDepth::default(),
            claims: Default::default(),
            kept,
            _checkpointer: checkpointer,
        })
    }

    /// The pool of reads (`crate::shared`'s bodies use it).
    fn reads(&self) -> &SqlitePool {
        &self.reader
    }

    /// The pool of writes: one connection, SQLite's one writer.
    fn writes(&self) -> &SqlitePool {
        &self.writer
    }

    async fn begin(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.writer
            .begin()
            .await
            .map_err(db_err("starting a transaction"))
    }
}

crate::retention::retention_db!(SqliteDb);
