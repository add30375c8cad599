//! Backends for the engine's [`genq_engine::Store`]. Each backend keeps all of
//! its SQL to itself.

mod codec;
mod postgres;
mod queue_depth;
mod sqlite;

use std::sync::Arc;

use genq_engine::{Store, StoreError};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Opens (creating and migrating if needed) the store a database URL names.
pub async fn open(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if database_url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::connect(database_url).await?));
    }
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(database_url).await?));
    }
    Err(StoreError::other(format!(
        "unsupported database URL {database_url:?}: expected sqlite://PATH or postgres://…"
    )))
}
