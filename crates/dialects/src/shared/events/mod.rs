//! Live job events over Server-Sent Events, fed by the engine's event bus.
//!
//! - A dialect's `…/jobs/{id}/events` ([`job_events`]): the job's state now,
//!   then one event per change, ending after its final state.
//! - `GET /events` ([`account_events`]): every change of any job of the
//!   caller's account, each in its own dialect's shape, optionally only one
//!   correlation id (`session_id`) or one status. It does not end by itself.
//!
//! Each event's `event:` is the dialect's status name, its `data:` exactly
//! the body of the dialect's status endpoint at that moment, and its `id:`
//! the time of the change (ms since the epoch). A client reconnecting with
//! `Last-Event-ID` is sent the current state of what it follows again (on
//! `/events`: every job in flight or finished since that time), so it sees
//! no gap; no replay log is kept, since the current state is the truth. A
//! subscriber that falls behind is treated the same way. A `: keep-alive`
//! comment goes out every 15 s.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use futures::stream::{self, BoxStream, StreamExt};
use genq_engine::time::Millis;
use genq_engine::{
    EngineError, Interest, Job, JobEvent, JobId, JobQuery, JobState, Notice, Principal,
};
use serde::Deserialize;

mod error;

pub use error::{EventsError, EventsErrorBody};

use super::auth::{Authed, Read};
use super::extract::Query;
use crate::dialect::JobShape;
use crate::AppState;

/// How often a quiet stream sends `: keep-alive`.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// At most this many jobs are sent at once when a stream (re)starts.
const MOST_JOBS_AT_ONCE: u32 = 500;
/// How long `/events` remembers a finished job it sent.
const FORGET_FINISHED_AFTER_MS: Millis = 60_000;

type Events = BoxStream<'static, Result<Event, Infallible>>;

/// A response of job events, with keep-alives.
pub type EventStream = Sse<KeepAliveStream<Events>>;

fn sse(stream: Events) -> EventStream {
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

/// One SSE event: the job as `shape` shows it.
fn event(shape: &dyn JobShape, job: &Job) -> Event {
    Event::default()
        .event(shape.status_of(job))
        .id(job.updated_at.to_string())
        .json_data(shape.body(job))
        .expect("JSON values serialize")
}

/// The job as it was at `change`, from a read made after it: the job may
/// have moved on meanwhile (claimed the moment it was queued, say), and each
/// change is sent as it was, so that the client sees every state the job
/// went through, in order.
fn as_of(mut job: Job, change: &JobEvent) -> Job {
    if job.updated_at <= change.at || job.id != change.job_id {
        return job;
    }
    job.state = change.state;
    job.progress = change.progress;
    job.updated_at = change.at;
    if !change.state.is_terminal() {
        job.completed_at = None;
        job.failure = None;
        job.outputs.clear();
    }
    if change.state == JobState::Pending {
        job.started_at = None;
    }
    job
}

/// The `Last-Event-ID` a reconnecting client sends: the time of the last
/// change it saw.
fn last_event_time(headers: &HeaderMap) -> Option<Millis> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The events of one of the caller's jobs, accepted by `dialect`: its state
/// now, then each change, ending after its final state. Another account's
/// or another dialect's job is not found.
pub async fn job_events(
    app: &AppState,
    principal: Principal,
    dialect: &'static str,
    id: JobId,
) -> Result<EventStream, EngineError> {
    let shape = app
        .shapes
        .get(dialect)
        .cloned()
        .expect("every dialect has a shape");
    // Subscribed before the read, so no change falls between the two.
    let subscription = app
        .engine
        .subscribe(Interest::Job(principal.account_id, id))
        .await;
    let job = app.engine.job(&principal, id).await?;
    if job.dialect != dialect {
        return Err(EngineError::NotFound);
    }
    let follower = OneJob {
        engine: app.engine.clone(),
        principal,
        shape,
        subscription,
        job,
        sent: None,
    };
    Ok(sse(stream::unfold(follower, OneJob::next).boxed()))
}

struct OneJob {
    engine: genq_engine::Engine,
    principal: Principal,
    shape: Arc<dyn JobShape>,
    subscription: genq_engine::events::Subscription,
    /// The job as last read (or patched with a progress event).
    job: Job,
    /// What the client was last sent.
    sent: Option<(JobState, u8)>,
}

impl OneJob {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            let shown = (self.job.state, self.job.progress);
            if self.sent != Some(shown) {
                self.sent = Some(shown);
                let event = event(self.shape.as_ref(), &self.job);
                return Some((Ok(event), self));
            }
            if shown.0.is_terminal() {
                return None;
            }
            match self.subscription.recv().await? {
                Notice::Changed(change) => {
                    if (change.state, change.progress) == shown || change.at < self.job.updated_at {
                        continue;
                    }
                    if let Some(job) = &change.job {
                        self.job = Job::clone(job);
                    } else if change.state == JobState::Processing
                        && shown.0 == JobState::Processing
                    {
                        // Progress: everything else the body shows is as read.
                        self.job.progress = change.progress;
                        self.job.updated_at = change.at;
                    } else if self.reread().await {
                        self.job = as_of(self.job.clone(), &change);
                    } else {
                        return None;
                    }
                }
                Notice::Missed => {
                    if !self.reread().await {
                        return None;
                    }
                }
            }
        }
    }

    /// False when the job can no longer be read (and the stream must end).
    async fn reread(&mut self) -> bool {
        match self.engine.job(&self.principal, self.job.id).await {
            Ok(job) => {
                self.job = job;
                true
            }
            Err(EngineError::NotFound) => false,
            Err(e) => {
                tracing::warn!(job = %self.job.id, error = %e, "reading a followed job failed");
                true
            }
        }
    }
}

