//! genq's HTTP surface. Each API dialect is a thin adapter: it parses its own
//! wire shape, calls the [`genq_engine::Engine`], and renders the answer in
//! its own shape. What every dialect needs (API keys, uploads, output
//! downloads, share pages) lives in [`shared`].

pub mod shared;
pub mod video;

use axum::routing::get;
use axum::{Json, Router};
use genq_engine::Engine;
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Absolute base for links handed to clients (no trailing slash).
    pub public_url: Arc<str>,
    /// Largest accepted upload, per file.
    pub max_upload_bytes: u64,
}

impl AppState {
    pub fn new(engine: Engine, public_url: &str, max_upload_bytes: u64) -> Self {
        Self {
            engine,
            public_url: public_url.trim_end_matches('/').into(),
            max_upload_bytes,
        }
    }
}

/// The whole HTTP application: every dialect plus the shared routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .merge(video::routes(&state))
        .merge(shared::media::routes())
        .route("/openapi.json", get(openapi))
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(video::openapi())
}
