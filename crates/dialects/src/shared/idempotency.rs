//! `Idempotency-Key` on the submission routes (docs/idempotency.md): a
//! layer claims the key before the handler runs, replays a kept answer, or
//! refuses in the route's dialect's shape; a handler that submits under the
//! key hands the engine its answer, kept in the jobs' own transaction
//! (`genq_engine::idempotency`).
//!
//! The fingerprint a kept answer is compared with is SHA-256 of the method,
//! the path and query, and the body — for a multipart body, the bytes of
//! its parts: the boundary a client picks anew for each request (and
//! anything after the closing one) is left out, so that a retry of the same
//! form matches. It is computed as the body streams through, however large.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use genq_engine::idempotency::{check_key, KeptAnswer, KeyClaim, KeyedSubmission, CLAIM_LEASE};
use genq_engine::{Job, Principal};
use sha2::{Digest, Sha256};

use super::auth::{caller, Authenticated, Rejects};
use super::Refusal;
use crate::AppState;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

pub const IN_USE: &str = "A request with this Idempotency-Key is still being processed; retry once it has been answered.";
pub const REUSED: &str =
    "This Idempotency-Key was used with a different request; send a new key for a new request.";

/// The layer on every submission route (`Routes::submit`).
pub async fn idempotency<E: Rejects>(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(raw) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match raw
        .to_str()
        .map_err(|_| ())
        .and_then(|k| check_key(k).map_err(|_| ()))
    {
        Ok(key) => key.to_owned(),
        Err(()) => {
            let message = check_key("").unwrap_err();
            return E::from(Refusal::BadRequest(message)).into_response();
        }
    };
    let (mut parts, body) = request.into_parts();
    // Unauthenticated: the handler refuses it in its own words.
    let principal = match caller::<E>(&app, &parts).await {
        Ok(principal) => principal,
        Err(_) => return next.run(Request::from_parts(parts, body)).await,
    };
    parts.extensions.insert(Authenticated(principal.clone()));
    let fingerprint = Arc::new(Mutex::new(Fingerprint::of(&parts)));
    let claim = match app.engine.claim_key(&principal, &key).await {
        Ok(claim) => claim,
        Err(e) => return E::from(e).into_response(),
    };
    let token = match claim {
        KeyClaim::Claimed { token } => token,
        KeyClaim::Kept(answer) => {
            // Read the whole body: the answer depends on it, and a client
            // still sending hears us instead of a broken pipe.
            let Some(digest) = drain(body, &fingerprint).await else {
                return E::from(Refusal::BadRequest(
                    "The request body could not be read".into(),
                ))
                .into_response();
            };
            if digest.as_slice() != answer.fingerprint {
                return E::from(Refusal::KeyReused).into_response();
            }
            return replay(answer);
        }
        KeyClaim::InProgress => {
            drain(body, &fingerprint).await;
            return E::from(Refusal::KeyInUse).into_response();
        }
    };

    let body = hashed(body, fingerprint.clone());
    parts.extensions.insert(KeyInFlight {
        key: key.clone(),
        token: token.clone(),
        fingerprint,
    });
    // The claim is renewed while the request runs, in this task: polled
    // beside the handler, not spawned, so a request that ends before the
    // first renewal (nearly all) costs a timer and no task.
    let renewing = async {
        let period = CLAIM_LEASE / 3;
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            every.tick().await;
            if let Err(e) = app.engine.renew_key(&principal, &key, &token).await {
                tracing::warn!(error = %e, "renewing an idempotency key failed");
            }
        }
    };
    let response = tokio::select! {
        response = next.run(Request::from_parts(parts, body)) => response,
        never = renewing => never,
    };
    // A kept key stays kept; a refused request's claim goes, so that a
    // corrected retry can use the key.
    if let Err(e) = app.engine.release_key(&principal, &key, &token).await {
        tracing::warn!(error = %e, "releasing an idempotency key failed; it frees itself shortly");
    }
    response
}

