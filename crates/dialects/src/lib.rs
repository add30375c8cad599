//! genq's HTTP surface. Each API dialect is a thin adapter in a folder of
//! its own: it parses its wire shape, calls the [`genq_engine::Engine`],
//! and renders the answer in its own shape ([`Dialect`]). What every
//! dialect uses — API keys and scopes, rate limits, uploads, typed query and
//! body extractors, output downloads, request ids, live job events — lives
//! in [`shared`] and knows no dialect by name or path.

pub mod dialect;
pub mod gateway;
pub mod provider;
pub mod shared;
pub mod video_api;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use genq_catalog::Catalog;
use genq_engine::webhook::WebhookPayload;
use genq_engine::{Engine, Job};

use dialect::{mount, Registered};
pub use dialect::{Ctx, Dialect, JobShape, Routes};
use shared::rate_limit::{rate_limit, RateLimitConfig, RateLimits, RouteKind};
use shared::Refusal;

/// Every dialect genq speaks. Adding one is its folder and a line here.
fn dialects() -> Vec<Box<dyn Registered>> {
    vec![
        mount::<video_api::VideoApi>(),
        mount::<gateway::Gateway>(),
        mount::<provider::Provider>(),
    ]
}

/// What the dialects take from the server's settings.
pub struct DialectSettings {
    /// Absolute base for links handed to clients.
    pub public_url: String,
    /// Largest accepted upload, per file.
    pub max_upload_bytes: u64,
    /// The models jobs can run.
    pub catalog: Arc<Catalog>,
    /// PENDING + PROCESSING jobs of a model per account, unless the account
    /// sets its own.
    pub max_concurrent_jobs: u32,
    /// Workers serving the queue, for completion estimates.
    pub worker_slots: usize,
    /// The Provider dialect's own settings.
    pub provider: provider::ProviderSettings,
    /// Whether this process runs workers (`/ready` then also checks ffmpeg).
    pub runs_workers: bool,
    /// What one Image+Audio Video render costs, flat (0: free).
    pub video_price_micro_cents: i64,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Absolute base for links handed to clients (no trailing slash).
    pub public_url: Arc<str>,
    /// Largest accepted upload, per file.
    pub max_upload_bytes: u64,
    /// How each dialect shows a job, by the name its jobs carry.
    pub shapes: Arc<HashMap<&'static str, Arc<dyn JobShape>>>,
    /// Whether this process runs workers.
    pub runs_workers: bool,
}

impl AppState {
    fn new(engine: Engine, settings: &DialectSettings) -> Self {
        let public_url: Arc<str> = settings.public_url.trim_end_matches('/').into();
        let shapes = dialects()
            .iter()
            .map(|d| (d.name(), d.shape(public_url.clone(), settings)))
            .collect();
        Self {
            engine,
            public_url,
            max_upload_bytes: settings.max_upload_bytes,
            shapes: Arc::new(shapes),
            runs_workers: settings.runs_workers,
        }
    }

    /// How `job`'s own dialect shows it.
    pub fn shape_of(&self, job: &Job) -> Option<&Arc<dyn JobShape>> {
        self.shapes.get(job.dialect.as_str())
    }
}

/// The whole HTTP application: every dialect, the account-wide event
/// stream, and the shared routes. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so limits see the
/// client's address.
pub fn router(engine: Engine, settings: &DialectSettings, rate_limits: RateLimitConfig) -> Router {
    router_with(engine, settings, rate_limits, |_| {
        (Router::new(), utoipa::openapi::OpenApi::default())
    })
}

