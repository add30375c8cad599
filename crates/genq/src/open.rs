//! Opens the engine over the configured store and file storage.

use anyhow::Context;
use genq_engine::Engine;

use crate::config::DataSettings;

pub async fn engine(data: &DataSettings) -> anyhow::Result<Engine> {
    std::fs::create_dir_all(&data.data_dir)
        .with_context(|| format!("creating the data directory {}", data.data_dir.display()))?;
    let store = genq_store::open(&data.database_url)
        .await
        .with_context(|| format!("opening the database {}", data.database_url))?;
    let storage = genq_storage::open(data.storage_url.as_deref(), &data.s3, &data.data_dir)
        .context("opening file storage")?;
    Engine::new(store, storage, data.data_dir.join("tmp/uploads"))
        .context("creating the staging directory")
}
