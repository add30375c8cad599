//! API key extraction. Keys come in `X-API-Key` or `Authorization: Bearer`.

use axum::http::{header, HeaderMap};
use genq_engine::{Engine, EngineError, Principal};

#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("missing API key")]
    Missing,
    #[error("API key not recognized or revoked")]
    Invalid,
    #[error(transparent)]
    Engine(#[from] EngineError),
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

pub async fn authenticate(engine: &Engine, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
    let key = presented_key(headers).ok_or(AuthFailure::Missing)?;
    engine.authenticate(key).await?.ok_or(AuthFailure::Invalid)
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
