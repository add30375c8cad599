//! Liveness (`GET /health`: the process answers) and readiness (`GET
//! /ready`: it can do its work: the database answers, the storage accepts a
//! write, and — on a node that runs workers — ffmpeg is there).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::AppState;

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/health",
    responses((status = 200, body = Object, description = "{\"status\": \"ok\"}")),
)]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Whether `program` is an executable file on `PATH`.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Whether this node can do its work.
#[utoipa::path(
    get, path = "/ready",
    responses(
        (status = 200, body = Object, description = "{\"status\": \"ready\", \"checks\": {\"database\": \"ok\", \"storage\": \"ok\", \"ffmpeg\": \"ok\"}} (ffmpeg on nodes that run workers)"),
        (status = 503, body = Object, description = "{\"status\": \"not ready\", \"checks\": {…}}: each failed check's reason in place of \"ok\""),
        (status = 429, body = crate::shared::events::EventsErrorBody),
    ),
)]
pub async fn ready(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut checks = app.engine.readiness().await;
    if app.runs_workers {
        let ffmpeg = if on_path("ffmpeg") && on_path("ffprobe") {
            Ok(())
        } else {
            Err("ffmpeg or ffprobe is not on PATH".to_owned())
        };
        checks.push(("ffmpeg", ffmpeg));
    }
    let ready = checks.iter().all(|(_, result)| result.is_ok());
    let checks: Map<String, Value> = checks
        .into_iter()
        .map(|(name, result)| {
            let value = match result {
                Ok(()) => json!("ok"),
                Err(why) => json!(why),
            };
            (name.to_owned(), value)
        })
        .collect();
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    if !ready {
        tracing::warn!(checks = ?checks, "not ready");
    }
    (status, Json(json!({ "status": word, "checks": checks })))
}