/// A kept answer, as it was first given.
pub fn replay(answer: KeptAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// A claimed key, for the handler (an extractor: `None` without a key).
#[derive(Clone)]
pub struct KeyInFlight {
    key: String,
    token: String,
    fingerprint: Arc<Mutex<Fingerprint>>,
}

impl KeyInFlight {
    /// The submission's key for the engine, once the handler has read the
    /// whole request: `answer` makes the JSON body answered with `status`.
    pub fn submission<T: serde::Serialize>(
        &self,
        status: StatusCode,
        answer: impl FnOnce(&[Job]) -> T + Send + 'static,
    ) -> KeyedSubmission {
        KeyedSubmission {
            key: self.key.clone(),
            token: self.token.clone(),
            fingerprint: self.fingerprint.lock().expect("not poisoned").digest(),
            status: status.as_u16(),
            answer: Box::new(move |jobs| {
                serde_json::to_vec(&answer(jobs)).expect("JSON serializes")
            }),
        }
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for KeyInFlight {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<KeyInFlight>().cloned())
    }
}

/// Submits a keyed or plain submission and answers it: `answer` renders the
/// dialect's JSON for the recorded jobs (fields in the order its type
/// lists them), kept with the key when there is one.
pub async fn submit_and_answer<T: serde::Serialize>(
    app: &AppState,
    principal: &Principal,
    news: Vec<genq_engine::NewJob>,
    key: Option<KeyInFlight>,
    status: StatusCode,
    answer: impl FnOnce(&[Job]) -> T + Send + 'static,
) -> Result<(Vec<Job>, Response), genq_engine::EngineError> {
    match key {
        None => {
            let (jobs, _) = app.engine.submit_all(principal, news, None).await?;
            let body = axum::Json(answer(&jobs));
            Ok((jobs, (status, body).into_response()))
        }
        Some(key) => {
            let keyed = key.submission(status, answer);
            let (jobs, kept) = app.engine.submit_all(principal, news, Some(keyed)).await?;
            let kept = kept.expect("a keyed submission's answer is kept");
            let mut response = replay(kept);
            response.headers_mut().remove(REPLAYED);
            Ok((jobs, response))
        }
    }
}

/// Reads the rest of a body into the fingerprint; its digest, or None when
/// the body could not be read (over its limit, or the client went away).
async fn drain(body: Body, fingerprint: &Arc<Mutex<Fingerprint>>) -> Option<Vec<u8>> {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        fingerprint
            .lock()
            .expect("not poisoned")
            .update(&chunk.ok()?);
    }
    let digest = fingerprint.lock().expect("not poisoned").digest();
    Some(digest)
}

/// The body, fingerprinted as the handler reads it.
fn hashed(body: Body, fingerprint: Arc<Mutex<Fingerprint>>) -> Body {
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            fingerprint.lock().expect("not poisoned").update(bytes);
        }
        chunk
    }))
}

/// The fingerprint of a POST to `/api/jobs` with `content_type` whose body
/// arrives in `chunks`, for the `multipart_upload` fuzz target in `fuzz/`
/// (the `fuzzing` cargo feature).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_fingerprint(content_type: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let request = axum::http::Request::post("/api/jobs")
        .header(header::CONTENT_TYPE, content_type)
        .body(())
        .expect("a valid request");
    let (parts, ()) = request.into_parts();
    let mut fingerprint = Fingerprint::of(&parts);
    for chunk in chunks {
        fingerprint.update(chunk);
    }
    fingerprint.digest()
}

/// SHA-256 of a request as it streams (see the module's comment).
struct Fingerprint {
    hasher: Sha256,
    /// A multipart body's delimiter (`--BOUNDARY`), left out of the hash.
    delimiter: Option<Vec<u8>>,
    /// Bytes not hashed yet: they may begin a delimiter.
    pending: Vec<u8>,
    /// The closing delimiter was seen: nothing after it counts.
    closed: bool,
}

