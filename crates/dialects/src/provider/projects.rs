//! Projects: the templates jobs render (genq's side of the studio), the
//! vendor's discovery routes (`active`, `mapping-fields`) and previews.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use genq_engine::time::now_ms;
use genq_engine::{NewProject, Project, ProjectId};
use genq_template::{Fill, Fonts, Scene, Template, TemplateError, Values};
use serde::Deserialize;

use super::error::ProviderError;
use super::wire::{
    iso, Deleted, MappingField, MappingFields, ProjectSummary, ProjectView, Success,
};
use super::{Authed, Provider};
use crate::dialect::Ctx;
use crate::shared::auth::{Read, Submit};
use crate::shared::extract::{Json, JsonText, PathId};

type ProjectPath = PathId<ProjectId, ProviderError>;

/// A template checked, and what the engine stores of it (also what
/// `genq projects create` saves).
pub fn project_from_template(
    template_json: &[u8],
    fonts: &Fonts,
) -> Result<NewProject, TemplateError> {
    let template = Template::from_json(template_json)?;
    template.check(fonts)?;
    Ok(NewProject {
        name: template.name.clone(),
        kind: template.project_type.as_str().to_owned(),
        starts_at: template.start_date.map(|d| d.timestamp_millis()),
        ends_at: template.end_date.map(|d| d.timestamp_millis()),
        template: String::from_utf8_lossy(template_json).into_owned(),
    })
}

fn project_of(template_json: &[u8], fonts: &Fonts) -> Result<NewProject, ProviderError> {
    project_from_template(template_json, fonts)
        .map_err(|e| ProviderError::bad_request(format!("Invalid template: {e}")))
}

/// A stored template, read back. It was checked when saved; one that no
/// longer parses (a font removed since) is the server's problem to report.
pub(super) fn template_of(project: &Project) -> Result<Template, ProviderError> {
    Template::from_json(project.template.as_bytes()).map_err(|e| {
        tracing::error!(project = %project.id, error = %e, "a stored template does not parse");
        ProviderError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The project's template could not be read.",
        )
    })
}

/// Create a project from a template (`docs/templates.md`).
#[utoipa::path(post, path = "/api/provider/projects",
    request_body(content = Object, description = "A template (docs/templates.md)"),
    responses((status = 201, description = "The project", body = Object),
        (status = 400, description = "The template is invalid; the message names the place")),
    security(("api_key" = [])))]
pub(super) async fn create(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Submit>,
    JsonText(body, _): JsonText<ProviderError>,
) -> Result<Response, ProviderError> {
    let new = project_of(&body, &ctx.own.fonts)?;
    let project = ctx
        .app
        .engine
        .create_project(auth.principal.account_id, new)
        .await?;
    let view = Success::of(ProjectView::of(&project, now_ms()));
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// Every project of the caller's, active or not, oldest first.
#[utoipa::path(get, path = "/api/provider/projects",
    responses((status = 200, body = Object)), security(("api_key" = [])))]
pub(super) async fn list(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Read>,
) -> Result<axum::Json<Success<Vec<ProjectView>>>, ProviderError> {
    let now = now_ms();
    let projects = ctx.app.engine.projects(auth.principal.account_id).await?;
    Ok(axum::Json(Success::of(
        projects.iter().map(|p| ProjectView::of(p, now)).collect(),
    )))
}

/// The caller's projects active now by their start and end dates.
#[utoipa::path(get, path = "/api/provider/projects/active",
    responses((status = 200, body = Object)), security(("api_key" = [])))]
pub(super) async fn active(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Read>,
) -> Result<axum::Json<Success<Vec<ProjectSummary>>>, ProviderError> {
    let now = now_ms();
    let projects = ctx.app.engine.projects(auth.principal.account_id).await?;
    Ok(axum::Json(Success::of(
        projects
            .iter()
            .filter(|p| p.active_at(now))
            .map(ProjectSummary::of)
            .collect(),
    )))
}

/// One project with its template.
#[utoipa::path(get, path = "/api/provider/projects/{projectId}",
    params(("projectId" = String, Path)),
    responses((status = 200, body = Object), (status = 404, description = "No such project of the caller's")),
    security(("api_key" = [])))]
pub(super) async fn read(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Read>,
    PathId(id, _): ProjectPath,
) -> Result<axum::Json<Success<ProjectView>>, ProviderError> {
    let project = ctx
        .app
        .engine
        .project(auth.principal.account_id, id)
        .await?;
    Ok(axum::Json(Success::of(ProjectView::of(&project, now_ms()))))
}

/// Replace a project's template. Jobs already accepted keep theirs.
#[utoipa::path(put, path = "/api/provider/projects/{projectId}",
    params(("projectId" = String, Path)),
    request_body(content = Object, description = "A template (docs/templates.md)"),
    responses((status = 200, body = Object), (status = 400), (status = 404)),
    security(("api_key" = [])))]
pub(super) async fn replace(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Submit>,
    PathId(id, _): ProjectPath,
    JsonText(body, _): JsonText<ProviderError>,
) -> Result<axum::Json<Success<ProjectView>>, ProviderError> {
    let account = auth.principal.account_id;
    // An unknown project is a 404 before its template is judged.
    ctx.app.engine.project(account, id).await?;
    let new = project_of(&body, &ctx.own.fonts)?;
    let project = ctx.app.engine.update_project(account, id, new).await?;
    Ok(axum::Json(Success::of(ProjectView::of(&project, now_ms()))))
}

