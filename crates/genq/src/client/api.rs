//! The HTTP side: the server's base URL, the key (sent only to that server,
//! marked sensitive so it is never logged or printed), and what a refusal
//! or a transport error means for the exit status.

use std::time::Duration;

use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::{Exit, ServerArgs, FAILED, UNREACHABLE, USAGE};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A rate-limited request is tried again this many times at most…
const RATE_LIMIT_RETRIES: u32 = 3;
/// …when the server asks for a wait no longer than this.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Api {
    base: String,
    key: HeaderValue,
    pub http: reqwest::Client,
}

/// A response's status and JSON body (`Value::Null` when it had none).
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    pub fn new(server: &ServerArgs) -> anyhow::Result<Api> {
        let key = server
            .api_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                Exit::error(
                    USAGE,
                    "no API key: set GENQ_API_KEY (or pass --api-key); `genq accounts create` makes one",
                )
            })?;
        let mut key = HeaderValue::from_str(key.trim())
            .map_err(|_| Exit::error(USAGE, "the API key is not a valid header value"))?;
        key.set_sensitive(true);
        let url = reqwest::Url::parse(&server.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                Exit::error(
                    USAGE,
                    format!("--url {:?} is not an http(s) URL", server.url),
                )
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("genq-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Api {
            base: url.as_str().trim_end_matches('/').to_owned(),
            key,
            http,
        })
    }

    /// A request to the server, with the key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", self.key.clone())
    }

    /// Sends a request; a transport failure is an `UNREACHABLE` exit, a
    /// 401 or 403 too (the key was refused). Other statuses are returned.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let mut retries = 0;
        let mut request = request;
        loop {
            let again = request.try_clone();
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let reply = Reply::read(response).await?;
                return Err(Exit::error(
                    UNREACHABLE,
                    format!(
                        "the server refused the API key ({status}): {}",
                        reply.message()
                    ),
                ));
            }
            if status == StatusCode::TOO_MANY_REQUESTS && retries < RATE_LIMIT_RETRIES {
                if let (Some(again), Some(wait)) = (again, retry_after(&response)) {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                    request = again;
                    continue;
                }
            }
            return Ok(response);
        }
    }

    /// Sends a request and reads its JSON body, whatever the status.
    pub async fn call(&self, request: RequestBuilder) -> anyhow::Result<Reply> {
        Reply::read(self.send(request).await?).await
    }

    /// Sends a request whose answer must be a 2xx; any other is a `FAILED`
    /// exit naming what the server said.
    pub async fn ok(&self, request: RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let reply = self.call(request).await?;
        if reply.status.is_success() {
            Ok(reply.body)
        } else {
            Err(reply.refusal(what))
        }
    }
}

impl Reply {
    pub async fn read(response: Response) -> anyhow::Result<Reply> {
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply { status, body })
    }

    /// What the server said went wrong, in whichever dialect's error shape.
    pub fn message(&self) -> String {
        error_message(&self.body)
    }

    /// A `FAILED` exit for a refused request.
    pub fn refusal(&self, what: &str) -> anyhow::Error {
        Exit::error(
            FAILED,
            format!("{what}: {} {}", self.status, self.message()),
        )
    }
}

/// The message of any dialect's error body: `{"error": "…"}` (Image+Audio
/// Video API), `{"error": {"code", "message"}}` (gateway, `/events`),
/// `{"statusCode", "message", "error"}` (Provider).
pub fn error_message(body: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    };
    if let Some(error) = body.get("error") {
        if let Some(message) = error.get("message").and_then(text) {
            return match error.get("code").and_then(Value::as_str) {
                Some(code) => format!("{code}: {message}"),
                None => message,
            };
        }
    }
    body.get("message")
        .and_then(text)
        .or_else(|| body.get("error").and_then(text))
        .or_else(|| text(body))
        .unwrap_or_else(|| body.to_string())
}

/// A transport failure: the server cannot be reached (or went away).
pub fn unreachable(error: reqwest::Error) -> anyhow::Error {
    if error.is_builder() {
        return Exit::error(
            USAGE,
            format!("bad request: {}", genq_outbound::error_chain(&error)),
        );
    }
    Exit::transport(format!(
        "cannot reach the server: {}",
        genq_outbound::error_chain(&error)
    ))
}

/// A 429's `Retry-After`, when it is short enough to wait for.
pub fn retry_after(response: &Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let wait = Duration::from_secs(seconds.max(1));
    (wait <= LONGEST_RETRY_AFTER).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_dialects_error_shape_gives_its_message() {
        assert_eq!(
            error_message(&json!({"error": "Job not found"})),
            "Job not found"
        );
        assert_eq!(
            error_message(
                &json!({"error": {"code": "INVALID_INPUT", "message": "input.prompt: required"}, "requestId": "r"})
            ),
            "INVALID_INPUT: input.prompt: required"
        );
        assert_eq!(
            error_message(
                &json!({"statusCode": 400, "message": "job_type is required", "error": "Bad Request"})
            ),
            "job_type is required"
        );
        assert_eq!(error_message(&json!("plain text")), "plain text");
    }
}
