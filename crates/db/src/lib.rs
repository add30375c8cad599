//! The backends of the engine's [`genq_engine::Database`]: SQLite (the
//! embedded default) and PostgreSQL (for several processes). Each
//! implements the database's traits in a file per concern; what both say
//! the same way — row decoders, the statements whose text is the same,
//! policy constants — is written once (`codec.rs`, `sql.rs`, `policy.rs`).

mod codec;
mod policy;
mod postgres;
mod queue_depth;
mod retention;
mod shared;
mod sql;
mod sqlite;

use std::sync::Arc;

use genq_engine::{Database, DbError};

pub use postgres::PostgresDb;
pub use sqlite::SqliteDb;

/// Opens (creating and migrating if needed) the database a URL names.
pub async fn open(database_url: &str) -> Result<Arc<dyn Database>, DbError> {
    if database_url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteDb::connect(database_url).await?));
    }
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresDb::connect(database_url).await?));
    }
    Err(DbError::other(format!(
        "unsupported database URL {database_url:?}: expected sqlite://PATH or postgres://…"
    )))
}