/// `GET /events`' filters.
#[derive(Debug, Deserialize)]
pub struct EventsFilter {
    /// Only jobs with this correlation id (the Provider dialect's `session_id`).
    session_id: Option<String>,
    /// Only jobs entering this status, in any dialect's words
    /// (`PENDING`, `pending`, …).
    status: Option<String>,
}

/// Every change of any job of the caller's account, each in its own
/// dialect's shape.
#[utoipa::path(
    get, path = "/events",
    params(
        ("session_id" = Option<String>, Query, description = "Only jobs with this correlation id (the Provider dialect's session_id)."),
        ("status" = Option<String>, Query, description = "Only jobs in this status, in any dialect's words: PENDING, pending, COMPLETED, …"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event seen: the jobs in flight or finished since are sent again first."),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", description = "`event:` the job's status in its dialect's words; `data:` the body of its dialect's status endpoint; `id:` the time of the change. Starts with the jobs now pending or processing (or, on reconnect, also those finished since Last-Event-ID)."),
        (status = 400, body = EventsErrorBody), (status = 401, body = EventsErrorBody),
        (status = 403, body = EventsErrorBody), (status = 429, body = EventsErrorBody),
    ),
    security(("api_key" = []), ("bearer" = [])),
)]
pub async fn account_events(
    State(app): State<AppState>,
    auth: Authed<EventsError, Read>,
    Query(filter, _): Query<EventsFilter, EventsError>,
    headers: HeaderMap,
) -> Result<EventStream, EventsError> {
    let state = match filter.status.as_deref() {
        None => None,
        Some(name) => Some(parse_status(&app, name).ok_or_else(|| {
            EventsError::bad_request(format!(
                "status {name:?} is not a status of any dialect (e.g. PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED)"
            ))
        })?),
    };
    let follow = Follow {
        correlation_id: filter.session_id,
        state,
        since: last_event_time(&headers),
    };
    account_stream(app, auth.principal, follow, dialect_event)
        .await
        .map_err(EventsError::from)
}

/// Which of an account's jobs a stream follows.
#[derive(Debug, Default)]
pub struct Follow {
    /// Only jobs with this correlation id.
    pub correlation_id: Option<String>,
    /// Only jobs entering this state.
    pub state: Option<JobState>,
    /// The `Last-Event-ID` of a reconnecting client.
    pub since: Option<Millis>,
}

/// How a stream shows a job; None skips it.
pub type ShowJob = fn(&AppState, &Job) -> Option<Event>;

/// The event `/events` sends: the job in its own dialect's shape.
fn dialect_event(app: &AppState, job: &Job) -> Option<Event> {
    let shape = app.shape_of(job)?;
    Some(event(shape.as_ref(), job))
}

/// Every change of the account's jobs that `follow` lets through, each
/// shown by `show` (the web console shows jobs in a shape of its own). The
/// jobs in flight (or, reconnecting, changed since) come first.
pub async fn account_stream(
    app: AppState,
    principal: Principal,
    follow: Follow,
    show: ShowJob,
) -> Result<EventStream, EngineError> {
    // A session's subscriber is sent only that session's changes.
    let interest = match &follow.correlation_id {
        Some(session) => Interest::Session(principal.account_id, session.clone()),
        None => Interest::Account(principal.account_id),
    };
    let subscription = app.engine.subscribe(interest).await;
    let mut follower = AllJobs {
        app,
        principal,
        correlation_id: follow.correlation_id,
        state: follow.state,
        show,
        subscription,
        known: HashMap::new(),
        queued: Vec::new(),
        last_at: 0,
    };
    // A loss before anything is sent is caught up from here.
    follower.last_at = follow.since.unwrap_or_else(genq_engine::time::now_ms);
    follower.catch_up(follow.since).await?;
    Ok(sse(stream::unfold(follower, AllJobs::next).boxed()))
}

