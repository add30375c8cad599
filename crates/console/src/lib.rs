//! genq's web console (docs/console.md): server-rendered pages (askama,
//! escaped by default) and one small script, embedded in the binary. A
//! signed-in browser holds a session cookie standing for an API key; the
//! pages read the engine directly, and the script submits through the
//! dialects' own routes with that cookie, so the console can do nothing the
//! API cannot.

mod assets;
mod error;
mod events;
mod openapi;
mod pages;
mod schema_form;
mod session;
mod share;
mod view;

pub use openapi::{openapi, ROUTES};

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::Redirect;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use genq_catalog::Catalog;
use genq_dialects::AppState;
use tower_http::compression::predicate::{NotForContentType, Predicate};
use tower_http::compression::{CompressionLayer, DefaultPredicate};
use tower_http::set_header::SetResponseHeaderLayer;

/// What the console takes from the server's settings.
pub struct ConsoleSettings {
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
    /// The models the Models page offers.
    pub catalog: Arc<Catalog>,
}

/// What every console handler can reach.
#[derive(Clone)]
pub(crate) struct Console {
    pub app: AppState,
    pub settings: Arc<ConsoleSettings>,
}

/// Every page may load only genq's own script, styles, pictures and media;
/// outputs previewed as blobs (the template preview) are allowed as images.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; \
    frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The console's routes (and the share page, drawn with the same
/// templates), to merge into the application.
pub fn routes(app: AppState, settings: ConsoleSettings) -> Router {
    let console = Console {
        app,
        settings: Arc::new(settings),
    };
    // The list openapi::ROUTES mirrors (documented or not): checked here,
    // so that no route escapes the decision.
    let table: Vec<(&str, MethodRouter<Console>)> = vec![
        ("/", get(|| async { Redirect::to("/console") })),
        ("/console", get(session::home)),
        (
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        ),
        ("/console/sign-out", post(session::sign_out)),
        ("/console/jobs", get(pages::jobs::list)),
        ("/console/jobs/{id}", get(pages::job::page)),
        ("/console/jobs/{id}/cancel", post(pages::job::cancel)),
        ("/console/jobs/{id}/redeliver", post(pages::job::redeliver)),
        (
            "/console/jobs/{id}/inputs/{name}",
            get(pages::job::input_file),
        ),
        ("/console/events", get(events::stream)),
        ("/console/new-video", get(pages::submit::new_video)),
        ("/console/models", get(pages::submit::models)),
        ("/console/models/{*slug}", get(pages::submit::model_form)),
        ("/console/projects", get(pages::projects::list)),
        ("/console/projects/new", get(pages::projects::new)),
        ("/console/projects/{id}", get(pages::projects::edit)),
        ("/console/projects/{id}/use", get(pages::projects::use_form)),
        ("/console/account", get(pages::account::page)),
        ("/console/account/keys", post(pages::account::create_key)),
        (
            "/console/account/keys/{id}/revoke",
            post(pages::account::revoke_key),
        ),
        ("/console/assets/{name}", get(assets::serve)),
        ("/share/{token}", get(share::page)),
    ];
    let listed: Vec<&str> = ROUTES.iter().map(|(path, _)| *path).collect();
    let mounted: Vec<&str> = table.iter().map(|(path, _)| *path).collect();
    assert_eq!(mounted, listed, "every console route is in openapi::ROUTES");
    let pages = table
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
        .with_state(console);
    pages
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // Pages, script and styles; not an uploaded input's audio, which is
        // compressed already and read in ranges while it plays.
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(NotForContentType::const_new("audio/"))),
        )
}
