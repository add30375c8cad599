//! A client for [Cog](https://github.com/replicate/cog) prediction servers.
//!
//! genq sends a job's input to a Cog server and stores the files it returns.
//! The protocol (as served by Cog 0.23's Rust server, coglet):
//!
//! - `PUT /predictions/{id}` with `{"input": {...}}` runs a prediction under
//!   the caller's id and, without `Prefer: respond-async`, answers when it
//!   ends: 200 with `{"status": "succeeded" | "failed" | "canceled",
//!   "output", "error"}`; 422 `{"detail": [{"loc", "msg"}]}` when the input
//!   fails the model's schema; 409 when its one slot is busy; 503 before
//!   setup has finished; 202 when a prediction with that id is already
//!   running. The slot is freed a moment *after* the answer, so a 409
//!   right after a prediction is retried for a short while.
//! - `POST /predictions/{id}/cancel` stops it (404 if it is not running); the
//!   waiting `PUT` then answers `"canceled"`. Dropping the `PUT` connection
//!   cancels it too.
//! - File outputs are `data:` URIs unless the server was started with an
//!   upload URL, in which case they are URLs; both go through the
//!   [`Fetcher`].
//!
//! The synchronous form is used because coglet has no `GET` for a
//! prediction: the asynchronous one reports only through webhooks.

mod handler;
mod output;

pub use handler::CogBackend;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use genq_outbound::fetch::Fetcher;
use genq_outbound::{error_chain, OutboundError, OutboundPolicy};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

/// How long the cancel request, and then the cancelled prediction's own
/// answer, are each waited for.
const STOP_GRACE: Duration = Duration::from_millis(900);
/// Cog frees its one slot a few milliseconds after answering, so a
/// prediction sent right after another one can find it busy (409).
const BUSY_WAIT: Duration = Duration::from_secs(2);
const BUSY_RETRY: Duration = Duration::from_millis(50);

pub struct CogClient {
    http: reqwest::Client,
    fetcher: Fetcher,
    policy: OutboundPolicy,
    timeout: Duration,
}

/// One file written from a prediction's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CogFile {
    pub path: PathBuf,
    /// From the `data:` URI's media type (or the `Content-Type`), else
    /// sniffed from the bytes, else `application/octet-stream`.
    pub content_type: String,
    pub size: u64,
}

/// Why a prediction produced no files. The messages are shown to users.
#[derive(Debug, thiserror::Error)]
pub enum CogError {
    #[error("the model server is unavailable: {0}")]
    Unreachable(String),
    #[error("the model failed: {0}")]
    Failed(String),
    #[error("the model rejected the input: {0}")]
    InvalidInput(String),
    #[error("the prediction was cancelled")]
    Cancelled,
    #[error("the prediction did not finish in time")]
    Timeout,
    #[error("unexpected answer from the model server: {0}")]
    Protocol(String),
    #[error("could not store the model's output: {0}")]
    Output(String),
}

impl CogError {
    /// A stable code for the job's error.
    pub fn code(&self) -> &'static str {
        match self {
            CogError::Unreachable(_) => "BACKEND_UNAVAILABLE",
            CogError::Failed(_) => "GENERATION_FAILED",
            CogError::InvalidInput(_) => "INVALID_INPUT",
            CogError::Cancelled => "CANCELLED",
            CogError::Timeout => "TIMEOUT",
            CogError::Protocol(_) | CogError::Output(_) => "BACKEND_ERROR",
        }
    }
}

impl CogClient {
    /// `policy` decides which model servers may be reached (they are usually
    /// on private addresses); `fetcher` fetches outputs returned as URLs and
    /// bounds every output's size; `timeout` bounds a whole prediction,
    /// output downloads included.
    pub fn new(
        policy: &OutboundPolicy,
        fetcher: Fetcher,
        timeout: Duration,
    ) -> Result<Self, OutboundError> {
        // Our own deadline (which also cancels the prediction) fires first.
        let http = policy.client(timeout.saturating_add(Duration::from_secs(10)))?;
        Ok(Self {
            http,
            fetcher,
            policy: policy.clone(),
            timeout,
        })
    }

