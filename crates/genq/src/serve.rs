//! `genq serve`: the HTTP API and, unless `--workers 0`, in-process workers.

use anyhow::Context;
use genq_catalog::Catalog;
use genq_cog::{CogBackend, CogClient};
use genq_dialects::provider::{DefaultModels, Prices, ProviderSettings};
use genq_dialects::DialectSettings;
use genq_engine::dispatcher::{WebhookConfig, WebhookDispatcher};
use genq_engine::worker::typed;
use genq_engine::{Engine, JobHandler, WorkerConfig, WorkerPool};
use genq_media::{
    ImageAudioVideo, SpeechSettings, TemplateRenderer, TextToSpeech, TitleCardVideo, Tool,
};
use genq_outbound::fetch::Fetcher;
use genq_outbound::OutboundPolicy;
use genq_template::Fonts;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::http::ConnectionLimits;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.render.credit_micro_cents > 0,
        "--credit-micro-cents must be at least 1"
    );
    anyhow::ensure!(
        settings.render.signed_url_seconds > 0,
        "--signed-url-seconds must be at least 1"
    );
    let prices = Prices::parse(&settings.render.provider_prices)
        .map_err(|e| anyhow::anyhow!("--provider-prices: {e}"))?;
    let fonts = Arc::new(Fonts::load(&fonts_dirs(&settings)));
    let engine = crate::open::engine(&settings).await?;
    engine.set_idempotency_retention(Duration::from_secs(settings.queue.idempotency_hours * 3600));
    // Stops with this function, however it returns.
    let _retention = tokio_util::task::AbortOnDropHandle::new(genq_engine::retention::start(
        engine.clone(),
        settings.storage.retention(worker_owner()),
    ));
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

    let catalog = catalog(&settings)?;
    engine.follow_other_processes();
    let listen = &settings.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let public_url = settings
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| derived_public_url(addr));

    let workers = settings.server.workers();
    let pool = if workers > 0 {
        Some(start_workers(&settings, &engine, catalog.clone(), workers).await?)
    } else {
        tracing::info!("workers disabled (--workers 0): jobs stay PENDING until a worker runs");
        None
    };

    let dialects = DialectSettings {
        public_url: public_url.clone(),
        max_upload_bytes: settings.limits.max_upload_bytes(),
        catalog,
        max_concurrent_jobs: settings.limits.max_concurrent_jobs,
        worker_slots: workers.max(1),
        runs_workers: workers > 0,
        video_price_micro_cents: settings.render.video_price_micro_cents,
        provider: ProviderSettings {
            credit_micro_cents: settings.render.credit_micro_cents,
            fonts,
            prices,
            signed_url_ttl_secs: settings.render.signed_url_seconds,
            models: DefaultModels {
                tts: settings.render.tts_model.clone(),
                talking_head: settings.render.talking_head_model.clone(),
                image: settings.render.image_model.clone(),
            },
            tts_max_chars: settings.render.tts_max_chars,
        },
    };

    let hooks = &settings.webhooks;
    let webhooks = WebhookDispatcher::start(
        engine.clone(),
        genq_dialects::webhook_payloads(&dialects),
        WebhookConfig {
            schedule: hooks.schedule()?,
            timeout: Duration::from_secs(hooks.webhook_timeout_seconds),
            policy: OutboundPolicy {
                allow_private: hooks.webhook_allow_private,
                ca_file: hooks.webhook_ca_file.clone(),
            },
            poll_interval: Duration::from_secs(1),
            concurrency: 16,
        },
    )
    .context("starting the webhook dispatcher")?;

    let engine_for_metrics = engine.clone();
    let console = genq_console::ConsoleSettings {
        session_ttl: Duration::from_secs(settings.server.console_session_hours * 3600),
        catalog: Arc::clone(&dialects.catalog),
    };
    let app = genq_dialects::router_with(engine, &dialects, settings.limits.rate_limits(), |app| {
        (genq_console::routes(app, console), genq_console::openapi())
    })
    // A body that stops arriving fails its extractor instead of holding
    // the connection (and a handler) for ever.
    .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
        settings.server.body_idle_timeout_seconds,
    )));
    let connections = ConnectionLimits {
        header_timeout: Duration::from_secs(settings.server.header_timeout_seconds),
        max_connections: settings.server.max_connections(),
        max_per_ip: settings.server.max_connections_per_ip,
        exempt: settings.limits.trusted_proxies.clone(),
        drain: settings.queue.shutdown_grace(),
    };
    tracing::info!(
        max_connections = connections.max_connections,
        max_per_ip = connections.max_per_ip,
        "connection limits"
    );
    let stop = CancellationToken::new();
    if let Some(listen) = &settings.server.metrics_listen {
        crate::metrics::serve(listen, engine_for_metrics, stop.clone()).await?;
    }
    tracing::info!(public_url = %public_url, "listening on http://{addr}");
    tokio::spawn(wait_for_signal(stop.clone()));
    crate::http::serve(listener, app, connections, stop).await;
    tracing::info!("no longer accepting requests");
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    webhooks.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The built-in models plus those of the catalog file.
pub fn catalog(settings: &Settings) -> anyhow::Result<Arc<Catalog>> {
    let file = settings
        .render
        .models
        .clone()
        .unwrap_or_else(|| settings.data.data_dir.join("models.toml"));
    let catalog = Catalog::load(genq_media::builtin_models(), &file)?;
    tracing::info!(models = catalog.models().count(), file = %file.display(), "model catalog loaded");
    Ok(Arc::new(catalog))
}

