//! Typed request parts that refuse in the route's dialect's shape: a query
//! string ([`Query`]), a JSON body ([`Json`], or kept as text: [`JsonText`])
//! and an id in the path ([`JobPath`], [`PathId`]). A dialect names its error type once, in aliases.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use genq_engine::JobId;
use serde::de::DeserializeOwned;

use super::Refusal;

/// A query string parsed as `T`; a value that does not parse refuses with
/// its own message (`limit must be an integer from 1 to 100`).
pub struct Query<T, E>(pub T, pub PhantomData<fn() -> E>);

impl<T, E, S> FromRequestParts<S> for Query<T, E>
where
    T: DeserializeOwned,
    E: From<Refusal> + IntoResponse,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, E> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(|value| Query(value, PhantomData))
            .map_err(|e| Refusal::BadRequest(e.to_string()).into())
    }
}

/// A JSON body parsed as `T`.
pub struct Json<T, E>(pub T, pub PhantomData<fn() -> E>);

impl<T, E, S> FromRequest<S> for Json<T, E>
where
    T: DeserializeOwned,
    E: From<Refusal> + IntoResponse,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request(request: Request, state: &S) -> Result<Self, E> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value, PhantomData)),
            Err(rejection) => Err(body_refusal(rejection.status(), rejection.body_text()).into()),
        }
    }
}

/// A body that could not be read or parsed: over the limit is a 413 (axum
/// words it as "Failed to buffer the request body").
fn body_refusal(status: axum::http::StatusCode, text: String) -> Refusal {
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return Refusal::TooLarge(format!(
            "The request body is larger than {} MB",
            super::MAX_JSON_BODY_BYTES / (1024 * 1024)
        ));
    }
    Refusal::BadRequest(json_error(text))
}

/// serde_json's words for a `\uD800`–`\uDBFF` escape not followed by its
/// low half ("unexpected end of hex escape") name the wrong fault.
fn json_error(text: String) -> String {
    if text.contains("unexpected end of hex escape") {
        return text.replace(
            "unexpected end of hex escape",
            "lone surrogate in a \\u escape (a \\uD800–\\uDBFF escape must be followed by a \\uDC00–\\uDFFF one)",
        );
    }
    text
}

/// The `{job_id}` of the path. A malformed id names no job of the
/// caller's: not found.
pub struct JobPath<E>(pub JobId, pub PhantomData<fn() -> E>);

impl<E, S> FromRequestParts<S> for JobPath<E>
where
    E: From<Refusal> + IntoResponse,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        let PathId(id, _) = PathId::<JobId, E>::from_request_parts(parts, state).await?;
        Ok(JobPath(id, PhantomData))
    }
}

/// A JSON body kept as its text (for documents whose key order matters,
/// which a parsed `serde_json::Value` would sort); refused unless it is
/// well-formed JSON.
pub struct JsonText<E>(pub Bytes, pub PhantomData<fn() -> E>);

impl<E, S> FromRequest<S> for JsonText<E>
where
    E: From<Refusal> + IntoResponse,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request(request: Request, state: &S) -> Result<Self, E> {
        let is_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().unwrap_or("").trim().ends_with("json"));
        if !is_json {
            return Err(Refusal::BadRequest(
                "Expected request with `Content-Type: application/json`".into(),
            )
            .into());
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| body_refusal(rejection.status(), rejection.body_text()))?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| {
            Refusal::BadRequest(format!(
                "The body is not valid JSON: {}",
                json_error(e.to_string())
            ))
        })?;
        Ok(JsonText(body, PhantomData))
    }
}

/// An id in the path (`{project_id}`, …) of a type that parses from text.
/// A malformed id names nothing of the caller's: not found.
pub struct PathId<T, E>(pub T, pub PhantomData<fn() -> E>);

impl<T, E, S> FromRequestParts<S> for PathId<T, E>
where
    T: std::str::FromStr,
    E: From<Refusal> + IntoResponse,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, E> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| E::from(Refusal::NotFound))?;
        raw.parse()
            .map(|id| PathId(id, PhantomData))
            .map_err(|_| Refusal::NotFound.into())
    }
}

/// Query values that refuse with a message of their own.
pub mod values {
    use serde::Deserialize;

    /// The `limit` every list accepts: 1–100, 20 when absent.
    #[derive(Clone, Copy, Debug, Deserialize)]
    #[serde(try_from = "String")]
    pub struct PageLimit(pub u32);

    impl Default for PageLimit {
        fn default() -> Self {
            PageLimit(20)
        }
    }

    impl TryFrom<String> for PageLimit {
        type Error = &'static str;
        fn try_from(raw: String) -> Result<Self, Self::Error> {
            raw.parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .map(PageLimit)
                .ok_or("limit must be an integer from 1 to 100")
        }
    }

    /// An empty query value (`cursor=`) is the same as an absent one.
    pub fn non_empty<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: serde::Deserializer<'de>,
        T: TryFrom<String>,
        T::Error: std::fmt::Display,
    {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(raw) if raw.is_empty() => Ok(None),
            Some(raw) => T::try_from(raw).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::values::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Page {
        #[serde(default)]
        limit: PageLimit,
        #[serde(default, deserialize_with = "non_empty")]
        cursor: Option<Cursor>,
    }

    #[derive(Debug)]
    struct Cursor(String);

    impl TryFrom<String> for Cursor {
        type Error = &'static str;
        fn try_from(raw: String) -> Result<Self, Self::Error> {
            raw.starts_with('c')
                .then_some(Cursor(raw))
                .ok_or("Invalid cursor")
        }
    }

    fn parse(query: &str) -> Result<Page, String> {
        serde_urlencoded::from_str(query).map_err(|e| e.to_string())
    }

    #[test]
    fn query_values_refuse_with_their_own_messages() {
        let page = parse("").unwrap();
        assert_eq!((page.limit.0, page.cursor.is_none()), (20, true));
        let page = parse("limit=7&cursor=c1&other=x").unwrap();
        assert_eq!((page.limit.0, page.cursor.unwrap().0), (7, "c1".to_owned()));
        assert!(parse("cursor=").unwrap().cursor.is_none());
        for bad in ["limit=0", "limit=101", "limit=ten", "limit="] {
            assert_eq!(
                parse(bad).unwrap_err(),
                "limit must be an integer from 1 to 100",
                "{bad}"
            );
        }
        assert_eq!(parse("cursor=x").unwrap_err(), "Invalid cursor");
    }
}
