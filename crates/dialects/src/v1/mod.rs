//! The Jobs v1 model gateway (seeds 000–002): JSON in, a catalog model run by
//! the engine, priced in micro-cents. Auth by `Authorization: Bearer` (or
//! `X-API-Key`) with the `submit_job` / `check_status` scopes; errors as
//! `{"error": {"code", "message"}, "requestId"}`.

mod error;
pub mod wire;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use genq_engine::{JobId, JobQuery, JobState, NewJob, Principal, SubmitLimits};
use std::collections::HashMap;
use std::time::Duration;
use utoipa::OpenApi;

pub use error::V1Error;
use wire::{
    AccountView, JobList, JobListItem, JobView, ModelList, ModelView, SubmitRequest, Submitted,
};

use crate::shared::auth::authenticate;
use crate::shared::request_id;
use crate::AppState;

/// Names this dialect on the jobs it creates (it renders their webhooks).
pub const DIALECT: &str = "v1";

const SUBMIT_SCOPE: &str = "submit_job";
const STATUS_SCOPE: &str = "check_status";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs/submit", post(submit))
        .route("/v1/jobs", get(list))
        .route("/v1/jobs/{job_id}", get(status))
        .route("/v1/jobs/{job_id}/cancel", post(cancel))
        .route("/v1/models", get(models))
        .route("/v1/account", get(account))
}

#[derive(OpenApi)]
#[openapi(
    paths(submit, status, list, cancel, models, account),
    components(schemas(
        SubmitRequest,
        Submitted,
        JobView,
        JobList,
        JobListItem,
        ModelList,
        ModelView,
        AccountView
    ))
)]
struct V1Api;

pub fn openapi() -> utoipa::openapi::OpenApi {
    V1Api::openapi()
}

async fn principal(
    state: &AppState,
    headers: &HeaderMap,
    scope: Option<&str>,
) -> Result<Principal, V1Error> {
    let principal = authenticate(&state.engine, headers).await?;
    match scope {
        Some(scope) if !principal.has_scope(scope) => Err(V1Error::missing_scope(scope)),
        _ => Ok(principal),
    }
}

fn parse_job_id(raw: &str) -> Result<JobId, V1Error> {
    raw.parse().map_err(|_| V1Error::job_not_found())
}

/// Submit a job to a model.
#[utoipa::path(post, path = "/v1/jobs/submit", request_body = SubmitRequest,
    responses((status = 200, body = Submitted)), security(("bearer" = [])))]
async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<Json<Submitted>, V1Error> {
    let principal = principal(&state, &headers, Some(SUBMIT_SCOPE)).await?;
    let Json(request) = body.map_err(|e| V1Error::invalid_input(e.body_text()))?;
    let gateway = &state.gateway;
    let model = gateway.catalog.get(&request.model).ok_or_else(|| {
        V1Error::model_not_found(format!("Model {:?} does not exist.", request.model))
    })?;
    let version = model.version(request.version.as_deref()).ok_or_else(|| {
        V1Error::model_not_found(format!(
            "Model {:?} has no version {:?}.",
            request.model,
            request.version.as_deref().unwrap_or_default()
        ))
    })?;
    if !principal.may_use_model(&model.slug) {
        return Err(V1Error::new(
            axum::http::StatusCode::FORBIDDEN,
            "MODEL_ACCESS_DENIED",
            format!("Your API key does not have access to {:?}.", model.slug),
        ));
    }
    model
        .validate(&request.input)
        .map_err(V1Error::invalid_input)?;
    let webhook_url = request
        .webhook_url
        .map(|url| crate::shared::validate_webhook_url(&url))
        .transpose()
        .map_err(|e| V1Error::invalid_input(format!("webhookUrl: {e}")))?;
    let cost = model.price.cost(&request.input);
    let new = NewJob {
        kind: model.backend_for(version).job_kind().to_owned(),
        dialect: DIALECT.into(),
        input: request.input,
        files: vec![],
        webhook_url,
        model: Some((model.slug.clone(), version.id.clone())),
        cost_micro_cents: cost,
        limits: SubmitLimits {
            max_active_per_key: None,
            max_active_per_account: Some(gateway.max_concurrent_jobs),
        },
    };
    let job = state.engine.submit(&principal, new).await?;
    let eta = state
        .engine
        .estimate_completion(&job, model.typical_seconds, gateway.worker_slots)
        .await
        .unwrap_or(job.created_at + (model.typical_seconds * 1000.0) as i64);
    Ok(Json(Submitted {
        job_id: job.id.to_string(),
        request_id: request_id::current(),
        status: "pending",
        estimated_completion_time: genq_engine::time::iso8601_s(eta),
        cost_micro_cents: cost,
    }))
}

