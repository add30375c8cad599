//! The answers every route can give besides its own, written into a
//! dialect's OpenAPI document once: what the shared layers refuse
//! ([`super::Refusal`]) does not appear in any handler's annotation.

use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::{OpenApi, RefOr, ResponseBuilder};

/// How a dialect words each shared refusal (its own error shape).
pub struct SharedRefusals {
    /// 401: no key, or an unknown one.
    pub unauthorized: &'static str,
    /// 403: the key lacks the route's scope.
    pub forbidden: &'static str,
    /// 400: a malformed query string or body.
    pub bad_request: &'static str,
    /// 404: no such job (or other object) of the caller's.
    pub not_found: &'static str,
    /// 429: the per-client rate limit.
    pub rate_limited: &'static str,
}

/// Adds each shared refusal to the operations it can come from, keeping
/// whatever a route documents itself: 401 and 403 where a key is required,
/// 400 where a query or body is read, 404 where the path names an object,
/// 429 everywhere.
pub fn document_shared_refusals(doc: &mut OpenApi, words: &SharedRefusals) {
    let response =
        |description: &str| RefOr::T(ResponseBuilder::new().description(description).build());
    for (path, item) in doc.paths.paths.iter_mut() {
        let names_an_object = path.contains('{');
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let reads_input = operation.request_body.is_some()
                || operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Path));
            let secured = operation.security.is_some();
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.into())
                    .or_insert_with(|| response(description));
            };
            if secured {
                add("401", words.unauthorized);
                add("403", words.forbidden);
            }
            if reads_input {
                add("400", words.bad_request);
            }
            if names_an_object {
                add("404", words.not_found);
            }
            add("429", words.rate_limited);
        }
    }
}
