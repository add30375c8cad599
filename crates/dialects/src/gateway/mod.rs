//! The Jobs v1 model gateway (seeds 000–002): JSON in, a catalog model run by
//! the engine, priced in micro-cents. Auth by `Authorization: Bearer` (or
//! `X-API-Key`) with the `submit_job` / `check_status` scopes; errors as
//! `{"error": {"code", "message"}, "requestId"}`.

mod batch;
mod error;
pub mod wire;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use genq_catalog::Catalog;
use genq_engine::{Job, JobId, JobQuery, JobState, ModelRef, NewJob, SubmitLimits};
use serde::Deserialize;
use utoipa::OpenApi;

pub use error::V1Error;
use wire::{
    AccountView, JobList, JobListItem, JobView, ModelList, ModelView, SubmitRequest, Submitted,
};

use crate::dialect::{Ctx, Dialect, JobShape, Routes};
use crate::shared::auth::{self, AnyScope, Read, Submit};
use crate::shared::cancel_and_wait;
use crate::shared::events::{job_events, EventStream};
use crate::shared::extract::values::{non_empty, PageLimit};
use crate::shared::extract::{JobPath, Json, Query};
use crate::shared::idempotency::{submit_and_answer, KeyInFlight};
use crate::shared::openapi::{document_shared_refusals, SharedRefusals};
use crate::shared::request_id;
use crate::shared::scheduling::Scheduling;
use crate::DialectSettings;

type Authed<S> = auth::Authed<V1Error, S>;

/// The Jobs v1 model gateway.
pub struct Gateway;

/// What the gateway needs beyond the engine.
pub struct GatewayState {
    catalog: Arc<Catalog>,
    /// PENDING + PROCESSING jobs per account, unless the account sets its own.
    max_concurrent_jobs: u32,
    /// Workers serving the queue, for completion estimates.
    worker_slots: usize,
}

impl Dialect for Gateway {
    const NAME: &'static str = "v1";
    const SCOPES: &'static [&'static str] = &[auth::SUBMIT_JOB, auth::CHECK_STATUS];
    const PREFIXES: &'static [&'static str] = &["/v1"];
    type Error = V1Error;
    type State = GatewayState;

    fn state(settings: &DialectSettings) -> GatewayState {
        GatewayState {
            catalog: settings.catalog.clone(),
            max_concurrent_jobs: settings.max_concurrent_jobs,
            worker_slots: settings.worker_slots,
        }
    }

    fn routes(routes: Routes<Self>, _: &DialectSettings) -> Routes<Self> {
        routes
            .submit("/v1/jobs/submit", post(submit))
            .submit("/v1/jobs/batch", post(batch::submit_batch))
            .route("/v1/jobs", get(list))
            .route("/v1/jobs/{job_id}", get(status))
            .route("/v1/jobs/{job_id}/events", get(status_events))
            .route("/v1/jobs/{job_id}/cancel", post(cancel))
            .route("/v1/models", get(models))
            .route("/v1/account", get(account))
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = GatewayDoc::openapi();
        document_shared_refusals(
            &mut doc,
            &SharedRefusals {
                unauthorized: "No or an unknown bearer key: {\"error\": {\"code\": \"UNAUTHORIZED\" or \"INVALID_API_KEY\", \"message\"}, \"requestId\"}",
                forbidden: "The key lacks the route's scope: {\"error\": {\"code\": \"INSUFFICIENT_SCOPE\", \"message\"}, \"requestId\"}",
                bad_request: "A malformed query or body: {\"error\": {\"code\": \"INVALID_INPUT\", \"message\" naming the field}, \"requestId\"}",
                not_found: "No such job of the caller's: {\"error\": {\"code\": \"JOB_NOT_FOUND\", \"message\"}, \"requestId\"}",
                rate_limited: "Rate limited: {\"error\": {\"code\": \"RATE_LIMITED\" or \"CONCURRENT_JOBS_EXCEEDED\", \"message\"}, \"requestId\"}",
                error_schema: "V1ErrorBody",
            },
        );
        doc
    }

    fn shape(public_url: Arc<str>, _: &DialectSettings) -> Arc<dyn JobShape> {
        Arc::new(GatewayShape { public_url })
    }
}

/// This dialect's view of a job: lowercase status names, and
/// `GET /v1/jobs/{jobId}`'s body.
struct GatewayShape {
    public_url: Arc<str>,
}

impl JobShape for GatewayShape {
    fn status(&self, state: JobState) -> &'static str {
        wire::status_name(state)
    }

    fn body(&self, job: &Job) -> serde_json::Value {
        serde_json::to_value(JobView::from_job(job, &self.public_url)).expect("job view serializes")
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        submit,
        batch::submit_batch,
        status,
        status_events,
        list,
        cancel,
        models,
        account
    ),
    components(schemas(
        SubmitRequest,
        Submitted,
        batch::BatchRequest,
        batch::BatchSubmitted,
        batch::BatchJob,
        JobView,
        JobList,
        JobListItem,
        ModelList,
        ModelView,
        AccountView,
        wire::V1ErrorBody,
        wire::V1ErrorDetail
    ))
)]
struct GatewayDoc;

