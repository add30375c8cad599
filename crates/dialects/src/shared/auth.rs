//! API keys and scopes. A key comes in `X-API-Key` or `Authorization:
//! Bearer`; [`Authed`] checks it, and the scope the route needs, before the
//! handler runs, refusing in the route's dialect's error shape.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use genq_engine::{EngineError, Principal};

use super::Refusal;
use crate::AppState;

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
        let app = AppState::from_ref(state);
        let key = presented_key(&parts.headers).ok_or(Refusal::MissingKey)?;
        let principal = app
            .engine
            .authenticate(key)
            .await?
            .ok_or(Refusal::InvalidKey)?;
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
}
