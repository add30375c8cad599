//! `genq worker`: a process that only runs workers, for deployments that
//! scale rendering apart from the API (`genq serve --workers 0`).

use clap::{ArgMatches, Args};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Jobs run at once by this process [default: number of cores]
    #[arg(long, env = "GENQ_WORKER_CONCURRENCY")]
    pub concurrency: Option<usize>,
    #[command(flatten)]
    pub settings: Settings,
}

pub async fn run(args: WorkerArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let settings: Settings = crate::config::load(matches)?;
    let slots = args
        .concurrency
        .unwrap_or_else(|| settings.server.workers())
        .max(1);
    let engine = crate::open::engine(&settings).await?;
    let catalog = crate::serve::catalog(&settings)?;
    let stop = CancellationToken::new();
    if let Some(listen) = &settings.server.metrics_listen {
        crate::metrics::serve(listen, engine.clone(), stop.clone()).await?;
    }
    let pool = crate::serve::start_workers(&settings, &engine, catalog, slots).await?;
    let retention = genq_engine::retention::start(
        engine.clone(),
        settings.storage.retention(crate::serve::worker_owner()),
    );
    tokio::spawn(crate::serve::wait_for_signal(stop.clone()));
    stop.cancelled().await;
    pool.shutdown().await;
    retention.abort();
    tracing::info!("stopped");
    Ok(())
}
