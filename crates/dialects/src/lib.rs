//! genq's HTTP surface. Each API dialect is a thin adapter: it parses its own
//! wire shape, calls the [`genq_engine::Engine`], and renders the answer in
//! its own shape. What every dialect needs (API keys, uploads, output
//! downloads, share pages) lives in [`shared`].

pub mod shared;
pub mod v1;
pub mod video;

use axum::routing::get;
use axum::{Json, Router};
use genq_engine::catalog::Catalog;
use genq_engine::webhook::WebhookPayload;
use genq_engine::Engine;
use shared::rate_limit::{rate_limit, RateLimitConfig, RateLimits};
use std::collections::HashMap;
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Absolute base for links handed to clients (no trailing slash).
    pub public_url: Arc<str>,
    /// Largest accepted upload, per file.
    pub max_upload_bytes: u64,
    pub gateway: Arc<GatewaySettings>,
}

/// What the model gateway (Jobs v1) needs beyond the engine.
pub struct GatewaySettings {
    pub catalog: Arc<Catalog>,
    /// PENDING + PROCESSING jobs per account, unless the account sets its own.
    pub max_concurrent_jobs: u32,
    /// Workers serving the queue, for completion estimates.
    pub worker_slots: usize,
}

impl AppState {
    pub fn new(
        engine: Engine,
        public_url: &str,
        max_upload_bytes: u64,
        gateway: GatewaySettings,
    ) -> Self {
        Self {
            engine,
            public_url: public_url.trim_end_matches('/').into(),
            max_upload_bytes,
            gateway: Arc::new(gateway),
        }
    }
}

/// Each dialect's webhook body, by the dialect name jobs carry.
pub fn webhook_payloads(public_url: &str) -> HashMap<String, Arc<dyn WebhookPayload>> {
    let public_url: Arc<str> = public_url.trim_end_matches('/').into();
    let mut payloads: HashMap<String, Arc<dyn WebhookPayload>> = HashMap::new();
    payloads.insert(
        video::DIALECT.into(),
        Arc::new(video::StatusWebhook {
            public_url: public_url.clone(),
        }),
    );
    payloads.insert(v1::DIALECT.into(), Arc::new(v1::JobWebhook { public_url }));
    payloads
}

/// The whole HTTP application: every dialect plus the shared routes, with
/// per-client rate limits on the API paths. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so limits see the
/// client's address.
pub fn router(state: AppState, rate_limits: RateLimitConfig) -> Router {
    Router::new()
        .route("/health", get(health))
        .merge(video::routes(&state))
        .merge(v1::routes())
        .merge(shared::media::routes())
        .route("/openapi.json", get(openapi))
        .with_state(state)
        // Outside the routes, since it decides by path.
        .layer(axum::middleware::from_fn_with_state(
            RateLimits::new(rate_limits),
            rate_limit,
        ))
        // Outside the rate limit, so that its refusals carry a request id too.
        .layer(axum::middleware::from_fn(shared::request_id::assign))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// A 429 in the error shape of the dialect that owns `path`.
pub(crate) fn rate_limited_response(path: &str, retry_after_secs: u64) -> axum::response::Response {
    use axum::response::IntoResponse;
    if path == "/v1" || path.starts_with("/v1/") {
        v1::V1Error::rate_limited(retry_after_secs).into_response()
    } else {
        video::ApiError::rate_limited(retry_after_secs).into_response()
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    let mut doc = video::openapi();
    doc.merge(v1::openapi());
    Json(doc)
}