/// Starts `slots` workers in this process with every job handler.
pub async fn start_workers(
    settings: &Settings,
    engine: &Engine,
    catalog: Arc<Catalog>,
    slots: usize,
) -> anyhow::Result<WorkerPool> {
    check_tool("ffmpeg", "-version").await?;
    check_tool("ffprobe", "-version").await?;
    if check_tool("espeak-ng", "--version").await.is_err() {
        tracing::warn!("espeak-ng is not installed: text-to-speech jobs will fail until it is");
    }
    let render = genq_media::RenderSettings {
        max_long_side: settings.render.max_long_side,
        timeout: Duration::from_secs(settings.render.render_timeout_seconds),
        ..genq_media::RenderSettings::default()
    };
    let input_policy = OutboundPolicy {
        allow_private: settings.render.input_allow_private,
        ca_file: settings.render.input_ca_file.clone(),
    };
    let fetcher = Arc::new(
        Fetcher::new(
            &input_policy,
            settings.limits.max_input_bytes(),
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
    let cog_timeout = Duration::from_secs(settings.render.cog_timeout_seconds);
    let cog = CogClient::new(&cog_policy, (*fetcher).clone(), cog_timeout)
        .context("creating the Cog client")?;
    // One Cog backend runs both the gateway's model jobs and the model
    // steps of template jobs (a voice, a talking head, a picture).
    let cog = Arc::new(CogBackend::new(cog, catalog));
    let handlers: Vec<Arc<dyn JobHandler>> = vec![
        cog.clone(),
        typed(
            TemplateRenderer::new(
                render.clone(),
                fetcher.clone(),
                Arc::new(Fonts::load(&fonts_dirs(settings))),
            )
            .with_models(cog),
        ),
        typed(ImageAudioVideo::new(render.clone(), fetcher)),
        typed(TitleCardVideo::new(render)),
        typed(TextToSpeech::new(SpeechSettings::default())),
    ];
    let lease = settings.queue.lease();
    anyhow::ensure!(!lease.is_zero(), "lease_seconds must be at least 1");
    let config = WorkerConfig {
        slots,
        lease,
        poll_interval: Duration::from_secs(1).min(lease / 2),
        max_retries: settings.queue.max_retries,
        shutdown_grace: settings.queue.shutdown_grace(),
        scratch_dir: settings.data.data_dir.join("tmp/work"),
        owner: worker_owner(),
    };
    tracing::info!(workers = slots, "starting workers");
    Ok(WorkerPool::start(engine.clone(), handlers, config))
}

/// The brand font directories templates may use, besides the system's.
fn fonts_dirs(settings: &Settings) -> Vec<std::path::PathBuf> {
    settings.render.fonts_dir.iter().cloned().collect()
}

fn derived_public_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

pub(crate) fn worker_owner() -> String {
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
