//! The seam every dialect plugs into: a [`Dialect`] gives its name (the
//! value its jobs carry), its routes (with its submissions marked), its
//! OpenAPI document, its error shape, how it shows a job (status names and
//! the status body, which is also its webhook body and its events' data),
//! its scopes and its own state. `lib.rs` mounts each with one line.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use genq_engine::{Job, JobState};

use crate::shared::auth::Rejects;
use crate::shared::idempotency::idempotency;
use crate::shared::rate_limit::{rate_limit, RateLimits, RouteKind};
use crate::shared::Refusal;
use crate::{AppState, DialectSettings};

pub trait Dialect: Sized + Send + Sync + 'static {
    /// The value the jobs it accepts carry in `dialect`.
    const NAME: &'static str;
    /// The scopes its routes check (see `shared::auth`).
    const SCOPES: &'static [&'static str];
    /// The path prefixes it owns (whole segments: `/v1` owns `/v1/…`):
    /// a request there that matches none of its routes is refused in its
    /// shape. The longest prefix of any dialect wins.
    const PREFIXES: &'static [&'static str];
    /// Its error shape: every refusal on its routes comes out in it.
    type Error: Rejects;
    /// What its handlers need beyond [`AppState`], made once at start.
    type State: Send + Sync + 'static;

    fn state(settings: &DialectSettings) -> Self::State;
    /// Its routes; job submissions go in with [`Routes::submit`].
    fn routes(routes: Routes<Self>, settings: &DialectSettings) -> Routes<Self>;
    fn openapi() -> utoipa::openapi::OpenApi;
    /// How it shows a job, with links under `public_url`.
    fn shape(public_url: Arc<str>, settings: &DialectSettings) -> Arc<dyn JobShape>;
}

/// How a dialect shows a job.
pub trait JobShape: Send + Sync + 'static {
    /// Its name for a state (`pending`, `PENDING`, …): an event's `event:`.
    fn status(&self, state: JobState) -> &'static str;
    /// Its status endpoint's body for the job: also its webhook body and
    /// an event's `data:`.
    fn body(&self, job: &Job) -> serde_json::Value;
    /// Its name for the job's status now, where that depends on more than
    /// the state (the Provider's STARTED and IN_PROGRESS).
    fn status_of(&self, job: &Job) -> &'static str {
        self.status(job.state)
    }
    /// How far its owner may cancel a job (the console offers "Cancel"
    /// accordingly): by default a running job too.
    fn cancel_mode(&self) -> genq_engine::db::CancelMode {
        genq_engine::db::CancelMode::EvenIfRunning
    }
    /// Every name it has for `state` (what a `?status=` filter accepts).
    fn names(&self, state: JobState) -> Vec<&'static str> {
        vec![self.status(state)]
    }
}

/// A dialect's handlers' state: the shared state and its own.
pub struct Ctx<D: Dialect> {
    pub app: AppState,
    pub own: Arc<D::State>,
}

impl<D: Dialect> Clone for Ctx<D> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            own: self.own.clone(),
        }
    }
}

impl<D: Dialect> FromRef<Ctx<D>> for AppState {
    fn from_ref(ctx: &Ctx<D>) -> AppState {
        ctx.app.clone()
    }
}

/// A dialect's routes as it lists them. Each is rate limited per client IP
/// (a submission also against the submission limit), refusing in the
/// dialect's error shape; the layers go on when the dialect is mounted, so
/// the list can also be read without a server (`crate::mounted_paths`).
pub struct Routes<D: Dialect> {
    entries: Vec<(String, MethodRouter<Ctx<D>>, RouteKind)>,
}

impl<D: Dialect> Routes<D> {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    pub fn route(self, path: &str, handler: MethodRouter<Ctx<D>>) -> Self {
        self.add(path, handler, RouteKind::General)
    }

    /// A route that creates jobs: it also takes an `Idempotency-Key`
    /// (`shared::idempotency`; its handler submits with `KeyInFlight`).
    pub fn submit(self, path: &str, handler: MethodRouter<Ctx<D>>) -> Self {
        self.add(path, handler, RouteKind::Submission)
    }

    fn add(mut self, path: &str, handler: MethodRouter<Ctx<D>>, kind: RouteKind) -> Self {
        self.entries.push((path.to_owned(), handler, kind));
        self
    }

    /// The router, each route behind its layers.
    fn into_router(self, app: &AppState, limits: &RateLimits) -> Router<Ctx<D>> {
        self.entries
            .into_iter()
            .fold(Router::new(), |router, (path, handler, kind)| {
                let handler = match kind {
                    RouteKind::Submission => {
                        handler.layer(from_fn_with_state(app.clone(), idempotency::<D::Error>))
                    }
                    RouteKind::General => handler,
                };
                let limited = handler.layer(from_fn_with_state(
                    (limits.clone(), kind),
                    rate_limit::<D::Error>,
                ));
                router.route(&path, limited)
            })
    }
}

/// What `lib.rs` needs of a dialect, without its types (so that the
/// dialects can sit in one list).
pub(crate) trait Registered: Send + Sync {
    fn name(&self) -> &'static str;
    fn scopes(&self) -> &'static [&'static str];
    fn prefixes(&self) -> &'static [&'static str];
    /// Renders a refusal in its shape.
    fn refuse(&self) -> fn(Refusal) -> Response;
    fn router(&self, app: &AppState, settings: &DialectSettings, limits: &RateLimits) -> Router;
    /// The paths its routes are mounted at (axum's syntax).
    fn paths(&self, settings: &DialectSettings) -> Vec<String>;
    fn openapi(&self) -> utoipa::openapi::OpenApi;
    fn shape(&self, public_url: Arc<str>, settings: &DialectSettings) -> Arc<dyn JobShape>;
}

struct Mounted<D>(PhantomData<fn() -> D>);

/// A dialect, ready for the list in `lib.rs`.
pub(crate) fn mount<D: Dialect>() -> Box<dyn Registered> {
    Box::new(Mounted::<D>(PhantomData))
}

impl<D: Dialect> Registered for Mounted<D> {
    fn name(&self) -> &'static str {
        D::NAME
    }

    fn scopes(&self) -> &'static [&'static str] {
        D::SCOPES
    }

    fn prefixes(&self) -> &'static [&'static str] {
        D::PREFIXES
    }

    fn refuse(&self) -> fn(Refusal) -> Response {
        |refusal| D::Error::from(refusal).into_response()
    }

    fn router(&self, app: &AppState, settings: &DialectSettings, limits: &RateLimits) -> Router {
        D::routes(Routes::new(), settings)
            .into_router(app, limits)
            // axum's own 405 has an empty body; the Allow header stays.
            .method_not_allowed_fallback(|| async { D::Error::from(Refusal::MethodNotAllowed) })
            // A route's own limit (the video API's uploads) is set inside
            // this one, and wins.
            .layer(DefaultBodyLimit::max(crate::shared::MAX_JSON_BODY_BYTES))
            .with_state(Ctx::<D> {
                app: app.clone(),
                own: Arc::new(D::state(settings)),
            })
    }

    fn paths(&self, settings: &DialectSettings) -> Vec<String> {
        let routes = D::routes(Routes::new(), settings);
        routes.entries.into_iter().map(|(path, ..)| path).collect()
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        D::openapi()
    }

    fn shape(&self, public_url: Arc<str>, settings: &DialectSettings) -> Arc<dyn JobShape> {
        D::shape(public_url, settings)
    }
}
