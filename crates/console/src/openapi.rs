//! The console's part of `/openapi.json`: what a program may call — its
//! form posts (sign-in and out, cancel, webhook redelivery, keys), its
//! event stream and a job's uploaded inputs. Its HTML pages (and their
//! script and styles) are for a browser and are left out; [`ROUTES`] says
//! which is which, and a test holds the two to the router.
//!
//! The functions below only carry the annotations: the handlers are in
//! `session.rs`, `pages/` and `events.rs`.

#![allow(dead_code)]

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::OpenApi;

/// Every route the console mounts, and the methods of it the OpenAPI
/// document describes (none: an HTML page or its assets, for a browser;
/// `/console/sign-in` is a page for GET and the API for POST).
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/", &[]),
    ("/console", &[]),
    ("/console/sign-in", &["post"]),
    ("/console/sign-out", &["post"]),
    ("/console/jobs", &[]),
    ("/console/jobs/{id}", &[]),
    ("/console/jobs/{id}/cancel", &["post"]),
    ("/console/jobs/{id}/redeliver", &["post"]),
    ("/console/jobs/{id}/inputs/{name}", &["get"]),
    ("/console/events", &["get"]),
    ("/console/new-video", &[]),
    ("/console/models", &[]),
    ("/console/models/{*slug}", &[]),
    ("/console/projects", &[]),
    ("/console/projects/new", &[]),
    ("/console/projects/{id}", &[]),
    ("/console/projects/{id}/use", &[]),
    ("/console/account", &[]),
    ("/console/account/keys", &["post"]),
    ("/console/account/keys/{id}/revoke", &["post"]),
    ("/console/assets/{name}", &[]),
    ("/share/{token}", &["get"]),
];

#[derive(OpenApi)]
#[openapi(
    paths(
        sign_in, sign_out, cancel, redeliver, input_file, events, create_key, revoke_key, share
    ),
    components(schemas(SignInForm, CsrfForm, NewKeyForm))
)]
struct ConsoleApi;

/// The console's document, with the session cookie as a security scheme.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ConsoleApi::openapi();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "console_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                genq_dialects::shared::auth::SESSION_COOKIE,
                "The console's session cookie, set by POST /console/sign-in (docs/console.md). It also stands for its key on every dialect's route (with X-CSRF-Token on a state change)",
            ))),
        );
    doc
}

#[derive(utoipa::ToSchema)]
struct SignInForm {
    /// An API key; exchanged for a session.
    api_key: String,
}

#[derive(utoipa::ToSchema)]
struct CsrfForm {
    /// The session's CSRF token (the page's `<meta name="csrf-token">`).
    csrf: String,
}

#[derive(utoipa::ToSchema)]
struct NewKeyForm {
    /// The session's CSRF token.
    csrf: String,
    /// A scope for the new key (`submit_job`, `check_status`); repeated for each.
    scope: Vec<String>,
}

/// Sign in: an API key exchanged for a session cookie.
#[utoipa::path(post, path = "/console/sign-in",
    request_body(content = SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: `Set-Cookie: genq_session=…` (HttpOnly, SameSite=Strict), on to /console/jobs"),
        (status = 401, content_type = "text/html", description = "The sign-in page again, saying the key is not valid"),
        (status = 403, content_type = "text/html", description = "The request's Origin is not this server"),
        (status = 415, content_type = "text/plain", description = "Not a form body"),
        (status = 422, content_type = "text/plain", description = "A form body that cannot be read"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ))]
fn sign_in() {}

/// Sign out: the session ends at once.
#[utoipa::path(post, path = "/console/sign-out",
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out (the cookie cleared), or not signed in: on to /console/sign-in"),
        (status = 403, content_type = "text/html", description = "Without the session's CSRF token, or from another origin"),
        (status = 415, content_type = "text/plain", description = "Not a form body"),
        (status = 422, content_type = "text/plain", description = "A form body that cannot be read"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ),
    security(("console_session" = [])))]
fn sign_out() {}

/// Cancel one of the account's jobs, as far as its dialect allows.
#[utoipa::path(post, path = "/console/jobs/{id}/cancel",
    params(("id" = String, Path, description = "The job's id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Cancelled: on to the job's page; or not signed in: on to /console/sign-in"),
        (status = 400, content_type = "text/html", description = "The job can no longer be cancelled"),
        (status = 403, content_type = "text/html", description = "Without the session's CSRF token, or from another origin"),
        (status = 404, content_type = "text/html", description = "No such job of the account's"),
        (status = 415, content_type = "text/plain", description = "Not a form body"),
        (status = 422, content_type = "text/plain", description = "A form body that cannot be read"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ),
    security(("console_session" = [])))]