#[utoipa::path(delete, path = "/api/provider/projects/{projectId}",
    params(("projectId" = String, Path)),
    responses((status = 200, body = Object), (status = 404)),
    security(("api_key" = [])))]
pub(super) async fn delete(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Submit>,
    PathId(id, _): ProjectPath,
) -> Result<axum::Json<Deleted>, ProviderError> {
    ctx.app
        .engine
        .delete_project(auth.principal.account_id, id)
        .await?;
    Ok(axum::Json(Deleted { message: "Success" }))
}

/// The fields a job's `values` fill, by key, in the template's order.
#[utoipa::path(get, path = "/api/provider/projects/{projectId}/mapping-fields",
    params(("projectId" = String, Path)),
    responses((status = 200, body = Object), (status = 404)),
    security(("api_key" = [])))]
pub(super) async fn mapping_fields(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Read>,
    PathId(id, _): ProjectPath,
) -> Result<axum::Json<Success<MappingFields>>, ProviderError> {
    let project = ctx
        .app
        .engine
        .project(auth.principal.account_id, id)
        .await?;
    let template = template_of(&project)?;
    let fields = template
        .fields
        .iter()
        .map(|(key, field)| {
            let label = if field.label.is_empty() {
                key.clone()
            } else {
                field.label.clone()
            };
            let view = MappingField {
                label,
                instruction_type: field.kind.as_str(),
            };
            (key.clone(), view)
        })
        .collect();
    Ok(axum::Json(Success::of(MappingFields {
        project_id: project.id.to_string(),
        project_name: project.name,
        project_type: project.kind,
        fields,
        fetched_at: iso(now_ms()),
    })))
}

#[derive(Deserialize)]
pub(super) struct PreviewRequest {
    #[serde(default)]
    values: Option<serde_json::Value>,
}

/// The composed frame as PNG, at once: what a form shows while its user
/// types. Missing values are drawn as labelled placeholders; text values
/// are drawn, picture values are shown as placeholders too (a preview
/// fetches nothing).
#[utoipa::path(post, path = "/api/provider/projects/{projectId}/preview",
    params(("projectId" = String, Path)),
    request_body(content = Object, description = "{\"values\": {…}}"),
    responses((status = 200, content_type = "image/png", description = "The frame"),
        (status = 400), (status = 404)),
    security(("api_key" = [])))]
pub(super) async fn preview(
    State(ctx): State<Ctx<Provider>>,
    auth: Authed<Read>,
    PathId(id, _): ProjectPath,
    Json(request, _): Json<PreviewRequest, ProviderError>,
) -> Result<Response, ProviderError> {
    let project = ctx
        .app
        .engine
        .project(auth.principal.account_id, id)
        .await?;
    let template = template_of(&project)?;
    draw_preview(template, request.values.as_ref(), &ctx.own.fonts).await
}

#[derive(Deserialize)]
pub(super) struct DraftPreviewRequest {
    template: Box<serde_json::value::RawValue>,
    #[serde(default)]
    values: Option<serde_json::Value>,
}

/// A genq addition: the preview of a template not saved yet (the console's
/// editor shows it while its author types). The template is checked as
/// creating a project would check it.
#[utoipa::path(post, path = "/api/provider/preview",
    request_body(content = Object, description = "{\"template\": {…a template…}, \"values\": {…}}"),
    responses((status = 200, content_type = "image/png", description = "The frame"),
        (status = 400, description = "The template or a value is invalid")),
    security(("api_key" = [])))]
pub(super) async fn preview_draft(
    State(ctx): State<Ctx<Provider>>,
    _auth: Authed<Read>,
    Json(request, _): Json<DraftPreviewRequest, ProviderError>,
) -> Result<Response, ProviderError> {
    let json = request.template.get().as_bytes();
    let template = Template::from_json(json)
        .and_then(|template| template.check(&ctx.own.fonts).map(|()| template))
        .map_err(|e| ProviderError::bad_request(format!("Invalid template: {e}")))?;
    draw_preview(template, request.values.as_ref(), &ctx.own.fonts).await
}

/// A template's frame drawn as a PNG, with placeholders for missing values
/// and pictures.
async fn draw_preview(
    template: Template,
    values: Option<&serde_json::Value>,
    fonts: &Arc<Fonts>,
) -> Result<Response, ProviderError> {
    let values = preview_values(&template, values)?;
    let fonts = Arc::clone(fonts);
    let png = tokio::task::spawn_blocking(move || {
        let fill = Fill {
            texts: values.texts.into_iter().collect(),
            placeholders: true,
            ..Fill::default()
        };
        Scene::compose(&template, &fill, &fonts)?.png()
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "a preview panicked");
        ProviderError::new(StatusCode::INTERNAL_SERVER_ERROR, "The preview failed.")
    })?
    .map_err(|e| ProviderError::bad_request(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// A preview's values: checked as a job's are (kinds, lengths), except that
/// missing required values are allowed — the form is being filled in.
fn preview_values(
    template: &Template,
    values: Option<&serde_json::Value>,
) -> Result<Values, ProviderError> {
    let mut lenient = template.clone();
    for field in lenient.fields.values_mut() {
        field.required = false;
    }
    Values::check(&lenient, values).map_err(|e| ProviderError::bad_request(e.to_string()))
}