impl GatewayState {
    /// A submission's job, every check done that needs no database: the
    /// model, version and access, the input against the model's schema,
    /// the webhook URL, priority and timeout, and the price.
    fn prepare<'c>(
        &'c self,
        principal: &genq_engine::Principal,
        request: SubmitRequest,
    ) -> Result<(NewJob, &'c genq_catalog::Model), V1Error> {
        let model = self.catalog.get(&request.model).ok_or_else(|| {
            V1Error::model_not_found(format!("Model {:?} does not exist.", request.model))
        })?;
        let version = model.version(request.version.as_deref()).ok_or_else(|| {
            V1Error::model_not_found(format!(
                "Model {:?} has no version {:?}.",
                request.model,
                request.version.as_deref().unwrap_or_default()
            ))
        })?;
        if !genq_catalog::may_use(principal, &model.slug) {
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
        let scheduling = Scheduling::check(
            request.priority,
            request.timeout_seconds,
            ["priority", "timeoutSeconds"],
        )
        .map_err(V1Error::invalid_input)?;
        let cost = model.price.cost(&request.input);
        let new = NewJob {
            kind: model.backend_for(version).job_kind().to_owned(),
            dialect: Gateway::NAME.into(),
            input: request.input,
            webhook_url,
            model: Some(ModelRef {
                slug: model.slug.clone(),
                version: version.id.clone(),
            }),
            cost_micro_cents: cost,
            limits: SubmitLimits {
                max_active_per_key: None,
                max_active_per_account: Some(self.max_concurrent_jobs),
            },
            priority: scheduling.priority,
            timeout_seconds: scheduling.timeout_seconds,
            ..NewJob::default()
        };
        Ok((new, model))
    }
}

/// One of the caller's jobs of this dialect; any other is not found.
async fn own_job(
    ctx: &Ctx<Gateway>,
    principal: &genq_engine::Principal,
    id: JobId,
) -> Result<Job, V1Error> {
    let job = ctx.app.engine.job(principal, id).await?;
    if job.dialect != Gateway::NAME {
        return Err(V1Error::job_not_found());
    }
    Ok(job)
}

/// Submit a job to a model.
#[utoipa::path(post, path = "/v1/jobs/submit", request_body = SubmitRequest,
    responses((status = 200, body = Submitted),
        (status = 402, description = "The account's balance does not cover the job"),
        (status = 404, description = "MODEL_NOT_FOUND: no such model, or not for this key"),
        (status = 409, description = "IDEMPOTENCY_KEY_IN_USE: a request with this Idempotency-Key is still being processed"),
        (status = 400, description = "INVALID_INPUT: the body is not JSON (or not sent as `Content-Type: application/json`), the input does not match the model's schema, or a field is invalid; the message names it"),
        (status = 413, description = "The body is over 16 MB"),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used with a different request")),
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters; a retry with the same key and request gets the first answer again (docs/idempotency.md)")),
    security(("bearer" = [])))]
async fn submit(
    State(ctx): State<Ctx<Gateway>>,
    auth: Authed<Submit>,
    key: Option<KeyInFlight>,
    Json(request, _): Json<SubmitRequest, V1Error>,
) -> Result<Response, V1Error> {
    let gateway = &ctx.own;
    let (new, model) = gateway.prepare(&auth.principal, request)?;
    let cost = new.cost_micro_cents;
    if let Some(key) = key {
        // The answer is kept with the key in the job's own transaction, so
        // it cannot wait for the job's place in the queue: its estimate is
        // the model's typical run time (docs/idempotency.md).
        let typical_ms = model.typical_completion(0);
        let request_id = request_id::current();
        let answer = move |jobs: &[Job]| Submitted {
            job_id: jobs[0].id.to_string(),
            request_id,
            status: "pending",
            estimated_completion_time: genq_engine::time::iso8601_s(
                jobs[0].created_at + typical_ms,
            ),
            cost_micro_cents: jobs[0].cost_micro_cents,
        };
        let app = &ctx.app;
        let (_, response) = submit_and_answer(
            app,
            &auth.principal,
            vec![new],
            Some(key),
            StatusCode::OK,
            answer,
        )
        .await?;
        return Ok(response);
    }
    let job = ctx.app.engine.submit(&auth.principal, new).await?;
    let eta = model
        .estimate_completion(&ctx.app.engine, &job, gateway.worker_slots)
        .await
        .unwrap_or_else(|_| model.typical_completion(job.created_at));
    Ok(axum::Json(Submitted {
        job_id: job.id.to_string(),
        request_id: request_id::current(),
        status: "pending",
        estimated_completion_time: genq_engine::time::iso8601_s(eta),
        cost_micro_cents: cost,
    })
    .into_response())
}

/// Get a job's status, progress and outputs.
#[utoipa::path(get, path = "/v1/jobs/{jobId}", params(("jobId" = String, Path)),
    responses((status = 200, body = JobView)), security(("bearer" = [])))]
