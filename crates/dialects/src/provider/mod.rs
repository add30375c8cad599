//! The Provider template API (seed 003 and the Provider issue): brand
//! teams keep **projects** (templates with named fields) and send values to
//! render them. Auth by `x-api-key`; errors as `{"statusCode", "message",
//! "error"}` (401: `{"message": "Unauthorized", "statusCode": 401}`).
//! Projects and their templates are genq's side of the vendor's studio.

mod error;
mod jobs;
mod projects;
mod steps;
mod storage;
pub mod wire;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use genq_engine::{Job, JobState, OutputRole};
use genq_template::{Fonts, ProjectType};
use serde_json::{json, Value};
use utoipa::OpenApi;

pub use error::ProviderError;
pub use jobs::TEMPLATE_KIND;
pub use projects::project_from_template;
pub use steps::{DefaultModels, DEFAULT_TTS_MAX_CHARS};
pub use storage::{storage_key, storage_keys};
use wire::{iso, Credits};

use crate::dialect::{Ctx, Dialect, JobShape, Routes};
use crate::shared::auth::{self, Read};
use crate::shared::openapi::{document_shared_refusals, SharedRefusals};
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
    /// Each job type's price, in credits.
    pub prices: Prices,
    /// How long a URL from `generate-signed-path` works, in seconds.
    pub signed_url_ttl_secs: i64,
    /// The model backends of the steps that need one, unless a project
    /// names its own.
    pub models: DefaultModels,
    /// The longest text a `tts` job speaks, in characters.
    pub tts_max_chars: usize,
}

/// Prices in credits by job type, as `--provider-prices` writes them
/// (`video=10,image=2`); a type it leaves out keeps its default.
#[derive(Clone, Debug, PartialEq)]
pub struct Prices(Vec<(ProjectType, f64)>);

/// The prices unless set otherwise.
pub const DEFAULT_PRICES: &str =
    "ai_talking_video=20,video=10,tts=2,image=2,photo_qc=1,pdf=2,ai_image_generation=5";

impl Prices {
    pub fn parse(text: &str) -> Result<Prices, String> {
        let mut prices = Prices(Vec::new());
        for entry in DEFAULT_PRICES.split(',').chain(text.split(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (name, price) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not JOB_TYPE=CREDITS"))?;
            let job_type = ProjectType::parse(name.trim())
                .ok_or_else(|| format!("{name:?} is not a job type"))?;
            let price: f64 = price
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| {
                    format!("the price of {name} must be a number of credits, 0 or more")
                })?;
            prices.0.retain(|(t, _)| *t != job_type);
            prices.0.push((job_type, price));
        }
        Ok(prices)
    }

    pub fn price(&self, job_type: ProjectType) -> f64 {
        self.0
            .iter()
            .find(|(t, _)| *t == job_type)
            .map_or(0.0, |(_, p)| *p)
    }
}

/// The Provider template API.
pub struct Provider;

pub struct ProviderState {
    credit_micro_cents: i64,
    fonts: Arc<Fonts>,
    prices: Prices,
    signed_url_ttl_secs: i64,
    /// PENDING + PROCESSING jobs per account, unless the account sets its own.
    max_concurrent_jobs: u32,
    catalog: Arc<genq_catalog::Catalog>,
    models: DefaultModels,
    tts_max_chars: usize,
}

impl Dialect for Provider {
    const NAME: &'static str = "provider";
    const SCOPES: &'static [&'static str] = &[auth::SUBMIT_JOB, auth::CHECK_STATUS];
    // `/api/provider` is longer than the video API's `/api`, so it wins.
    const PREFIXES: &'static [&'static str] = &["/jobs", "/storage", "/api/provider", "/auth"];
    type Error = ProviderError;
    type State = ProviderState;

    fn state(settings: &DialectSettings) -> ProviderState {
        ProviderState {
            credit_micro_cents: settings.provider.credit_micro_cents,
            fonts: Arc::clone(&settings.provider.fonts),
            prices: settings.provider.prices.clone(),
            signed_url_ttl_secs: settings.provider.signed_url_ttl_secs,
            max_concurrent_jobs: settings.max_concurrent_jobs,
            catalog: Arc::clone(&settings.catalog),
            models: settings.provider.models.clone(),
            tts_max_chars: settings.provider.tts_max_chars,
        }
    }

    fn routes(routes: Routes<Self>, _: &DialectSettings) -> Routes<Self> {
        routes
            .submit("/jobs/v2", post(jobs::submit))
            .submit("/jobs/trigger-job", post(jobs::trigger))
            .route("/jobs/{job_id}", get(jobs::status))
            .route("/jobs/{job_id}/cancel", post(jobs::cancel))
            .route(
                "/storage/generate-signed-path",
                get(storage::generate_signed_path),
            )
            .route("/storage/files/{*key}", get(storage::signed_download))
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
            .route("/api/provider/preview", post(projects::preview_draft))
            .route("/auth/credits", get(credits))
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = ProviderDoc::openapi();
        document_shared_refusals(
            &mut doc,
            &SharedRefusals {
                unauthorized: "No or an unknown x-api-key: {\"message\": \"Unauthorized\", \"statusCode\": 401}",
                forbidden: "The key lacks the route's scope: {\"statusCode\": 403, \"message\", \"error\"}",
                bad_request: "A malformed query or body: {\"statusCode\": 400, \"message\" naming the field, \"error\"}",
                not_found: "Not the caller's: {\"statusCode\": 404, \"message\", \"error\"}",
                rate_limited: "Rate limited: {\"statusCode\": 429, \"message\", \"error\"}",
                error_schema: "ProviderErrorBody",
            },
        );
        doc
    }

    fn shape(_: Arc<str>, settings: &DialectSettings) -> Arc<dyn JobShape> {
        Arc::new(ProviderShape {
            credit_micro_cents: settings.provider.credit_micro_cents,
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        jobs::submit,
        jobs::status,
        jobs::trigger,
        jobs::cancel,
        storage::generate_signed_path,
        storage::signed_download,
        projects::create,
        projects::list,
        projects::active,
        projects::read,
        projects::replace,
        projects::delete,
        projects::mapping_fields,
        projects::preview,
        projects::preview_draft,
        credits
    ),
    components(schemas(Credits, wire::ProviderErrorBody))
)]
struct ProviderDoc;

