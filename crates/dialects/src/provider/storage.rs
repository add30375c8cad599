//! Outputs by storage key: `GET /storage/generate-signed-path` hands out an
//! expiring, tamper-proof URL of one of the caller's outputs, which
//! `GET /storage/files/{key}` serves (with Range) to whoever holds it.
//!
//! A key names an output, not a file: `<job_type>/<template_id>/outputs/
//! <job uuid>.<ext>` (`.thumbnail.jpg`, `.poster.jpg` for the previews); it
//! is looked up among its job's outputs, so nothing else is reachable. A
//! URL is signed with HMAC-SHA256 keyed by the job's own unguessable media
//! token: every API node can check it without a shared secret, and the
//! token itself never appears in the URL.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use genq_engine::time::now_ms;
use genq_engine::{Job, JobId, JobState, OutputRole};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::error::ProviderError;
use super::jobs::own_job;
use super::{Authed, Provider};
use crate::dialect::Ctx;
use crate::shared::auth::Read;
use crate::shared::extract::{PathId, Query as DialectQuery};
use crate::shared::media::serve_output;

/// Every storage key of a completed job, with the output it names.
pub fn storage_keys(job: &Job) -> Vec<(String, String)> {
    if job.state != JobState::Completed {
        return Vec::new();
    }
    let dialect = job.input.get("dialect");
    let field = |name: &str| {
        dialect
            .and_then(|d| d.get(name))
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_owned()
    };
    let base = format!(
        "{}/{}/outputs/{}",
        field("job_type"),
        field("template_id"),
        job.id
    );
    job.outputs
        .iter()
        .map(|output| {
            let ext = output.name.rsplit_once('.').map_or("bin", |(_, ext)| ext);
            let key = match output.role {
                OutputRole::Main => format!("{base}.{ext}"),
                OutputRole::Thumbnail => format!("{base}.thumbnail.{ext}"),
                OutputRole::Poster => format!("{base}.poster.{ext}"),
            };
            (key, output.name.clone())
        })
        .collect()
}

/// The key of a job's output of `role`, if it has one.
pub fn storage_key(job: &Job, role: OutputRole) -> Option<String> {
    let name = &job.output(role)?.name;
    storage_keys(job)
        .into_iter()
        .find(|(_, output)| output == name)
        .map(|(key, _)| key)
}

/// The job a key names (its last segment starts with the job's uuid).
fn job_of_key(key: &str) -> Option<JobId> {
    let file = key.rsplit('/').next()?;
    file.split('.').next()?.parse().ok()
}

fn signature(media_token: &str, key: &str, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(media_token.as_bytes()).expect("any key length");
    mac.update(key.as_bytes());
    mac.update(b"\n");
    mac.update(expires.to_string().as_bytes());
    mac
}

#[derive(Deserialize)]
pub(super) struct SignRequest {
    #[serde(default)]
    path: Option<String>,
}

/// An expiring download URL of one of the caller's outputs.
#[utoipa::path(get, path = "/storage/generate-signed-path",
    params(("path" = String, Query, description = "An output's storage key, as `GET /jobs/{id}` gives it")),
    responses((status = 200, description = "{\"signedUrl\": \"…\"}", body = Object),
        (status = 400, description = "{\"error\": \"Path query parameter is required\"}"),
        (status = 404, description = "Not one of the caller's outputs")),
    security(("api_key" = [])))]
pub(super) async fn generate_signed_path(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Read>,
    DialectQuery(request, _): DialectQuery<SignRequest, ProviderError>,
) -> Result<axum::Json<serde_json::Value>, ProviderError> {
    let Some(key) = request.path.filter(|p| !p.is_empty()) else {
        return Err(ProviderError::body(
            StatusCode::BAD_REQUEST,
            json!({"error": "Path query parameter is required"}),
        ));
    };
    let not_found = || ProviderError::not_found("File not found");
    let id = job_of_key(&key).ok_or_else(not_found)?;
    let job = own_job(&ctx, &auth.principal, id)
        .await?
        .ok_or_else(not_found)?;
    if !storage_keys(&job).iter().any(|(k, _)| *k == key) {
        return Err(not_found());
    }
    let expires = now_ms() / 1000 + ctx.own.signed_url_ttl_secs;
    let signed = hex::encode(
        signature(&job.media_token, &key, expires)
            .finalize()
            .into_bytes(),
    );
    let url = format!(
        "{}/storage/files/{key}?expires={expires}&signature={signed}",
        ctx.app.public_url
    );
    Ok(axum::Json(json!({ "signedUrl": url })))
}

#[derive(Deserialize)]
pub(super) struct SignedQuery {
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

/// A signed output: no key needed, the URL is the permission.
#[utoipa::path(get, path = "/storage/files/{key}",
    params(("key" = String, Path, description = "The output's storage key"),
        ("expires" = i64, Query, description = "Unix seconds, as signed"),
        ("signature" = String, Query, description = "As generate-signed-path gave it")),
    responses((status = 200, content_type = "*/*", description = "The file, as its own type"),
        (status = 206, content_type = "*/*", description = "The range asked for (`Content-Range`)"),
        (status = 304, description = "Not modified (If-None-Match, If-Modified-Since)"),
        (status = 400, body = super::wire::ProviderErrorBody, description = "A malformed query string"),
        (status = 403, body = super::wire::ProviderErrorBody, description = "The link was altered or has expired"),
        (status = 404, description = "No such output", content(
            (super::wire::ProviderErrorBody = "application/json"),
            (String = "text/plain"))),
        (status = 410, body = Object, description = "{\"error\": {\"code\": \"OUTPUT_EXPIRED\", \"message\"}}: deleted after the output retention period (--output-retention-days)"),
        (status = 416, description = "The range starts past the end (`Content-Range: bytes */SIZE`)")))]
pub(super) async fn signed_download(
    State(ctx): State<Ctx<Provider>>,
    PathId(key, _): PathId<String, ProviderError>,
    DialectQuery(query, _): DialectQuery<SignedQuery, ProviderError>,
    request: Request,
) -> Result<Response, ProviderError> {
    let forbidden = |why: &str| ProviderError::new(StatusCode::FORBIDDEN, why);
    let invalid = || forbidden("The link is invalid");
    let expires: i64 = query
        .expires
        .as_deref()
        .and_then(|e| e.parse().ok())
        .ok_or_else(invalid)?;
    let given = query
        .signature
        .as_deref()
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(invalid)?;
    let id = job_of_key(&key).ok_or_else(invalid)?;
    let job = ctx
        .app
        .engine
        .job_for_signed_link(id)
        .await?
        .ok_or_else(invalid)?;
    signature(&job.media_token, &key, expires)
        .verify_slice(&given)
        .map_err(|_| invalid())?;
    if now_ms() / 1000 > expires {
        return Err(forbidden("The link has expired"));
    }
    let name = storage_keys(&job)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, name)| name)
        .ok_or_else(|| ProviderError::not_found("File not found"))?;
    Ok(serve_output(&ctx.app, &job, &name, request).await)
}
