//! Signing in and out, and the [`Signed`] extractor every page takes.
//!
//! The API key is exchanged for a session (docs/console.md): the browser
//! keeps only an opaque token in an HttpOnly, SameSite=Strict cookie. Pages
//! carry the session's CSRF token for the script's API calls (header) and
//! the console's own forms (field `csrf`).

use askama::Template;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use genq_dialects::shared::auth::{constant_time_eq, session_token, SESSION_COOKIE};
use genq_engine::account::session_csrf_token;
use genq_engine::Principal;
use serde::Deserialize;

use crate::error::PageError;
use crate::view::Layout;
use crate::Console;

/// A signed-in browser: whom it acts as, and its session's CSRF token.
pub(crate) struct Signed {
    pub principal: Principal,
    pub csrf: String,
    token: String,
}

impl Signed {
    /// The page frame, with `current` marked in the navigation.
    pub fn layout(&self, title: impl Into<String>, current: &'static str) -> Layout {
        Layout::new(title.into(), current, self.csrf.clone())
    }

    /// Refuses a console form post that lacks the session's CSRF token.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(PageError::Forbidden)
        }
    }
}

impl FromRequestParts<Console> for Signed {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, PageError> {
        if !parts.method.is_safe() && !same_origin(&parts.headers) {
            return Err(PageError::Forbidden);
        }
        let Some(token) = session_token(&parts.headers) else {
            return Err(PageError::SignIn);
        };
        match console.app.engine.session_principal(&token).await? {
            Some(principal) => Ok(Signed {
                principal,
                csrf: session_csrf_token(&token),
                token,
            }),
            None => Err(PageError::SignIn),
        }
    }
}

/// Whether a state-changing request comes from a page of this server: its
/// `Origin`, when the browser sends one, names the host it was sent to.
/// (SameSite=Strict already keeps the cookie off other sites' requests;
/// this also stops another site from signing a browser in to its account.)
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let authority = match (origin.host_str(), origin.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => return false,
            };
            authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    layout: Layout,
    error: Option<&'static str>,
}

fn sign_in_form(error: Option<&'static str>) -> Result<String, PageError> {
    let page = SignInPage {
        layout: Layout::signed_out("Sign in"),
        error,
    };
    Ok(page.render()?)
}

/// `/console`: the Jobs page when signed in, else the sign-in form.
pub(crate) async fn home(State(console): State<Console>, headers: HeaderMap) -> Response {
    let signed_in = match session_token(&headers) {
        Some(token) => matches!(
            console.app.engine.session_principal(&token).await,
            Ok(Some(_))
        ),
        None => false,
    };
    if signed_in {
        Redirect::to("/console/jobs").into_response()
    } else {
        Redirect::to("/console/sign-in").into_response()
    }
}

pub(crate) async fn sign_in_page() -> Result<Response, PageError> {
    Ok(crate::view::html(StatusCode::OK, sign_in_form(None)?))
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    api_key: String,
}

pub(crate) async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    if !same_origin(&headers) {
        return Err(PageError::Forbidden);
    }
    let key = form.api_key.trim();
    let started = if key.is_empty() {
        None
    } else {
        console
            .app
            .engine
            .start_session(key, console.settings.session_ttl)
            .await?
    };
    let Some((token, principal)) = started else {
        let page = sign_in_form(Some("That API key is not valid. Check it and try again."))?;
        return Ok(crate::view::html(StatusCode::UNAUTHORIZED, page));
    };
    tracing::info!(account = %principal.account_id, key = %principal.key_id, "console sign-in");
    let secure = console.app.public_url.starts_with("https://");
    let cookie = Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(
            console.settings.session_ttl.as_secs() as i64,
        ))
        .build();
    Ok(with_cookie(Redirect::to("/console/jobs"), &cookie))
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_out(
    State(console): State<Console>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    console.app.engine.end_session(&signed.token).await?;
    let cookie = Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    Ok(with_cookie(Redirect::to("/console/sign-in"), &cookie))
}

fn with_cookie(redirect: Redirect, cookie: &Cookie<'_>) -> Response {
    let mut response = redirect.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The `csrf` field every console form posts.
pub(crate) type CsrfOnly = Form<CsrfForm>;

impl CsrfForm {
    pub fn token(&self) -> &str {
        &self.csrf
    }
}
