//! `GET /console/events`: every change of the signed-in account's jobs, of
//! every dialect, in one small shape the console's script reads (the
//! dialects' own streams send each dialect's status body instead).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use genq_dialects::shared::events::{account_stream, EventStream, Follow};
use genq_dialects::AppState;
use genq_engine::Job;
use serde_json::json;

use crate::error::PageError;
use crate::session::Signed;
use crate::view::JobRow;
use crate::Console;

fn console_event(app: &AppState, job: &Job) -> Option<Event> {
    let row = JobRow::of(app, job);
    let data = json!({
        "id": row.id,
        "dialect": row.dialect,
        "what": row.what,
        "status": row.status,
        "state": row.state,
        "progress": row.progress,
        "cancellable": row.cancellable,
        "created": row.created,
        "session": row.session,
        "updatedAt": job.updated_at,
        "error": job.failure.as_ref().map(|f| f.message.clone()),
    });
    Some(
        Event::default()
            .event("job")
            .id(job.updated_at.to_string())
            .data(data.to_string()),
    )
}

pub(crate) async fn stream(
    State(console): State<Console>,
    signed: Signed,
    headers: HeaderMap,
) -> Result<EventStream, PageError> {
    let follow = Follow {
        since: headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
        ..Follow::default()
    };
    Ok(account_stream(console.app.clone(), signed.principal, follow, console_event).await?)
}