/// A status in any dialect's words (case aside).
fn parse_status(app: &AppState, name: &str) -> Option<JobState> {
    JobState::ALL.into_iter().find(|state| {
        state.as_str().eq_ignore_ascii_case(name)
            || app.shapes.values().any(|shape| {
                shape
                    .names(*state)
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name))
            })
    })
}

struct AllJobs {
    app: AppState,
    principal: Principal,
    correlation_id: Option<String>,
    state: Option<JobState>,
    show: ShowJob,
    subscription: genq_engine::events::Subscription,
    /// Jobs as last sent (or patched with progress), for telling a change
    /// from a repeat and for progress without a read. Finished jobs are kept
    /// a while, so that catching up after a loss does not send them again.
    known: HashMap<JobId, Job>,
    /// Jobs to send before waiting for the next notice.
    queued: Vec<Job>,
    /// The time of the latest change sent.
    last_at: Millis,
}

impl AllJobs {
    fn wanted(&self, correlation_id: Option<&str>, state: JobState) -> bool {
        self.correlation_id
            .as_deref()
            .is_none_or(|wanted| correlation_id == Some(wanted))
            && self.state.is_none_or(|wanted| state == wanted)
    }

    /// Queues the state of the jobs in flight and, with `since`, of those
    /// finished since then, oldest change first.
    async fn catch_up(&mut self, since: Option<Millis>) -> Result<(), EngineError> {
        let query = |state, in_flight_or_finished_since| JobQuery {
            state,
            correlation_id: self.correlation_id.clone(),
            in_flight_or_finished_since,
            limit: MOST_JOBS_AT_ONCE,
            ..Default::default()
        };
        let mut jobs = match since {
            Some(since) => {
                let q = query(self.state, Some(since));
                self.app.engine.jobs(&self.principal, &q).await?
            }
            None => {
                let mut jobs = Vec::new();
                for state in [JobState::Pending, JobState::Processing] {
                    if self.state.is_none_or(|wanted| wanted == state) {
                        let q = query(Some(state), None);
                        jobs.extend(self.app.engine.jobs(&self.principal, &q).await?);
                    }
                }
                jobs
            }
        };
        jobs.sort_by_key(|job| std::cmp::Reverse(job.updated_at));
        self.queued = jobs;
        Ok(())
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            // Queued jobs go out oldest change first (the vector is newest first).
            while let Some(job) = self.queued.pop() {
                if let Some(event) = self.show(job) {
                    return Some((Ok(event), self));
                }
            }
            match self.subscription.recv().await? {
                Notice::Changed(change) => {
                    if let Some(job) = self.changed(&change).await {
                        self.queued.push(job);
                    }
                }
                Notice::Missed => {
                    let since = self.last_at.saturating_sub(1_000);
                    if let Err(e) = self.catch_up(Some(since)).await {
                        tracing::warn!(error = %e, "catching up on missed job events failed");
                    }
                }
            }
        }
    }

    /// The job a change is about, as it now is, when the client follows it
    /// and something it shows changed.
    async fn changed(&mut self, change: &JobEvent) -> Option<Job> {
        if !self.wanted(change.correlation_id.as_deref(), change.state) {
            return None;
        }
        if let Some(job) = &change.job {
            return Some(Job::clone(job));
        }
        if let Some(known) = self.known.get(&change.job_id) {
            if (known.state, known.progress) == (change.state, change.progress)
                || change.at < known.updated_at
            {
                return None;
            }
            if known.state == JobState::Processing && change.state == JobState::Processing {
                let mut job = known.clone();
                job.progress = change.progress;
                job.updated_at = change.at;
                return Some(job);
            }
        }
        match self.app.engine.job(&self.principal, change.job_id).await {
            Ok(job) => Some(as_of(job, change)),
            Err(e) => {
                tracing::warn!(job = %change.job_id, error = %e, "reading a changed job failed");
                None
            }
        }
    }

    /// The event for `job`, unless the client already has this state of it.
    fn show(&mut self, job: Job) -> Option<Event> {
        if let Some(known) = self.known.get(&job.id) {
            if (known.state, known.progress) == (job.state, job.progress) {
                return None;
            }
        }
        let event = (self.show)(&self.app, &job)?;
        self.last_at = self.last_at.max(job.updated_at);
        self.known.insert(job.id, job);
        if self.known.len() > MOST_JOBS_AT_ONCE as usize {
            // Catching up looks a second back: older finished jobs can go.
            let horizon = self.last_at - FORGET_FINISHED_AFTER_MS;
            self.known
                .retain(|_, job| !job.state.is_terminal() || job.updated_at >= horizon);
        }
        Some(event)
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "genq",
        description = "A self-hosted media-generation job server. It speaks the Image+Audio Video API (`/api/…`), the Jobs v1 model gateway (`/v1/…`) and the Provider template API (`/jobs/v2`, `/api/provider/…`, `/auth/credits`); `GET /events` streams every job of the caller's account, whatever its dialect."
    ),
    paths(account_events, crate::shared::health::ready),
    components(schemas(EventsErrorBody))
)]
struct EventsApi;

