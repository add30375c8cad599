//! `POST /v1/jobs/batch`, a genq addition: up to 1,000 jobs in one call,
//! all or none (docs/jobs-v1.md#batches).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use genq_engine::{EngineError, Job};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::V1Error;
use super::wire::SubmitRequest;
use super::Gateway;
use crate::dialect::Ctx;
use crate::shared::auth::Submit;
use crate::shared::extract::Json;
use crate::shared::idempotency::{submit_and_answer, KeyInFlight};
use crate::shared::request_id;

/// The most jobs one batch may hold.
pub const MAX_BATCH_JOBS: usize = 1_000;

#[derive(Deserialize, ToSchema)]
pub struct BatchRequest {
    /// Each as the body of `POST /v1/jobs/submit`: `model`, `input`,
    /// `version`, `webhookUrl`, `priority`, `timeoutSeconds`.
    #[schema(value_type = Vec<SubmitRequest>, min_items = 1, max_items = 1000)]
    pub jobs: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchSubmitted {
    pub request_id: String,
    /// In the order of the request's `jobs`.
    pub jobs: Vec<BatchJob>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchJob {
    pub job_id: String,
    #[schema(example = "pending")]
    pub status: &'static str,
    pub cost_micro_cents: i64,
}

/// Submit up to 1,000 jobs at once, all or none.
#[utoipa::path(post, path = "/v1/jobs/batch", request_body = BatchRequest,
    responses((status = 200, body = BatchSubmitted),
        (status = 400, description = "INVALID_INPUT: the body is not JSON (or not sent as `Content-Type: application/json`), an item is invalid (the message names `jobs[i]` and the field), or the batch is empty or over 1,000 jobs; nothing was submitted"),
        (status = 402, description = "INSUFFICIENT_BALANCE: the balance does not cover every job; nothing was submitted"),
        (status = 403, description = "MODEL_ACCESS_DENIED: an item names a model this key may not use"),
        (status = 409, description = "IDEMPOTENCY_KEY_IN_USE"),
        (status = 413, description = "The body is over 16 MB"),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED"),
        (status = 429, description = "CONCURRENT_JOBS_EXCEEDED: the batch would pass the account's concurrent-job limit; nothing was submitted")),
    params(("Idempotency-Key" = Option<String>, Header, description = "docs/idempotency.md")),
    security(("bearer" = [])))]
pub(super) async fn submit_batch(
    State(ctx): State<Ctx<Gateway>>,
    auth: super::Authed<Submit>,
    key: Option<KeyInFlight>,
    Json(request, _): Json<BatchRequest, V1Error>,
) -> Result<Response, V1Error> {
    let count = request.jobs.len();
    if count == 0 || count > MAX_BATCH_JOBS {
        return Err(V1Error::invalid_input(format!(
            "jobs: a batch holds 1 to {MAX_BATCH_JOBS} jobs, not {count}."
        )));
    }
    // Every item checked before anything is submitted.
    let mut news = Vec::with_capacity(count);
    for (i, item) in request.jobs.into_iter().enumerate() {
        let item: SubmitRequest = serde_json::from_value(item)
            .map_err(|e| V1Error::invalid_input(format!("jobs[{i}]: {e}")))?;
        let (new, _) = ctx
            .own
            .prepare(&auth.principal, item)
            .map_err(|e| e.in_batch_item(i))?;
        news.push(new);
    }
    let request_id = request_id::current();
    let answer = move |jobs: &[Job]| BatchSubmitted {
        request_id,
        jobs: jobs
            .iter()
            .map(|job| BatchJob {
                job_id: job.id.to_string(),
                status: "pending",
                cost_micro_cents: job.cost_micro_cents,
            })
            .collect(),
    };
    let (_, response) =
        submit_and_answer(&ctx.app, &auth.principal, news, key, StatusCode::OK, answer)
            .await
            .map_err(|e| match e {
                EngineError::InvalidInput { index, .. } => V1Error::from(e).in_batch_item(index),
                e => e.into(),
            })?;
    Ok(response)
}
