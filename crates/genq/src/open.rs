//! Opens the engine over the configured database and file storage.

use anyhow::Context;
use genq_engine::Engine;

use crate::config::{DataSettings, Settings};

/// The engine of `genq serve` and `genq worker`: the database and the files.
pub async fn engine(settings: &Settings) -> anyhow::Result<Engine> {
    let storage = &settings.storage;
    let files = genq_files::open(
        storage.storage_url.as_deref(),
        &storage.s3(),
        &settings.data.data_dir,
    )
    .context("opening file storage")?;
    let engine = open(&settings.data, files).await?;
    engine.set_input_checks(genq_media::submission_checks());
    Ok(engine)
}

/// The engine of the admin commands, which touch the database only.
pub async fn admin_engine(data: &DataSettings) -> anyhow::Result<Engine> {
    let files = genq_files::open(None, &Default::default(), &data.data_dir)
        .context("opening file storage")?;
    open(data, files).await
}

async fn open(
    data: &DataSettings,
    files: std::sync::Arc<dyn genq_engine::FileStore>,
) -> anyhow::Result<Engine> {
    std::fs::create_dir_all(&data.data_dir)
        .with_context(|| format!("creating the data directory {}", data.data_dir.display()))?;
    let url = data.database_url();
    let db = genq_db::open(&url)
        .await
        .with_context(|| format!("opening the database {url}"))?;
    Engine::new(db, files, data.data_dir.join("tmp/uploads"))
        .context("creating the staging directory")
}
