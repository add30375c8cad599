//! API keys and scopes. A key comes in `X-API-Key` or `Authorization:
//! Bearer`; [`Authed`] checks it, and the scope the route needs, before the
//! handler runs, refusing in the route's dialect's error shape.
//!
//! A web console session (the `genq_session` cookie, see docs/console.md)
//! stands in for the key it was opened with. The cookie is SameSite=Strict;
//! a request it authenticates that changes state must also carry the
//! session's CSRF token in `X-CSRF-Token`, or it counts as unauthenticated.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::response::IntoResponse;
use genq_engine::{EngineError, Principal};

use super::Refusal;
use crate::AppState;

/// The cookie a signed-in console session travels in.
pub const SESSION_COOKIE: &str = "genq_session";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// May create and cancel jobs.
pub const SUBMIT_JOB: &str = "submit_job";
/// May read jobs (status, lists, events, webhook deliveries).
pub const CHECK_STATUS: &str = "check_status";

/// The scope a route needs, as a type: `Authed<E, Submit>`.
pub trait Scope: Send + Sync + 'static {
    /// `None`: any valid key will do.
    const REQUIRED: Option<&'static str>;
}

/// Routes that create or cancel jobs.
pub struct Submit;
impl Scope for Submit {
    const REQUIRED: Option<&'static str> = Some(SUBMIT_JOB);
}

/// Routes that read jobs.
pub struct Read;
impl Scope for Read {
    const REQUIRED: Option<&'static str> = Some(CHECK_STATUS);
}

/// Routes any valid key may call (the model catalog, the account).
pub struct AnyScope;
impl Scope for AnyScope {
    const REQUIRED: Option<&'static str> = None;
}

/// An error type a route can refuse with: its dialect's.
pub trait Rejects: From<Refusal> + From<EngineError> + IntoResponse + Send + 'static {}
impl<E: From<Refusal> + From<EngineError> + IntoResponse + Send + 'static> Rejects for E {}

/// The caller, once its key and the route's scope `S` are checked; any
/// refusal is an `E`.
pub struct Authed<E, S = AnyScope> {
    pub principal: Principal,
    _route: PhantomData<fn() -> (E, S)>,
}

impl<E, S, St> FromRequestParts<St> for Authed<E, S>
where
    E: Rejects,
    S: Scope,
    AppState: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, E> {
        let principal = match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(principal)) => principal.clone(),
            None => caller::<E>(&AppState::from_ref(state), parts).await?,
        };
        if let Some(scope) = S::REQUIRED {
            if !principal.has_scope(scope) {
                return Err(Refusal::MissingScope(scope).into());
            }
        }
        Ok(Self {
            principal,
            _route: PhantomData,
        })
    }
}

/// The caller a layer before the handler already authenticated (the
/// idempotency layer), so that [`Authed`] does not look the key up again.
/// Only server code puts it in a request's extensions.
#[derive(Clone)]
pub struct Authenticated(pub Principal);

/// The caller of a request, by its key or its console session (with the
/// CSRF check on state changes); not yet checked for a scope.
pub async fn caller<E: Rejects>(app: &AppState, parts: &Parts) -> Result<Principal, E> {
    match presented_key(&parts.headers) {
        Some(key) => app.engine.authenticate(key).await?,
        None => {
            let session = session_token(&parts.headers).ok_or(Refusal::MissingKey)?;
            if !csrf_safe(&parts.method, &parts.headers, &session) {
                return Err(Refusal::InvalidKey.into());
            }
            app.engine.session_principal(&session).await?
        }
    }
    .ok_or_else(|| Refusal::InvalidKey.into())
}

/// The console session token a request's cookies carry, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether a request authenticated by the session `token` may go ahead:
/// reads may; anything else only with the session's CSRF token.
fn csrf_safe(method: &Method, headers: &HeaderMap, token: &str) -> bool {
    if method.is_safe() {
        return true;
    }
    let expected = genq_engine::account::session_csrf_token(token);
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| constant_time_eq(sent.trim().as_bytes(), expected.as_bytes()))
}

/// Compares without stopping at the first difference, so timing does not
/// tell an attacker how much of a token it guessed.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The raw key a request carries, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        let key = key.trim();
        if !key.is_empty() {
            return Some(key);
        }
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented_key(&headers), Some("abc"));
        headers.insert("x-api-key", HeaderValue::from_static("xyz"));
        assert_eq!(presented_key(&headers), Some("xyz"));
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&basic), None);
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        assert_eq!(session_token(&headers), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; genq_session_x=no"),
        );
        assert_eq!(session_token(&headers), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("b=2; genq_session=tok; c=3"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("tok"));
    }

    #[test]
    fn state_changes_need_the_csrf_token() {
        let token = "session-token";
        let mut headers = HeaderMap::new();
        assert!(csrf_safe(&Method::GET, &headers, token));
        assert!(!csrf_safe(&Method::POST, &headers, token));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("wrong"));
        assert!(!csrf_safe(&Method::DELETE, &headers, token));
        let right = genq_engine::account::session_csrf_token(token);
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&right).unwrap());
        assert!(csrf_safe(&Method::POST, &headers, token));
        assert!(!csrf_safe(&Method::POST, &headers, "another-session"));
    }
}