/// The two ways every route takes a key, added to the merged document
/// (merging keeps the first document's security schemes only).
pub struct KeySchemes;

impl utoipa::Modify for KeySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// genq's own routes: the account-wide stream and readiness (rate
/// limited, refusing in genq's shape), liveness, this document and
/// output downloads (neither).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut doc = EventsApi::openapi();
    crate::shared::openapi::document_shared_refusals(
        &mut doc,
        &crate::shared::openapi::SharedRefusals {
            unauthorized: "No or an unknown key: {\"error\": {\"code\": \"UNAUTHORIZED\" or \"INVALID_API_KEY\", \"message\"}, \"requestId\"}",
            forbidden: "The key lacks the check_status scope: {\"error\": {\"code\": \"INSUFFICIENT_SCOPE\", \"message\"}, \"requestId\"}",
            bad_request: "A malformed query: {\"error\": {\"code\": \"INVALID_INPUT\", \"message\"}, \"requestId\"}",
            not_found: "Not found: {\"error\": {\"code\", \"message\"}, \"requestId\"}",
            rate_limited: "Rate limited: {\"error\": {\"code\": \"RATE_LIMITED\", \"message\"}, \"requestId\"}",
            error_schema: "EventsErrorBody",
        },
    );
    doc.merge(Unlimited::openapi());
    doc
}

/// The routes no limit counts.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    crate::shared::health::health,
    crate::shared::media::download,
    crate::openapi_document
))]
struct Unlimited;

#[cfg(test)]
mod tests {
    use super::*;
    use genq_engine::{JobFailure, JobOutput, OutputKind, OutputRole};

    fn finished() -> Job {
        Job {
            id: JobId::new(),
            account_id: Default::default(),
            api_key_id: Default::default(),
            kind: "k".into(),
            dialect: "v1".into(),
            input: serde_json::json!({}),
            input_files: vec![],
            state: JobState::Completed,
            progress: 100,
            outputs: vec![JobOutput {
                name: "video.mp4".into(),
                role: OutputRole::Main,
                kind: OutputKind::Video,
                content_type: "video/mp4".into(),
                size: 1,
                details: None,
            }],
            failure: Some(JobFailure::new("X", "x")),
            retries: 0,
            webhook_url: None,
            model: None,
            cost_micro_cents: 0,
            media_token: "m".into(),
            share_token: "s".into(),
            correlation_id: None,
            priority: 0,
            timeout_ms: None,
            deadline_at: None,
            inputs_deleted_at: None,
            outputs_deleted_at: None,
            created_at: 1,
            updated_at: 30,
            started_at: Some(10),
            completed_at: Some(30),
        }
    }

    #[test]
    fn a_change_is_shown_as_it_was_even_when_read_later() {
        let job = finished();
        let queued = JobEvent {
            state: JobState::Pending,
            progress: 0,
            at: 1,
            ..JobEvent::of(&job)
        };
        let then = as_of(job.clone(), &queued);
        assert_eq!(
            (then.state, then.progress, then.updated_at),
            (JobState::Pending, 0, 1)
        );
        assert!(then.outputs.is_empty() && then.failure.is_none());
        assert_eq!((then.started_at, then.completed_at), (None, None));
        let running = JobEvent {
            state: JobState::Processing,
            progress: 40,
            at: 20,
            ..JobEvent::of(&job)
        };
        let then = as_of(job.clone(), &running);
        assert_eq!(
            (then.state, then.progress, then.started_at),
            (JobState::Processing, 40, Some(10))
        );
        // A read no newer than the change is the change.
        let done = JobEvent::of(&job);
        assert_eq!(as_of(job.clone(), &done), job);
    }
}