/// [`router`] with more routes that need the same state (the web console),
/// under the same request ids and tracing, and their OpenAPI document,
/// merged into the one `/openapi.json` serves.
pub fn router_with(
    engine: Engine,
    settings: &DialectSettings,
    rate_limits: RateLimitConfig,
    more: impl FnOnce(AppState) -> (Router, utoipa::openapi::OpenApi),
) -> Router {
    let app = AppState::new(engine, settings);
    let (extra, extra_doc) = more(app.clone());
    let mut doc = openapi();
    doc.merge(extra_doc);
    shared::openapi::document_every_answer(&mut doc);
    let doc = Arc::new(shared::openapi::to_json(&doc));
    let limits = RateLimits::new(rate_limits);
    let mut router = Router::new();
    for dialect in dialects() {
        router = router.merge(dialect.router(&app, settings, &limits));
    }
    let shared = shared_routes(&limits, doc)
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
        .with_state(app);
    let fallback = no_route(&dialects());
    router
        .merge(shared)
        .merge(extra)
        .fallback(move |request: Request| {
            let fallback = fallback.clone();
            async move { fallback(request.uri().path()) }
        })
        // After routing, so that requests are counted by route template.
        .route_layer(axum::middleware::from_fn(shared::http_metrics::record))
        .layer(axum::middleware::map_response(shared::retry_after_on_503))
        // Outside the rate limits, so that their refusals carry a request id too.
        .layer(axum::middleware::from_fn(shared::request_id::assign))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The routes of no dialect: probes, the document, the account-wide event
/// stream and output downloads.
fn shared_routes(
    limits: &RateLimits,
    doc: Arc<serde_json::Value>,
) -> Vec<(&'static str, MethodRouter<AppState>)> {
    let limited = |handler: MethodRouter<AppState>| {
        handler.layer(from_fn_with_state(
            (limits.clone(), RouteKind::General),
            rate_limit::<shared::events::EventsError>,
        ))
    };
    vec![
        ("/health", get(shared::health::health)),
        // Each readiness probe writes to storage: limited like any route.
        ("/ready", limited(get(shared::health::ready))),
        (
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(serde_json::Value::clone(&doc)) }
            }),
        ),
        ("/events", limited(get(shared::events::account_events))),
        (shared::media::PATH, get(shared::media::download)),
    ]
}

/// Every path the dialects and the shared routes are mounted at, in axum's
/// syntax (`{job_id}`, `{*key}`): what the test holding the OpenAPI
/// document to the router walks. (The console's are
/// `genq_console::paths()`.)
pub fn mounted_paths(settings: &DialectSettings) -> Vec<String> {
    let limits = RateLimits::new(RateLimitConfig::default());
    let shared = shared_routes(&limits, Arc::new(serde_json::Value::Null));
    dialects()
        .iter()
        .flat_map(|d| d.paths(settings))
        .chain(shared.into_iter().map(|(path, _)| path.to_owned()))
        .collect()
}

/// `GET /openapi.json` as the document describes it (the route itself is
/// a closure over the document, in `shared_routes`).
#[utoipa::path(
    get, path = "/openapi.json",
    responses((status = 200, body = Object, description = "This document: every route of every dialect, genq's own and the console's API")),
)]
#[allow(dead_code)]
async fn openapi_document() {}

/// How a dialect renders a refusal.
type Refuse = fn(Refusal) -> Response;

/// The answer to a path no route matches: refused in the shape of the
/// dialect owning its longest matching prefix, or in genq's own shape.
fn no_route(dialects: &[Box<dyn Registered>]) -> Arc<dyn Fn(&str) -> Response + Send + Sync> {
    let mut owners: Vec<(&'static str, Refuse)> = dialects
        .iter()
        .flat_map(|d| d.prefixes().iter().map(|p| (*p, d.refuse())))
        .collect();
    owners.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    Arc::new(move |path: &str| {
        let owns = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        match owners.iter().find(|(prefix, _)| owns(prefix)) {
            Some((_, refuse)) => refuse(Refusal::NoRoute),
            None => shared::events::EventsError::from(Refusal::NoRoute).into_response(),
        }
    })
}

/// Each dialect's webhook body, by the dialect name jobs carry: the body of
/// its status endpoint.
pub fn webhook_payloads(settings: &DialectSettings) -> HashMap<String, Arc<dyn WebhookPayload>> {
    let public_url: Arc<str> = settings.public_url.trim_end_matches('/').into();
    dialects()
        .iter()
        .map(|d| {
            let payload: Arc<dyn WebhookPayload> =
                Arc::new(ShapeWebhook(d.shape(public_url.clone(), settings)));
            (d.name().to_owned(), payload)
        })
        .collect()
}

struct ShapeWebhook(Arc<dyn JobShape>);

impl WebhookPayload for ShapeWebhook {
    fn body(&self, job: &Job) -> serde_json::Value {
        self.0.body(job)
    }
}

/// Every scope some dialect's routes check: what a key may hold.
pub fn known_scopes() -> Vec<&'static str> {
    let mut scopes: Vec<&'static str> = dialects()
        .iter()
        .flat_map(|d| d.scopes().iter().copied())
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

/// The OpenAPI document of every dialect and the shared routes (the
/// console's is merged in by `router_with`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = shared::events::openapi();
    for dialect in dialects() {
        doc.merge(dialect.openapi());
    }
    utoipa::Modify::modify(&shared::events::KeySchemes, &mut doc);
    shared::openapi::document_every_answer(&mut doc);
    doc
}