    /// Runs one prediction under `prediction_id`, waits for it, and writes
    /// every output into `out_dir` as `output-N.ext`. When `cancel` fires the
    /// prediction is cancelled on the server too.
    pub async fn predict(
        &self,
        base_url: &Url,
        prediction_id: &str,
        input: &Value,
        out_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Vec<CogFile>, CogError> {
        let now = Instant::now();
        // A practically unbounded timeout must not overflow the clock.
        let deadline = now
            .checked_add(self.timeout)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86400));
        self.policy
            .check_url(base_url, &["http", "https"])
            .map_err(|e| CogError::Unreachable(e.to_string()))?;
        let put_url = endpoint(base_url, &["predictions", prediction_id]);
        let cancel_url = endpoint(base_url, &["predictions", prediction_id, "cancel"]);
        if cancel.is_cancelled() {
            return Err(CogError::Cancelled);
        }

        let run = self.run(put_url, prediction_id, input);
        tokio::pin!(run);
        let output = tokio::select! {
            result = &mut run => result?,
            () = cancel.cancelled() => {
                self.stop(&cancel_url, run).await;
                return Err(CogError::Cancelled);
            }
            () = tokio::time::sleep_until(deadline) => {
                self.stop(&cancel_url, run).await;
                return Err(CogError::Timeout);
            }
        };

        tokio::select! {
            result = output::write_all(&self.fetcher, output, out_dir) => result,
            () = cancel.cancelled() => Err(CogError::Cancelled),
            () = tokio::time::sleep_until(deadline) => Err(CogError::Timeout),
        }
    }

    /// Sends the prediction and reads its outcome.
    async fn run(&self, url: Url, id: &str, input: &Value) -> Result<Value, CogError> {
        let busy_until = Instant::now() + BUSY_WAIT;
        let response = loop {
            let response = self
                .http
                .put(url.clone())
                .json(&json!({ "input": input }))
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        CogError::Timeout
                    } else {
                        CogError::Unreachable(error_chain(&e))
                    }
                })?;
            if response.status() != 409 || Instant::now() >= busy_until {
                break response;
            }
            tokio::time::sleep(BUSY_RETRY).await;
        };
        let status = response.status().as_u16();
        let body = self.read_body(response).await?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = || snippet(&body);
        match status {
            200 => match value["status"].as_str() {
                Some("succeeded") => Ok(value.get("output").cloned().unwrap_or(Value::Null)),
                Some("failed") => Err(CogError::Failed(model_error(&value["error"]))),
                Some("canceled") => Err(CogError::Cancelled),
                _ => Err(CogError::Protocol(format!(
                    "a prediction in an unexpected state: {}",
                    text()
                ))),
            },
            202 => Err(CogError::Unreachable(format!(
                "a prediction with id {id} is already running there"
            ))),
            409 => Err(CogError::Unreachable(
                "it is busy with another prediction".into(),
            )),
            422 => Err(CogError::InvalidInput(
                validation_errors(&value).unwrap_or_else(text),
            )),
            503 => Err(CogError::Unreachable(
                value["error"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(text),
            )),
            _ => Err(CogError::Protocol(format!("HTTP {status}: {}", text()))),
        }
    }

    /// Reads the answer, bounded: its file outputs are inline `data:` URIs,
    /// so it can be big, but not much bigger than a few outputs at the size
    /// limit.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, CogError> {
        let cap = self
            .fetcher
            .max_bytes()
            .saturating_mul(4)
            .saturating_add(1 << 20);
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > cap {
                        return Err(CogError::Output(format!(
                            "the answer is larger than {cap} bytes"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => return Err(CogError::Timeout),
                Err(e) => {
                    return Err(CogError::Protocol(format!(
                        "reading the answer: {}",
                        error_chain(&e)
                    )))
                }
            }
        }
    }

    /// Cancels the prediction on the server and, if it was running, gives
    /// the waiting request a moment to see it end, so that the model is free
    /// when we return. Dropping that request cancels it too (Cog cancels a
    /// prediction whose synchronous caller hangs up), so nothing is left
    /// running either way.
    async fn stop<F: Future>(&self, cancel_url: &Url, run: Pin<&mut F>) {
        let request = self.http.post(cancel_url.clone()).send();
        let running = match tokio::time::timeout(STOP_GRACE, request).await {
            Ok(Ok(response)) if response.status().is_success() => true,
            // Not started (still waiting for the slot) or already over.
            Ok(Ok(response)) if response.status() == 404 => false,
            Ok(Ok(response)) => {
                tracing::warn!(status = %response.status(), "cog refused to cancel");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %error_chain(&e), "cog cancel failed");
                false
            }
            Err(_) => false,
        };
        if running {
            let _ = tokio::time::timeout(STOP_GRACE, run).await;
        }
    }
}