/// Get a job's status, progress and outputs.
#[utoipa::path(get, path = "/v1/jobs/{jobId}", params(("jobId" = String, Path)),
    responses((status = 200, body = JobView)), security(("bearer" = [])))]
async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Json<JobView>, V1Error> {
    let principal = principal(&state, &headers, Some(STATUS_SCOPE)).await?;
    let job = state.engine.job(&principal, parse_job_id(&job_id)?).await?;
    Ok(Json(JobView::from_job(&job, &state.public_url)))
}

fn encode_cursor(id: JobId) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

fn decode_cursor(cursor: &str) -> Option<JobId> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok()?.parse().ok()
}

/// List your jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs",
    params(
        ("limit" = Option<u32>, Query, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("status" = Option<String>, Query, description = "pending, processing, completed, failed or cancelled"),
        ("modelId" = Option<String>, Query, description = "a model slug"),
    ),
    responses((status = 200, body = JobList)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<JobList>, V1Error> {
    let principal = principal(&state, &headers, Some(STATUS_SCOPE)).await?;
    let limit = crate::shared::page_limit(params.get("limit")).map_err(V1Error::invalid_input)?;
    let state_filter = params
        .get("status")
        .map(|raw| {
            wire::parse_status(raw).ok_or_else(|| {
                V1Error::invalid_input(
                    "status must be one of pending, processing, completed, failed, cancelled",
                )
            })
        })
        .transpose()?;
    let before = params
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|raw| decode_cursor(raw).ok_or_else(|| V1Error::invalid_input("Invalid cursor")))
        .transpose()?;
    let query = JobQuery {
        before,
        state: state_filter,
        model: params.get("modelId").cloned(),
        limit,
    };
    let (jobs, has_more) = crate::shared::page_of_jobs(&state.engine, &principal, query).await?;
    Ok(Json(JobList {
        next_cursor: if has_more {
            jobs.last().map(|j| encode_cursor(j.id))
        } else {
            None
        },
        has_more,
        jobs: jobs.iter().map(JobListItem::from_job).collect(),
    }))
}

/// How long a cancel request waits for a running job to stop before it
/// answers with the job as it is.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Cancel a job: a pending one at once, a processing one by stopping its
/// renderer. Credits are refunded.
#[utoipa::path(post, path = "/v1/jobs/{jobId}/cancel", params(("jobId" = String, Path)),
    responses((status = 200, body = JobView)), security(("bearer" = [])))]
async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Json<JobView>, V1Error> {
    let principal = principal(&state, &headers, Some(SUBMIT_SCOPE)).await?;
    let id = parse_job_id(&job_id)?;
    let mut job = state.engine.cancel_even_if_running(&principal, id).await?;
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    while job.state == JobState::Processing && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        job = state.engine.job(&principal, id).await?;
    }
    Ok(Json(JobView::from_job(&job, &state.public_url)))
}

/// The model catalog: slugs, versions, input schemas, prices, output types.
#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = ModelList)), security(("bearer" = [])))]
async fn models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ModelList>, V1Error> {
    principal(&state, &headers, None).await?;
    Ok(Json(ModelList {
        models: state
            .gateway
            .catalog
            .models()
            .map(|m| ModelView::from(m.as_ref()))
            .collect(),
    }))
}

/// Your balance, concurrency limit and active jobs.
#[utoipa::path(get, path = "/v1/account", responses((status = 200, body = AccountView)), security(("bearer" = [])))]
async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AccountView>, V1Error> {
    let principal = principal(&state, &headers, None).await?;
    let account = state.engine.account(principal.account_id).await?;
    Ok(Json(AccountView {
        account_id: account.id.to_string(),
        name: account.name,
        balance_micro_cents: account.balance_micro_cents,
        concurrency_limit: account
            .max_concurrent_jobs
            .unwrap_or(state.gateway.max_concurrent_jobs),
        active_jobs: state.engine.active_jobs(principal.account_id).await?,
    }))
}

/// This dialect's webhook body: the `GET /v1/jobs/{jobId}` object.
pub struct JobWebhook {
    pub public_url: std::sync::Arc<str>,
}

impl genq_engine::webhook::WebhookPayload for JobWebhook {
    fn body(&self, job: &genq_engine::Job) -> serde_json::Value {
        serde_json::to_value(JobView::from_job(job, &self.public_url)).expect("job view serializes")
    }
}
