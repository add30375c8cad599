//! The answers every route can give besides its own, written into the
//! OpenAPI document once: what the shared layers refuse
//! ([`super::Refusal`]), the server's own refusals (connection caps) and
//! the headers they add appear in no handler's annotation.

use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{
    ContentBuilder, Header, HeaderBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder,
};

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
    /// The component name of its error body's schema, which its document
    /// registers: every refusal without a body of its own gets it.
    pub error_schema: &'static str,
}

/// The header every answer of the application carries.
pub const REQUEST_ID: &str = "X-Request-Id";

/// The schema of the server's refusal of a connection over its caps
/// (`{"error": {"code": "TOO_MANY_CONNECTIONS", "message"}}`), answered
/// before any route is chosen.
pub const CONNECTION_REFUSAL: &str = "ConnectionRefusal";

/// Every operation of a path item, whatever its method.
pub fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> + '_ {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn integer_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some(description))
        .build()
}

fn string_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

fn json_response(description: &str, schema: RefOr<Schema>) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(schema)).build(),
            )
            .build(),
    )
}

/// The error schema, or — for a 503, which the connection caps also answer —
/// that or the connection refusal.
fn error_body(status: &str, error_schema: &str) -> RefOr<Schema> {
    let own = RefOr::Ref(Ref::from_schema_name(error_schema));
    if status == "503" && error_schema != CONNECTION_REFUSAL {
        OneOfBuilder::new()
            .item(own)
            .item(Ref::from_schema_name(CONNECTION_REFUSAL))
            .into()
    } else {
        own
    }
}

/// Adds each shared refusal to the operations of a dialect (or of genq's
/// own rate-limited routes) it can come from, keeping whatever a route
/// documents itself: 401 and 403 where a key is required, 400 where a
/// query or body is read, 404 where the path names an object, 413 where a
/// body is read, 429 (with `Retry-After`), 500 and 503 everywhere; every
/// refusal without a body gets the dialect's error body; every answer the
/// `RateLimit-*` fields, and a submission's `Idempotent-Replayed`.
pub fn document_shared_refusals(doc: &mut OpenApi, words: &SharedRefusals) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let names_an_object = path.contains('{');
        for operation in operations(item) {
            let reads_input = operation.request_body.is_some()
                || operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Path));
            let idempotent = operation
                .parameters
                .iter()
                .flatten()
                .any(|p| p.name.eq_ignore_ascii_case("Idempotency-Key"));
            let secured = operation.security.is_some();
            let has_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses.entry(status.into()).or_insert_with(|| {
                    json_response(description, error_body(status, words.error_schema))
                });
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
            if has_body {
                add(
                    "413",
                    "The body is over 16 MB (the limit of every request body but uploads)",
                );
            }
            add("429", words.rate_limited);
            add("500", "Internal error (logged); retry later");
            add(
                "503",
                "The database or the file storage cannot be reached, or its disk is full (in this API's error shape; the Jobs v1 gateway's code is `PUBSUB_PUBLISH_FAILED`), or the server is over its connection caps (`{\"error\": {\"code\": \"TOO_MANY_CONNECTIONS\"}}`); `Retry-After` says when to try again",
            );
            for (status, response) in responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let refusal = status.starts_with('4') || status.starts_with('5');
                if refusal && response.content.is_empty() {
                    response.content.insert(
                        "application/json".into(),
                        ContentBuilder::new()
                            .schema(Some(error_body(status, words.error_schema)))
                            .build(),
                    );
                }
                if status != "503" {
                    rate_limit_headers(response);
                }
                if status == "429" || status == "503" {
                    response.headers.entry("Retry-After".into()).or_insert_with(|| {
                        integer_header(
                            "Seconds to wait before trying again (a rate-limit refusal, an unavailable database or storage, a connection refusal)",
                        )
                    });
                }
                if idempotent && status.starts_with('2') {
                    response.headers.entry("Idempotent-Replayed".into()).or_insert_with(|| {
                        HeaderBuilder::new()
                            .schema(
                                ObjectBuilder::new()
                                    .schema_type(Type::String)
                                    .enum_values(Some(["true"])),
                            )
                            .description(Some(
                                "`true` on the first answer replayed to a retry with the same Idempotency-Key",
                            ))
                            .build()
                    });
                }
            }
        }
    }
}

/// The `RateLimit-*` fields a rate-limited route's answers carry (unless
/// the limits are off: `--rate-limit-per-minute 0`).
fn rate_limit_headers(response: &mut Response) {
    let headers = [
        (
            "RateLimit-Limit",
            "The quota of the limit closest to running out",
        ),
        ("RateLimit-Remaining", "Requests left in it"),
        ("RateLimit-Reset", "Seconds until it is full again"),
    ];
    for (name, description) in headers {
        response
            .headers
            .entry(name.into())
            .or_insert_with(|| integer_header(description));
    }
    response
        .headers
        .entry("RateLimit-Policy".into())
        .or_insert_with(|| {
            string_header("The quotas that apply, `N;w=SECONDS` each (a submission: both)")
        });
}

/// What every answer of every route can be, whoever owns it: `X-Request-Id`
/// on each (a connection refused over the caps excepted), and a 503 when
/// the server is over its connection caps. Applied to the whole document
/// (the console's too); keeps what is documented already.
pub fn document_every_answer(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.entry(CONNECTION_REFUSAL.into()).or_insert_with(|| {
        let message = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["TOO_MANY_CONNECTIONS"])),
            )
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("code")
            .required("message");
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("error", message)
            .required("error")
            .description(Some(
                "A connection over the server's caps (--max-connections, --max-connections-per-ip), refused before any route is chosen",
            ))
            .into()
    });
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let responses = &mut operation.responses.responses;
            responses.entry("503".into()).or_insert_with(|| {
                json_response(
                    "The server is over its connection caps (`Retry-After: 1`)",
                    RefOr::Ref(Ref::from_schema_name(CONNECTION_REFUSAL)),
                )
            });
            for (status, response) in responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if status == "503" {
                    response
                        .headers
                        .entry("Retry-After".into())
                        .or_insert_with(|| integer_header("Seconds to wait before trying again"));
                }
                response
                    .headers
                    .entry(REQUEST_ID.into())
                    .or_insert_with(|| {
                        string_header("The request's id (`req_…`), also in the server's log")
                    });
            }
        }
    }
}

/// The document as served: JSON, with `X-Request-Id` marked required where
/// every answer has it (utoipa's headers cannot say `required`). A 503 is
/// left alone: the connection caps answer before the id is given.
pub fn to_json(doc: &OpenApi) -> serde_json::Value {
    let mut json = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    if let Some(paths) = json.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(|r| r.as_object_mut())
                else {
                    continue;
                };
                for (status, response) in responses.iter_mut() {
                    if status == "503" {
                        continue;
                    }
                    if let Some(header) = response
                        .get_mut("headers")
                        .and_then(|h| h.get_mut(REQUEST_ID))
                    {
                        header["required"] = serde_json::Value::Bool(true);
                    }
                }
            }
        }
    }
    json
}

/// A path as the OpenAPI document or axum writes it, with each parameter
/// (`{jobId}`, `{job_id}`, `{*key}`) written `{}`: how the tests holding
/// the document to the router compare the two.
pub fn path_shape(path: &str) -> String {
    let mut shape = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                shape.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => shape.push(c),
            _ => {}
        }
    }
    shape
}
