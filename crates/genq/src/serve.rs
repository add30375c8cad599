//! `genq serve`: the HTTP API and, unless `--workers 0`, in-process workers.

use anyhow::Context;
use genq_cog::{CogBackend, CogClient};
use genq_dialects::{AppState, GatewaySettings};
use genq_engine::catalog::Catalog;
use genq_engine::webhook::{WebhookConfig, WebhookDispatcher};
use genq_engine::{Engine, JobHandler, WorkerConfig, WorkerPool};
use genq_media::{
    ImageAudioVideo, RenderSettings, SpeechSettings, TextToSpeech, TitleCardVideo, Tool,
};
use genq_outbound::fetch::Fetcher;
use genq_outbound::OutboundPolicy;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, ServeSettings};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = ServeSettings::load(args)?;
    let engine = crate::open::engine(&settings.data).await?;
    if engine.account_count().await? == 0 {
        tracing::info!(
            "no accounts yet. Create one (it prints an API key) with:\n    genq accounts create --name NAME --data-dir {}\n\
             then send the key in the X-API-Key header",
            settings.data.data_dir.display()
        );
    }

    match engine.sweep_staging(Duration::from_secs(3600)) {
        Ok(0) => {}
        Ok(n) => tracing::info!(files = n, "removed stale staged uploads"),
        Err(e) => tracing::warn!(error = %e, "could not sweep staged uploads"),
    }

    let catalog = Arc::new(Catalog::load(&settings.models_file)?);
    tracing::info!(models = catalog.models().count(), file = %settings.models_file.display(), "model catalog loaded");

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let public_url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| derived_public_url(addr));

    let pool = if settings.workers > 0 {
        Some(start_workers(&settings, &engine, catalog.clone(), settings.workers).await?)
    } else {
        tracing::info!("workers disabled (--workers 0): jobs stay PENDING until a worker runs");
        None
    };

    let webhooks = WebhookDispatcher::start(
        engine.clone(),
        genq_dialects::webhook_payloads(&public_url),
        WebhookConfig {
            schedule: settings.webhooks.schedule.clone(),
            timeout: settings.webhooks.timeout,
            policy: OutboundPolicy {
                allow_private: settings.webhooks.allow_private,
                ca_file: settings.webhooks.ca_file.clone(),
            },
            poll_interval: Duration::from_secs(1),
            concurrency: 16,
        },
    )
    .context("starting the webhook dispatcher")?;

    let gateway = GatewaySettings {
        catalog: catalog.clone(),
        max_concurrent_jobs: settings.max_concurrent_jobs,
        worker_slots: settings.workers.max(1),
    };
    let app = genq_dialects::router(
        AppState::new(engine, &public_url, settings.max_upload_bytes, gateway),
        settings.rate_limits.clone(),
    );
    tracing::info!(public_url = %public_url, "listening on http://{addr}");
    let stop = CancellationToken::new();
    tokio::spawn(wait_for_signal(stop.clone()));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await
    .context("serving HTTP")?;
    tracing::info!("no longer accepting requests");
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    webhooks.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Starts `slots` workers in this process with every job handler.
pub async fn start_workers(
    settings: &ServeSettings,
    engine: &Engine,
    catalog: Arc<Catalog>,
    slots: usize,
) -> anyhow::Result<WorkerPool> {
    check_tool("ffmpeg", "-version").await?;
    check_tool("ffprobe", "-version").await?;
    if check_tool("espeak-ng", "--version").await.is_err() {
        tracing::warn!("espeak-ng is not installed: text-to-speech jobs will fail until it is");
    }
    let render = RenderSettings {
        max_long_side: settings.max_long_side,
        timeout: settings.render_timeout,
        ..RenderSettings::default()
    };
    let input_policy = OutboundPolicy {
        allow_private: settings.input_allow_private,
        ca_file: None,
    };
    let fetcher = Arc::new(
        Fetcher::new(
            &input_policy,
            settings.max_input_bytes,
            Duration::from_secs(120),
        )
        .context("creating the input fetcher")?,
    );
    // Cog servers are named by the operator in the catalog and usually live
    // on private addresses; what they return is fetched under the input policy.
    let cog_policy = OutboundPolicy {
        allow_private: true,
        ca_file: None,
    };
    let cog = CogClient::new(&cog_policy, (*fetcher).clone(), settings.cog_timeout)
        .context("creating the Cog client")?;
    let handlers: Vec<Arc<dyn JobHandler>> = vec![
        Arc::new(CogBackend::new(cog, catalog)),
        Arc::new(ImageAudioVideo::new(render.clone(), fetcher)),
        Arc::new(TitleCardVideo::new(render)),
        Arc::new(TextToSpeech::new(SpeechSettings::default())),
    ];
    let config = WorkerConfig {
        slots,
        lease: settings.lease,
        poll_interval: Duration::from_secs(1).min(settings.lease / 2),
        max_retries: settings.max_retries,
        shutdown_grace: settings.shutdown_grace,
        scratch_dir: settings.data.data_dir.join("tmp/work"),
        owner: worker_owner(),
    };
    tracing::info!(workers = slots, "starting workers");
    Ok(WorkerPool::start(engine.clone(), handlers, config))
}

fn derived_public_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

fn worker_owner() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "genq".into());
    format!("{}:{}", host.trim(), std::process::id())
}

async fn check_tool(program: &str, version_flag: &str) -> anyhow::Result<()> {
    Tool::new(program)
        .arg(version_flag)
        .timeout(Duration::from_secs(10))
        .run_capture(&CancellationToken::new())
        .await
        .map(|_| ())
        .with_context(|| format!("{program} is needed to render; install it (e.g. apt-get install ffmpeg) or run with --workers 0"))
}

pub async fn wait_for_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    stop.cancel();
}
