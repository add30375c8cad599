//! The Provider template API (seed 003 and the Provider issue): brand
//! teams keep **projects** (templates with named fields) and send values to
//! render them. Auth by `x-api-key`; errors as `{"statusCode", "message",
//! "error"}` (401: `{"message": "Unauthorized", "statusCode": 401}`).
//! Projects and their templates are genq's side of the vendor's studio.

mod error;
mod projects;
pub mod wire;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use genq_engine::{Job, JobState};
use genq_template::Fonts;
use serde_json::{json, Value};
use utoipa::OpenApi;

pub use error::ProviderError;
pub use projects::project_from_template;
use wire::{iso, Credits};

use crate::dialect::{Ctx, Dialect, JobShape, Routes};
use crate::shared::auth::{self, Read};
use crate::DialectSettings;

type Authed<S> = auth::Authed<ProviderError, S>;

/// One credit, unless set: a cent.
pub const DEFAULT_CREDIT_MICRO_CENTS: i64 = 10_000;

/// The Provider dialect's settings.
#[derive(Clone)]
pub struct ProviderSettings {
    /// What one credit is worth, in micro-cents (the unit of every
    /// balance).
    pub credit_micro_cents: i64,
    /// The fonts templates may name (the system's and `--fonts-dir`).
    pub fonts: Arc<Fonts>,
}

/// The Provider template API.
pub struct Provider;

pub struct ProviderState {
    credit_micro_cents: i64,
    fonts: Arc<Fonts>,
}

impl Dialect for Provider {
    const NAME: &'static str = "provider";
    const SCOPES: &'static [&'static str] = &[auth::SUBMIT_JOB, auth::CHECK_STATUS];
    type Error = ProviderError;
    type State = ProviderState;

    fn state(settings: &DialectSettings) -> ProviderState {
        ProviderState {
            credit_micro_cents: settings.provider.credit_micro_cents,
            fonts: Arc::clone(&settings.provider.fonts),
        }
    }

    fn routes(routes: Routes<Self>, _: &DialectSettings) -> Routes<Self> {
        routes
            .route(
                "/api/provider/projects",
                get(projects::list).post(projects::create),
            )
            .route("/api/provider/projects/active", get(projects::active))
            .route(
                "/api/provider/projects/{project_id}",
                get(projects::read)
                    .put(projects::replace)
                    .delete(projects::delete),
            )
            .route(
                "/api/provider/projects/{project_id}/mapping-fields",
                get(projects::mapping_fields),
            )
            .route(
                "/api/provider/projects/{project_id}/preview",
                post(projects::preview),
            )
            .route("/auth/credits", get(credits))
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        ProviderDoc::openapi()
    }

    fn shape(_: Arc<str>) -> Arc<dyn JobShape> {
        Arc::new(ProviderShape)
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        projects::create,
        projects::list,
        projects::active,
        projects::read,
        projects::replace,
        projects::delete,
        projects::mapping_fields,
        projects::preview,
        credits
    ),
    components(schemas(Credits))
)]
struct ProviderDoc;

/// This dialect's view of a job: its `job_status` names and the job record
/// of `GET /jobs/{id}`.
struct ProviderShape;

/// A job's status in the vendor's words: STARTED once claimed, IN_PROGRESS
/// once its work reports progress.
pub fn job_status(state: JobState, progress: u8) -> &'static str {
    match state {
        JobState::Pending => "QUEUED",
        JobState::Processing if progress == 0 => "STARTED",
        JobState::Processing => "IN_PROGRESS",
        JobState::Completed => "SUCCESS",
        JobState::Failed => "FAILED",
        JobState::Cancelled => "CANCELLED",
    }
}

impl JobShape for ProviderShape {
    fn status(&self, state: JobState) -> &'static str {
        job_status(state, 0)
    }

    fn body(&self, job: &Job) -> Value {
        job_record(job)
    }
}

/// The job record as the vendor stores it. A Provider job's engine input
/// keeps the request body as sent under `request`, and the resolved
/// `template_id` and `job_type` beside it.
pub fn job_record(job: &Job) -> Value {
    let request = job.input.get("request").cloned().unwrap_or(Value::Null);
    json!({
        "uuid": job.id.to_string(),
        "user_id": job.account_id.to_string(),
        "template_id": job.input.get("template_id").cloned().unwrap_or(Value::Null),
        "input": request,
        "output": Value::Null,
        "values": request.get("values").cloned().unwrap_or(Value::Null),
        "job_status": job_status(job.state, job.progress),
        "job_type": job.input.get("job_type").cloned().unwrap_or(Value::Null),
        "progress": job.progress,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    })
}

/// The caller's balance in credits.
#[utoipa::path(get, path = "/auth/credits",
    responses((status = 200, body = Credits)), security(("api_key" = [])))]
async fn credits(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Read>,
) -> Result<axum::Json<Credits>, ProviderError> {
    let account = ctx.app.engine.account(auth.principal.account_id).await?;
    Ok(axum::Json(Credits {
        credits: account.balance_micro_cents as f64 / ctx.own.credit_micro_cents as f64,
    }))
}