impl Fingerprint {
    fn of(parts: &Parts) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(parts.method.as_str());
        hasher.update([0]);
        hasher.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
        hasher.update([0]);
        let delimiter = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
            .map(|boundary| format!("--{boundary}").into_bytes());
        Self {
            hasher,
            delimiter,
            pending: Vec::new(),
            closed: false,
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        if self.closed {
            return;
        }
        let Some(delimiter) = &self.delimiter else {
            self.hasher.update(chunk);
            return;
        };
        self.pending.extend_from_slice(chunk);
        loop {
            match memchr::memmem::find(&self.pending, delimiter) {
                Some(at) => {
                    let after = at + delimiter.len();
                    self.hasher.update(&self.pending[..at]);
                    if self.pending.len() < after + 2 {
                        // Is it the closing one? The next bytes will say.
                        self.pending.drain(..at);
                        return;
                    }
                    if &self.pending[after..after + 2] == b"--" {
                        self.closed = true;
                        self.pending = Vec::new();
                        return;
                    }
                    self.pending.drain(..after);
                }
                None => {
                    // Keep what could be the start of a delimiter.
                    let keep = delimiter.len() + 1;
                    if self.pending.len() > keep {
                        let cut = self.pending.len() - keep;
                        self.hasher.update(&self.pending[..cut]);
                        self.pending.drain(..cut);
                    }
                    return;
                }
            }
        }
    }

    fn digest(&self) -> Vec<u8> {
        let mut hasher = self.hasher.clone();
        if !self.closed {
            // A body that ends at a delimiter (cut short, or with one byte
            // of a closing `--`) leaves it pending: it is left out there
            // too, or the boundary's name would count. Pending bytes hold
            // no whole delimiter otherwise.
            let tail = match &self.delimiter {
                Some(delimiter) if self.pending.starts_with(delimiter) => {
                    &self.pending[delimiter.len()..]
                }
                _ => &self.pending[..],
            };
            hasher.update(tail);
        }
        hasher.finalize().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(content_type: &str, chunks: &[&[u8]]) -> Vec<u8> {
        let request = axum::http::Request::post("/api/jobs")
            .header(header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let mut f = Fingerprint::of(&parts);
        for chunk in chunks {
            f.update(chunk);
        }
        f.digest()
    }

    fn form(boundary: &str, value: &str) -> String {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{value}\r\n--{boundary}--\r\n"
        )
    }

    #[test]
    fn a_form_matches_whatever_its_boundary_and_chunking() {
        let one = form("XyZ123", "hello");
        let other = form("other-boundary-0987654321", "hello");
        let a = fingerprint("multipart/form-data; boundary=XyZ123", &[one.as_bytes()]);
        // Split inside the delimiter, and with an epilogue the parser never reads.
        let bytes = other.as_bytes();
        let (head, tail) = bytes.split_at(bytes.len() - 20);
        let epilogue = b"ignored epilogue";
        let b = fingerprint(
            "multipart/form-data; boundary=other-boundary-0987654321",
            &[head, tail, epilogue],
        );
        assert_eq!(a, b);
        let changed = form("XyZ123", "hellO");
        let c = fingerprint(
            "multipart/form-data; boundary=XyZ123",
            &[changed.as_bytes()],
        );
        assert_ne!(a, c);
    }

    /// Found by the `multipart_upload` fuzz target
    /// (fuzz/corpus/multipart_upload/boundary-at-end): a body ending at a
    /// delimiter hashed the delimiter, boundary name and all.
    #[test]
    fn a_body_cut_at_a_delimiter_matches_whatever_its_boundary() {
        for end in ["", "-", "\r"] {
            let body = |b: &str| {
                format!(
                    "--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--{b}{end}"
                )
            };
            let a = fingerprint(
                "multipart/form-data; boundary=XyZ123",
                &[body("XyZ123").as_bytes()],
            );
            let long = "other-boundary-0987654321";
            let b = body(long);
            let (head, tail) = b.as_bytes().split_at(b.len() - 3);
            let b = fingerprint(
                &format!("multipart/form-data; boundary={long}"),
                &[head, tail],
            );
            assert_eq!(a, b, "body ending {end:?}");
        }
    }

    #[test]
    fn a_json_body_counts_byte_for_byte() {
        let a = fingerprint("application/json", &[b"{\"a\":1}"]);
        assert_eq!(a, fingerprint("application/json", &[b"{\"a\"", b":1}"]));
        assert_ne!(a, fingerprint("application/json", &[b"{\"a\": 1}"]));
    }
}