async fn status(
    State(ctx): State<Ctx<Gateway>>,
    auth: Authed<Read>,
    JobPath(id, _): JobPath<V1Error>,
) -> Result<axum::Json<JobView>, V1Error> {
    let job = own_job(&ctx, &auth.principal, id).await?;
    Ok(axum::Json(JobView::from_job(&job, &ctx.app.public_url)))
}

/// Follow a job live (Server-Sent Events): its status now, then every
/// change, until it is completed, failed or cancelled.
#[utoipa::path(get, path = "/v1/jobs/{jobId}/events",
    params(
        ("jobId" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "Sent by a reconnecting client; the current status comes first either way."),
    ),
    responses((status = 200, content_type = "text/event-stream",
        description = "`event:` pending, processing, completed, failed or cancelled; `data:` the GET /v1/jobs/{jobId} body at that moment; `id:` the time of the change. A `: keep-alive` comment every 15 s.")),
    security(("bearer" = [])))]
async fn status_events(
    State(ctx): State<Ctx<Gateway>>,
    auth: Authed<Read>,
    JobPath(id, _): JobPath<V1Error>,
) -> Result<EventStream, V1Error> {
    Ok(job_events(&ctx.app, auth.principal, Gateway::NAME, id).await?)
}

/// `GET /v1/jobs`' query.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    #[serde(default)]
    limit: PageLimit,
    #[serde(default, deserialize_with = "non_empty")]
    cursor: Option<Cursor>,
    status: Option<StatusFilter>,
    model_id: Option<String>,
}

/// The opaque `nextCursor`: the page's last job id, base64.
struct Cursor(JobId);

impl Cursor {
    fn encode(id: JobId) -> String {
        URL_SAFE_NO_PAD.encode(id.to_string())
    }
}

impl TryFrom<String> for Cursor {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|id| id.parse().ok())
            .map(Cursor)
            .ok_or("Invalid cursor")
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct StatusFilter(JobState);

impl TryFrom<String> for StatusFilter {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        wire::parse_status(&raw)
            .map(StatusFilter)
            .ok_or("status must be one of pending, processing, completed, failed, cancelled")
    }
}

/// List your jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("status" = Option<String>, Query, description = "pending, processing, completed, failed or cancelled"),
        ("modelId" = Option<String>, Query, description = "a model slug"),
    ),
    responses((status = 200, body = JobList)), security(("bearer" = [])))]
async fn list(
    State(ctx): State<Ctx<Gateway>>,
    auth: Authed<Read>,
    Query(params, _): Query<ListParams, V1Error>,
) -> Result<axum::Json<JobList>, V1Error> {
    let query = JobQuery {
        before: params.cursor.map(|c| c.0),
        state: params.status.map(|s| s.0),
        model: params.model_id,
        dialect: Some(Gateway::NAME.into()),
        limit: params.limit.0,
        ..JobQuery::default()
    };
    let (jobs, has_more) =
        crate::shared::page_of_jobs(&ctx.app.engine, &auth.principal, query).await?;
    Ok(axum::Json(JobList {
        next_cursor: if has_more {
            jobs.last().map(|j| Cursor::encode(j.id))
        } else {
            None
        },
        has_more,
        jobs: jobs.iter().map(JobListItem::from_job).collect(),
    }))
}

/// Cancel a job: a pending one at once, a processing one by stopping its
/// renderer. Credits are refunded.
#[utoipa::path(post, path = "/v1/jobs/{jobId}/cancel", params(("jobId" = String, Path)),
    responses((status = 200, body = JobView),
        (status = 409, description = "The job has already finished")),
    security(("bearer" = [])))]
async fn cancel(
    State(ctx): State<Ctx<Gateway>>,
    auth: Authed<Submit>,
    JobPath(id, _): JobPath<V1Error>,
) -> Result<axum::Json<JobView>, V1Error> {
    let job = cancel_and_wait(&ctx.app.engine, &auth.principal, id, Gateway::NAME).await?;
    Ok(axum::Json(JobView::from_job(&job, &ctx.app.public_url)))
}

/// The model catalog: slugs, versions, input schemas, prices, output types.
#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = ModelList)), security(("bearer" = [])))]
async fn models(State(ctx): State<Ctx<Gateway>>, _: Authed<AnyScope>) -> axum::Json<ModelList> {
    axum::Json(ModelList {
        models: ctx
            .own
            .catalog
            .models()
            .map(|m| ModelView::from(m.as_ref()))
            .collect(),
    })
}

/// Your balance, concurrency limit and active jobs.
#[utoipa::path(get, path = "/v1/account", responses((status = 200, body = AccountView)), security(("bearer" = [])))]
async fn account(
    State(ctx): State<Ctx<Gateway>>,
    auth: Authed<AnyScope>,
) -> Result<axum::Json<AccountView>, V1Error> {
    let engine = &ctx.app.engine;
    let account = engine.account(auth.principal.account_id).await?;
    Ok(axum::Json(AccountView {
        account_id: account.id.to_string(),
        name: account.name,
        balance_micro_cents: account.balance_micro_cents,
        concurrency_limit: account
            .max_concurrent_jobs
            .unwrap_or(ctx.own.max_concurrent_jobs),
        active_jobs: engine.active_jobs(auth.principal.account_id).await?,
    }))
}