/// This dialect's view of a job: its `job_status` names and the job record
/// of `GET /jobs/{id}`.
struct ProviderShape {
    credit_micro_cents: i64,
}

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
        job_record(job, self.credit_micro_cents)
    }

    fn status_of(&self, job: &Job) -> &'static str {
        job_status(job.state, job.progress)
    }

    fn names(&self, state: JobState) -> Vec<&'static str> {
        match state {
            JobState::Processing => vec!["STARTED", "IN_PROGRESS"],
            other => vec![job_status(other, 0)],
        }
    }
}

/// The job record as the vendor stores it. A Provider job's engine input
/// keeps the request body as sent, and the resolved `template_id` and
/// `job_type`, under `dialect`.
pub fn job_record(job: &Job, credit_micro_cents: i64) -> Value {
    let dialect = job.input.get("dialect").cloned().unwrap_or(Value::Null);
    let request = dialect.get("request").cloned().unwrap_or(Value::Null);
    let output = match job.state {
        JobState::Completed if job.outputs_deleted_at.is_some() => json!({ "output": null }),
        JobState::Completed => {
            let mut output = json!({ "output": storage_key(job, OutputRole::Main) });
            for (name, role) in [
                ("thumbnail", OutputRole::Thumbnail),
                ("poster", OutputRole::Poster),
            ] {
                if let Some(key) = storage_key(job, role) {
                    output[name] = json!(key);
                }
            }
            // What the renderer found out (a duration, a QC report, which
            // talking head was used) sits beside the file's key.
            let details = job
                .output(OutputRole::Main)
                .and_then(|o| o.details.as_ref());
            if let Some(Value::Object(details)) = details {
                for (key, value) in details {
                    output[key.as_str()] = value.clone();
                }
            }
            output
        }
        JobState::Failed | JobState::Cancelled => json!({
            "output": null,
            "error": job.failure.as_ref().map(|f| f.message.clone())
                .unwrap_or_else(|| "The job was cancelled.".into()),
        }),
        JobState::Pending | JobState::Processing => Value::Null,
    };
    // A failed or cancelled job's credits were refunded.
    let charged = match job.state {
        JobState::Failed | JobState::Cancelled => 0,
        _ => job.cost_micro_cents,
    };
    let mut record = json!({
        "uuid": job.id.to_string(),
        "user_id": job.account_id.to_string(),
        "template_id": dialect.get("template_id").cloned().unwrap_or(Value::Null),
        "input": request,
        "output": output,
        "values": request.get("values").cloned().unwrap_or(Value::Null),
        "job_status": job_status(job.state, job.progress),
        "job_type": dialect.get("job_type").cloned().unwrap_or(Value::Null),
        "credit_used": credits_text(charged, credit_micro_cents),
        "progress": job.progress,
        "session_id": job.correlation_id,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    });
    // genq additions, present once the retention sweep deleted the files.
    if let Some(at) = job.outputs_deleted_at {
        record["output_expired_at"] = json!(iso(at));
    }
    if let Some(at) = job.inputs_deleted_at {
        record["input_deleted_at"] = json!(iso(at));
    }
    record
}

/// Micro-cents as a decimal number of credits (`"12.5"`): the shortest
/// decimal that reads back as the same number.
pub fn credits_text(micro_cents: i64, credit_micro_cents: i64) -> String {
    (micro_cents as f64 / credit_micro_cents as f64).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_are_written_exactly() {
        assert_eq!(credits_text(125_000, 10_000), "12.5");
        assert_eq!(credits_text(100_000, 10_000), "10");
        assert_eq!(credits_text(0, 10_000), "0");
        assert_eq!(credits_text(1, 10_000), "0.0001");
        assert_eq!(credits_text(-25_000, 10_000), "-2.5");
    }

    #[test]
    fn prices_default_and_override() {
        let prices = Prices::parse("video=1.5, pdf=0").unwrap();
        assert_eq!(prices.price(ProjectType::Video), 1.5);
        assert_eq!(prices.price(ProjectType::Pdf), 0.0);
        assert_eq!(prices.price(ProjectType::Image), 2.0);
        assert!(Prices::parse("gif=1").unwrap_err().contains("gif"));
        assert!(Prices::parse("video=-1").is_err());
        assert!(Prices::parse("video").is_err());
    }
}
