//! Backend-neutral conversions between engine types and stored columns.

use std::str::FromStr;

use genq_engine::store::StoreResult;
use genq_engine::StoreError;

pub(crate) fn db_err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::new(what, e)
}

pub(crate) fn parse<T: FromStr>(value: &str, what: &str) -> StoreResult<T> {
    value
        .parse()
        .map_err(|_| StoreError::other(format!("corrupt {what} in database: {value:?}")))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(value: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(value)
        .map_err(|e| StoreError::new(format!("corrupt {what} in database"), e))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("engine types serialize")
}

/// Comma-separated patterns as stored; NULL means "no restriction".
pub(crate) fn patterns_from(value: Option<String>) -> Option<Vec<String>> {
    value.map(|v| {
        v.split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

pub(crate) fn patterns_to(patterns: &Option<Vec<String>>) -> Option<String> {
    patterns.as_ref().map(|p| p.join(","))
}
