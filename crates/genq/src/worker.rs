//! `genq worker`: a process that only runs workers, for deployments that
//! scale rendering apart from the API (`genq serve --workers 0`).

use clap::Args;
use genq_engine::catalog::Catalog;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, ServeSettings};

#[derive(Args, Debug, Clone, Default)]
pub struct WorkerArgs {
    /// Jobs run at once by this process [default: number of cores]
    #[arg(long, env = "GENQ_WORKER_CONCURRENCY")]
    pub concurrency: Option<usize>,
    #[command(flatten)]
    pub settings: ServeArgs,
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let settings = ServeSettings::load(args.settings)?;
    let slots = args.concurrency.unwrap_or(settings.workers).max(1);
    let engine = crate::open::engine(&settings.data).await?;
    let catalog = Arc::new(Catalog::load(&settings.models_file)?);
    let pool = crate::serve::start_workers(&settings, &engine, catalog, slots).await?;
    let stop = CancellationToken::new();
    tokio::spawn(crate::serve::wait_for_signal(stop.clone()));
    stop.cancelled().await;
    pool.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