fn cancel() {}

/// Send a job's webhook again now (a genq addition), under the same
/// `webhook-id`.
#[utoipa::path(post, path = "/console/jobs/{id}/redeliver",
    params(("id" = String, Path, description = "The job's id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Queued: on to the job's webhooks; or not signed in: on to /console/sign-in"),
        (status = 400, content_type = "text/html", description = "The job has no delivery to send again yet, or one is being sent"),
        (status = 403, content_type = "text/html", description = "Without the session's CSRF token, or from another origin"),
        (status = 404, content_type = "text/html", description = "No such job of the account's"),
        (status = 415, content_type = "text/plain", description = "Not a form body"),
        (status = 422, content_type = "text/plain", description = "A form body that cannot be read"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ),
    security(("console_session" = [])))]
fn redeliver() {}

/// One of a job's uploaded inputs, for its owner.
#[utoipa::path(get, path = "/console/jobs/{id}/inputs/{name}",
    params(("id" = String, Path, description = "The job's id"),
        ("name" = String, Path, description = "The input's name (`image`, `audio`, …)")),
    responses(
        (status = 200, content_type = "*/*", description = "The file, as the media type its name says (`Content-Security-Policy: sandbox`)"),
        (status = 206, content_type = "*/*", description = "The range asked for"),
        (status = 303, description = "Not signed in: on to /console/sign-in"),
        (status = 304, description = "Not modified"),
        (status = 404, content_type = "text/html", description = "No such job or input of the account's"),
        (status = 410, content_type = "text/html", description = "Deleted after the input retention period"),
        (status = 416, description = "The range starts past the end"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ),
    security(("console_session" = [])))]
fn input_file() {}

/// Every change of any of the account's jobs (Server-Sent Events).
#[utoipa::path(get, path = "/console/events",
    params(("Last-Event-ID" = Option<String>, Header, description = "The last event's id: the jobs changed since are sent again first")),
    responses(
        (status = 200, content_type = "text/event-stream", description = "One `job` event per change: `data:` {\"id\", \"dialect\", \"status\" (in the dialect's words), \"state\", \"progress\", \"updatedAt\", \"error\"}; `: keep-alive` every 15 s"),
        (status = 303, description = "Not signed in: on to /console/sign-in"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ),
    security(("console_session" = [])))]
fn events() {}

/// Make a key of the account's, holding scopes the session's key holds.
#[utoipa::path(post, path = "/console/account/keys",
    request_body(content = NewKeyForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, content_type = "text/html", description = "The Account page, showing the new key once"),
        (status = 303, description = "Not signed in: on to /console/sign-in"),
        (status = 400, content_type = "text/html", description = "No scope chosen, or one the session's key does not hold"),
        (status = 403, content_type = "text/html", description = "Without the session's CSRF token, or from another origin"),
        (status = 415, content_type = "text/plain", description = "Not a form body"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ),
    security(("console_session" = [])))]
fn create_key() {}

/// Revoke one of the account's keys (its sessions end too).
#[utoipa::path(post, path = "/console/account/keys/{id}/revoke",
    params(("id" = String, Path, description = "The key's id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Revoked: on to the Account page; or not signed in: on to /console/sign-in"),
        (status = 403, content_type = "text/html", description = "Without the session's CSRF token, or from another origin"),
        (status = 404, content_type = "text/html", description = "No such key of the account's"),
        (status = 415, content_type = "text/plain", description = "Not a form body"),
        (status = 422, content_type = "text/plain", description = "A form body that cannot be read"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ),
    security(("console_session" = [])))]
fn revoke_key() {}

/// A completed video's public page (no key: the token is the key): an
/// HTML5 player with OpenGraph tags.
#[utoipa::path(get, path = "/share/{token}",
    params(("token" = String, Path, description = "The job's share token, from `outputShareLink`")),
    responses(
        (status = 200, content_type = "text/html", description = "The page"),
        (status = 404, content_type = "text/html", description = "No such video"),
        (status = 410, content_type = "text/html", description = "Deleted after the output retention period"),
        (status = 500, content_type = "text/html", description = "Internal error (logged)"),
    ))]
fn share() {}