/// `base_url` with path segments appended (escaped), keeping any prefix.
fn endpoint(base_url: &Url, segments: &[&str]) -> Url {
    let mut url = base_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The model's own error text, without the wrappers coglet adds
/// ("Prediction failed: Prediction failed: RuntimeError: …").
fn model_error(error: &Value) -> String {
    let mut text = match error {
        Value::String(s) => s.trim(),
        Value::Null => "",
        other => return other.to_string(),
    };
    while let Some(rest) = text.strip_prefix("Prediction failed:") {
        text = rest.trim_start();
    }
    if text.is_empty() {
        "it gave no reason".into()
    } else {
        text.to_owned()
    }
}

/// "size: 1 is less than the minimum of 8; prompt: Field required".
fn validation_errors(body: &Value) -> Option<String> {
    if let Some(details) = body["detail"].as_array() {
        let parts: Vec<String> = details
            .iter()
            .map(|detail| {
                let field = detail["loc"]
                    .as_array()
                    .and_then(|loc| loc.last())
                    .map(|last| match last {
                        Value::String(s) if s == "__root__" => "input".to_owned(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| "input".into());
                let msg = detail["msg"].as_str().unwrap_or("is invalid");
                format!("{field}: {msg}")
            })
            .collect();
        return (!parts.is_empty()).then(|| parts.join("; "));
    }
    body["error"].as_str().map(|e| model_error(&Value::from(e)))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "an empty answer".into(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_base_path_and_escape_the_id() {
        let base: Url = "http://10.0.0.5:5000/models/sdxl?x=1".parse().unwrap();
        assert_eq!(
            endpoint(&base, &["predictions", "a/b c"]).as_str(),
            "http://10.0.0.5:5000/models/sdxl/predictions/a%2Fb%20c"
        );
        let base: Url = "http://cog:5000/".parse().unwrap();
        assert_eq!(
            endpoint(&base, &["predictions", "p1", "cancel"]).as_str(),
            "http://cog:5000/predictions/p1/cancel"
        );
    }

    #[test]
    fn error_texts_are_cleaned_up() {
        assert_eq!(
            model_error(&json!(
                "Prediction failed: Prediction failed: RuntimeError: boom"
            )),
            "RuntimeError: boom"
        );
        assert_eq!(model_error(&Value::Null), "it gave no reason");
        let body = json!({"detail": [
            {"loc": ["body", "input", "size"], "msg": "1 is less than the minimum of 8"},
            {"loc": ["body", "input", "__root__"], "msg": "not an object"},
        ]});
        assert_eq!(
            validation_errors(&body).unwrap(),
            "size: 1 is less than the minimum of 8; input: not an object"
        );
        assert_eq!(
            validation_errors(&json!({"error": "Prediction failed: bad"})).unwrap(),
            "bad"
        );
    }
}
