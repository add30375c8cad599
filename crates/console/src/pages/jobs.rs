//! The Jobs page: every job of the account, of every dialect, newest first.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use genq_engine::{JobId, JobQuery, JobState};
use serde::Deserialize;

use crate::error::PageError;
use crate::session::Signed;
use crate::view::{html, JobRow, Layout};
use crate::Console;

const PAGE_SIZE: u32 = 50;

#[derive(Deserialize, Default)]
pub(crate) struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    dialect: String,
    #[serde(default)]
    session: String,
    #[serde(default)]
    before: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    layout: Layout,
    jobs: Vec<JobRow>,
    status: String,
    dialect: String,
    session: String,
    states: Vec<&'static str>,
    dialects: Vec<String>,
    /// The link to the next page, when there may be one.
    older: Option<String>,
    /// Whether new jobs may be added at the top as they arrive.
    first_page: bool,
}

pub(crate) async fn list(
    State(console): State<Console>,
    signed: Signed,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    let state = match filters.status.as_str() {
        "" => None,
        name => Some(
            name.parse::<JobState>()
                .map_err(|()| PageError::BadRequest(format!("{name:?} is not a job state.")))?,
        ),
    };
    let before = match filters.before.as_str() {
        "" => None,
        id => Some(id.parse::<JobId>().map_err(|_| PageError::NotFound)?),
    };
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let query = JobQuery {
        before,
        state,
        dialect: non_empty(&filters.dialect),
        correlation_id: non_empty(&filters.session),
        limit: PAGE_SIZE,
        ..JobQuery::default()
    };
    let jobs = console.app.engine.jobs(&signed.principal, &query).await?;
    let older = (jobs.len() == PAGE_SIZE as usize).then(|| {
        let last = jobs.last().map(|j| j.id.to_string()).unwrap_or_default();
        let query = serde_urlencoded_pairs(&[
            ("status", &filters.status),
            ("dialect", &filters.dialect),
            ("session", &filters.session),
            ("before", &last),
        ]);
        format!("/console/jobs?{query}")
    });
    let mut dialects: Vec<String> = console.app.shapes.keys().map(|d| d.to_string()).collect();
    dialects.sort();
    let page = JobsPage {
        layout: signed.layout("Jobs", "Jobs"),
        jobs: jobs
            .iter()
            .map(|job| JobRow::of(&console.app, job))
            .collect(),
        first_page: before.is_none()
            && state.is_none()
            && query.dialect.is_none()
            && query.correlation_id.is_none(),
        status: filters.status,
        dialect: filters.dialect,
        session: filters.session,
        states: JobState::ALL.iter().map(|s| s.as_str()).collect(),
        dialects,
        older,
    };
    Ok(html(StatusCode::OK, page.render()?))
}

/// A query string of the non-empty pairs.
fn serde_urlencoded_pairs(pairs: &[(&str, &String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
        .finish()
}
