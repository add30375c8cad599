//! The Provider dialect's JSON shapes, as its clients read them.

use genq_engine::time::Millis;
use genq_engine::Project;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// `{"message": "Success", "data": …}`, the envelope of the project routes.
#[derive(Serialize, ToSchema)]
pub struct Success<T> {
    pub message: &'static str,
    pub data: T,
}

impl<T> Success<T> {
    pub fn of(data: T) -> Self {
        Self {
            message: "Success",
            data,
        }
    }
}

/// A project in lists (`GET /api/provider/projects/active`,
/// `GET /api/provider/projects`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSummary {
    pub project_id: String,
    /// `""` when the template has no name.
    pub project_name: String,
    pub project_type: String,
    /// ISO 8601 (UTC, milliseconds) or null.
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

impl ProjectSummary {
    pub fn of(project: &Project) -> Self {
        Self {
            project_id: project.id.to_string(),
            project_name: project.name.clone(),
            project_type: project.kind.clone(),
            start_date: project.starts_at.map(iso),
            end_date: project.ends_at.map(iso),
        }
    }
}

/// A project with its template (create, read, update; and, with `active`,
/// every project of the account).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    #[serde(flatten)]
    pub summary: ProjectSummary,
    /// Whether it is active now by its dates.
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The template as its author wrote it (key order kept).
    #[schema(value_type = Object)]
    pub template: Box<RawValue>,
}

impl ProjectView {
    pub fn of(project: &Project, now: Millis) -> Self {
        let template = RawValue::from_string(project.template.clone())
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"));
        Self {
            summary: ProjectSummary::of(project),
            active: project.active_at(now),
            created_at: iso(project.created_at),
            updated_at: iso(project.updated_at),
            template,
        }
    }
}

/// `GET /api/provider/projects/{projectId}/mapping-fields`' data.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingFields {
    pub project_id: String,
    pub project_name: String,
    pub project_type: String,
    /// By the key a job's `values` uses, in the template's order.
    #[schema(value_type = Object)]
    pub fields: IndexMap<String, MappingField>,
    pub fetched_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingField {
    pub label: String,
    /// `text`, `image` or `audio`.
    pub instruction_type: &'static str,
}

/// `GET /auth/credits`.
#[derive(Serialize, ToSchema)]
pub struct Credits {
    /// The balance in credits (fractional when the balance is not a whole
    /// number of credits).
    pub credits: f64,
}

/// `DELETE /api/provider/projects/{projectId}`.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub message: &'static str,
}

/// ISO 8601 in UTC with milliseconds, as the vendor's API writes times.
pub fn iso(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The error shape: `{"statusCode", "message", "error"}` (the reason
/// phrase); 401 is `{"message": "Unauthorized", "statusCode": 401}`, and a
/// few refusals carry a body of the route's own (`{"error": "…"}`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderErrorBody {
    pub status_code: Option<u16>,
    pub message: Option<String>,
    pub error: Option<String>,
}
