//! Projects (the Provider dialect's templates): the list, the editor with
//! its live preview, and "Use": a job form made from the template's
//! mapping fields. The script saves and submits through the Provider's
//! own routes.

use askama::Template as _;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use genq_engine::time::now_ms;
use genq_engine::{Project, ProjectId};
use genq_template::{FieldKind, ProjectType, Template};

use crate::error::PageError;
use crate::session::Signed;
use crate::view::{html, when, Layout};
use crate::Console;

/// What a new project's editor starts from: a template that draws with no
/// value filled in, for its author to change.
const STARTER_TEMPLATE: &str = r##"{
  "name": "New project",
  "type": "image",
  "canvas": {"width": 1080, "height": 1080, "background": "#1d3557"},
  "fields": {
    "headline": {"label": "Headline", "type": "text", "required": true, "maxLength": 80},
    "photo": {"label": "Photo", "type": "image"}
  },
  "layers": [
    {"kind": "image", "field": "photo", "x": 0, "y": 0, "width": 1080, "height": 700, "fit": "cover"},
    {"kind": "text", "field": "headline", "x": 60, "y": 760, "width": 960, "height": 260,
     "size": 72, "color": "#ffffff", "align": "center"}
  ]
}"##;

struct ProjectRow {
    id: String,
    name: String,
    kind: String,
    active: bool,
    starts: String,
    ends: String,
    updated: String,
}

impl ProjectRow {
    fn of(project: &Project, now: i64) -> Self {
        Self {
            id: project.id.to_string(),
            name: if project.name.is_empty() {
                "(no name)".to_owned()
            } else {
                project.name.clone()
            },
            kind: project.kind.clone(),
            active: project.active_at(now),
            starts: project
                .starts_at
                .map(when)
                .unwrap_or_else(|| "always".to_owned()),
            ends: project
                .ends_at
                .map(when)
                .unwrap_or_else(|| "never".to_owned()),
            updated: when(project.updated_at),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    layout: Layout,
    projects: Vec<ProjectRow>,
}

pub(crate) async fn list(
    State(console): State<Console>,
    signed: Signed,
) -> Result<Response, PageError> {
    let now = now_ms();
    let projects = console
        .app
        .engine
        .projects(signed.principal.account_id)
        .await?;
    let page = ProjectsPage {
        layout: signed.layout("Projects", "Projects"),
        projects: projects
            .iter()
            .rev()
            .map(|p| ProjectRow::of(p, now))
            .collect(),
    };
    Ok(html(StatusCode::OK, page.render()?))
}

#[derive(askama::Template)]
#[template(path = "project_edit.html")]
struct EditPage {
    layout: Layout,
    /// Empty for a new project.
    id: String,
    heading: String,
    template: String,
}

pub(crate) async fn new(signed: Signed) -> Result<Response, PageError> {
    let page = EditPage {
        layout: signed.layout("New project", "Projects"),
        id: String::new(),
        heading: "New project".to_owned(),
        template: STARTER_TEMPLATE.to_owned(),
    };
    Ok(html(StatusCode::OK, page.render()?))
}

async fn project_of(console: &Console, signed: &Signed, id: &str) -> Result<Project, PageError> {
    let id: ProjectId = id.parse().map_err(|_| PageError::NotFound)?;
    Ok(console
        .app
        .engine
        .project(signed.principal.account_id, id)
        .await?)
}

/// A stored template, pretty-printed for editing (key order kept).
fn pretty(template: &str) -> String {
    serde_json::from_str::<serde_json::Value>(template)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| template.to_owned())
}

pub(crate) async fn edit(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let project = project_of(&console, &signed, &id).await?;
    let page = EditPage {
        layout: signed.layout(format!("Project {}", project.name), "Projects"),
        id: project.id.to_string(),
        heading: format!("Project {}", project.name),
        template: pretty(&project.template),
    };
    Ok(html(StatusCode::OK, page.render()?))
}

struct ValueField {
    key: String,
    label: String,
    /// `text`, `image` or `audio`.
    kind: &'static str,
    required: bool,
    max_length: String,
}

#[derive(askama::Template)]
#[template(path = "project_use.html")]
struct UsePage {
    layout: Layout,
    id: String,
    name: String,
    fields: Vec<ValueField>,
    job_types: Vec<&'static str>,
    active: bool,
}

pub(crate) async fn use_form(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let project = project_of(&console, &signed, &id).await?;
    let template = Template::from_json(project.template.as_bytes())
        .map_err(|e| PageError::Internal(format!("a stored template does not parse: {e}")))?;
    // A drawn template renders to any of video, image and PDF; the other
    // project types run their own job type only.
    let job_types = match template.project_type {
        ProjectType::Video | ProjectType::Image | ProjectType::Pdf => {
            let own = template.project_type.as_str();
            let mut types = vec![own];
            types.extend(["video", "image", "pdf"].into_iter().filter(|t| *t != own));
            types
        }
        other => vec![other.as_str()],
    };
    let fields = template
        .fields
        .iter()
        .map(|(key, field)| ValueField {
            key: key.clone(),
            label: if field.label.is_empty() {
                key.clone()
            } else {
                field.label.clone()
            },
            kind: match field.kind {
                FieldKind::Text => "text",
                FieldKind::Image => "image",
                FieldKind::Audio => "audio",
            },
            required: field.required,
            max_length: field.max_length.map(|n| n.to_string()).unwrap_or_default(),
        })
        .collect();
    let page = UsePage {
        layout: signed.layout(format!("Use {}", project.name), "Projects"),
        id: project.id.to_string(),
        active: project.active_at(now_ms()),
        name: project.name,
        fields,
        job_types,
    };
    Ok(html(StatusCode::OK, page.render()?))
}
