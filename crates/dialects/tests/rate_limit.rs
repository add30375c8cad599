//! Per-IP rate limits as a client sees them, over TCP.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use genq_dialects::shared::rate_limit::{rate_limit, RateLimitConfig, RateLimits, RouteKind};
use genq_dialects::shared::Refusal;
use reqwest::header::HeaderMap;

/// A dialect's error shape, as far as these routes refuse.
struct TestError(Refusal);

impl From<Refusal> for TestError {
    fn from(refusal: Refusal) -> Self {
        TestError(refusal)
    }
}

impl IntoResponse for TestError {
    fn into_response(self) -> Response {
        let message = match self.0 {
            Refusal::RateLimited { retry_after_secs } => {
                format!("Rate limit exceeded — slow down. Retry in {retry_after_secs} s.")
            }
            other => format!("{other:?}"),
        };
        let body = serde_json::json!({ "error": message });
        (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
    }
}

/// A read route and a submission route, limited as a dialect's are, and an
/// unlimited one.
fn app(config: RateLimitConfig) -> Router {
    let limits = RateLimits::new(config);
    let limited = |kind| from_fn_with_state((limits.clone(), kind), rate_limit::<TestError>);
    Router::new()
        .route(
            "/api/things",
            get(|| async { "things" }).layer(limited(RouteKind::General)),
        )
        .route(
            "/api/jobs",
            post(|| async { (StatusCode::CREATED, "created") })
                .layer(limited(RouteKind::Submission)),
        )
        .route("/health", get(|| async { "ok" }))
}

struct Server {
    base: String,
    client: reqwest::Client,
}

async fn serve(config: RateLimitConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(config);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        // No proxy from the environment: the server must see 127.0.0.1.
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn number(&self, name: &str) -> u64 {
        let value = self
            .header(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers));
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not an integer: {value:?}"))
    }

    fn remaining(&self) -> u64 {
        self.number("ratelimit-remaining")
    }

    fn limit(&self) -> u64 {
        self.number("ratelimit-limit")
    }

    fn has_no_rate_limit_headers(&self) -> bool {
        [
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "ratelimit-policy",
            "retry-after",
        ]
        .iter()
        .all(|name| self.header(name).is_none())
    }
}

impl Server {
    async fn send(&self, method: reqwest::Method, path: &str, xff: Option<&str>) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(xff) = xff {
            request = request.header("x-forwarded-for", xff);
        }
        let response = request.send().await.unwrap();
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn get_as(&self, xff: &str) -> Answer {
        self.send(reqwest::Method::GET, "/api/things", Some(xff))
            .await
    }

    async fn submit(&self) -> Answer {
        self.send(reqwest::Method::POST, "/api/jobs", None).await
    }
}

fn limits(api: u32, submit: u32) -> RateLimitConfig {
    RateLimitConfig {
        api_per_minute: api,
        submit_per_minute: submit,
        trusted_proxies: Vec::new(),
    }
}

fn assert_refused(answer: &Answer, limit: u64) {
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON body");
    let error = body["error"].as_str().expect("an error string");
    assert!(
        error.starts_with("Rate limit exceeded — slow down."),
        "{error}"
    );
    let retry_after = answer.number("retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(answer.remaining(), 0);
    assert_eq!(answer.limit(), limit);
    assert!(answer.number("ratelimit-reset") >= 1);
    assert!(answer.header("ratelimit-policy").is_some());
}

#[tokio::test]
async fn remaining_counts_down_on_successive_gets_then_429() {
    let server = serve(limits(5, 2)).await;
    let mut last_reset = 0;
    for expected in (0..5).rev() {
        let answer = server.get("/api/things").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, "things");
        assert_eq!(answer.limit(), 5);
        assert_eq!(answer.remaining(), expected);
        assert_eq!(answer.header("ratelimit-policy"), Some("5;w=60"));
        let reset = answer.number("ratelimit-reset");
        assert!((1..=60).contains(&reset), "reset {reset}");
        if expected > 0 {
            assert!(reset > last_reset, "the bucket takes longer to refill");
            last_reset = reset;
        } else {
            // Empty: the next request is allowed after one refill (12 s).
            assert!(reset <= 12, "reset {reset}");
        }
    }
    let refused = server.get("/api/things").await;
    assert_refused(&refused, 5);
    assert!(refused.number("retry-after") <= 12);
}

#[tokio::test]
async fn the_31st_submission_within_a_minute_is_refused_with_the_defaults() {
    let server = serve(RateLimitConfig::default()).await;
    for n in 1..=30 {
        let answer = server.submit().await;
        assert_eq!(answer.status, StatusCode::CREATED, "submission {n}");
        // The submission limit is the one closer to exhaustion.
        assert_eq!(answer.limit(), 30);
        assert_eq!(answer.remaining(), 30 - n);
        assert_eq!(answer.header("ratelimit-policy"), Some("30;w=60, 600;w=60"));
    }
    let refused = server.submit().await;
    assert_refused(&refused, 30);
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("30;w=60, 600;w=60")
    );
    assert_eq!(
        refused.number("retry-after"),
        refused.number("ratelimit-reset")
    );

    // Reads are limited separately.
    let read = server.get("/api/things").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.limit(), 600);
    assert_eq!(read.header("ratelimit-policy"), Some("600;w=60"));
    assert!(read.remaining() < 600 - 1, "the submissions counted too");
}

#[tokio::test]
async fn gets_work_after_submissions_are_exhausted_but_count_against_the_general_limit() {
    let server = serve(limits(10, 3)).await;
    for n in 1..=3u64 {
        let answer = server.submit().await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!((answer.limit(), answer.remaining()), (3, 3 - n));
    }
    assert_refused(&server.submit().await, 3);

    let read = server.get("/api/things").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.limit(), 10);
    // 3 accepted submissions, the refused one (checked against the general
    // limit first) and this read.
    assert_eq!(read.remaining(), 10 - 5);
    assert_eq!(read.header("ratelimit-policy"), Some("10;w=60"));
}

#[tokio::test]
async fn a_submission_shows_the_general_limit_when_that_is_closer_to_exhaustion() {
    let server = serve(limits(4, 3)).await;
    for _ in 0..3 {
        assert_eq!(server.get("/api/things").await.status, StatusCode::OK);
    }
    let answer = server.submit().await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!((answer.limit(), answer.remaining()), (4, 0));
    assert_eq!(answer.header("ratelimit-policy"), Some("3;w=60, 4;w=60"));
    // The general limit refuses the next submission.
    assert_refused(&server.submit().await, 4);
}

#[tokio::test]
async fn health_has_no_headers_and_is_never_limited() {
    let server = serve(limits(1, 1)).await;
    for _ in 0..20 {
        let answer = server.get("/health").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.has_no_rate_limit_headers(), "{:?}", answer.headers);
    }
    // /health did not use the API quota...
    let answer = server.get("/api/things").await;
    assert_eq!((answer.status, answer.remaining()), (StatusCode::OK, 0));
    assert_refused(&server.get("/api/things").await, 1);
    // ...and is still served once the API quota is gone.
    let answer = server.get("/health").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.has_no_rate_limit_headers());
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_get_a_fresh_bucket() {
    let server = serve(limits(2, 0)).await;
    assert_eq!(server.get_as("10.0.0.1").await.remaining(), 1);
    assert_eq!(server.get_as("10.0.0.2").await.remaining(), 0);
    assert_refused(&server.get_as("10.0.0.3").await, 2);
    assert_refused(&server.get("/api/things").await, 2);
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_gives_each_client_its_own_bucket() {
    let server = serve(RateLimitConfig {
        api_per_minute: 1,
        submit_per_minute: 0,
        trusted_proxies: vec![
            "127.0.0.1/32".parse().unwrap(),
            "192.168.0.0/16".parse().unwrap(),
        ],
    })
    .await;
    for client in ["10.0.0.1", "10.0.0.2"] {
        let answer = server.get_as(client).await;
        assert_eq!((answer.status, answer.remaining()), (StatusCode::OK, 0));
    }
    assert_refused(&server.get_as("10.0.0.1").await, 1);
    assert_refused(&server.get_as("10.0.0.2").await, 1);

    // The right-most entry that is not a trusted proxy is the client; what
    // the client wrote on the left (a spoofed 10.0.0.9) is not believed.
    let answer = server.get_as("10.0.0.9, 10.0.0.3, 192.168.1.1").await;
    assert_eq!((answer.status, answer.remaining()), (StatusCode::OK, 0));
    assert_refused(&server.get_as("10.0.0.3").await, 1);
    assert_eq!(server.get_as("10.0.0.9").await.status, StatusCode::OK);

    // A request from the proxy itself, without the header, is the proxy's.
    assert_eq!(server.get("/api/things").await.status, StatusCode::OK);
    assert_refused(&server.get("/api/things").await, 1);
}

#[tokio::test]
async fn a_limit_of_zero_disables_that_limit() {
    // General limit off: reads are unlimited and unannotated; submissions
    // see only their own limit.
    let server = serve(limits(0, 2)).await;
    for _ in 0..15 {
        let answer = server.get("/api/things").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.has_no_rate_limit_headers(), "{:?}", answer.headers);
    }
    for n in 1..=2 {
        let answer = server.submit().await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!((answer.limit(), answer.remaining()), (2, 2 - n));
        assert_eq!(answer.header("ratelimit-policy"), Some("2;w=60"));
    }
    assert_refused(&server.submit().await, 2);

    // Submission limit off: submissions count only against the general one.
    let server = serve(limits(3, 0)).await;
    for n in 1..=3 {
        let answer = server.submit().await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!((answer.limit(), answer.remaining()), (3, 3 - n));
        assert_eq!(answer.header("ratelimit-policy"), Some("3;w=60"));
    }
    assert_refused(&server.submit().await, 3);

    // Both off: nothing is limited or annotated.
    let server = serve(limits(0, 0)).await;
    for _ in 0..40 {
        let answer = server.submit().await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert!(answer.has_no_rate_limit_headers());
    }
}

#[tokio::test]
async fn without_connect_info_all_requests_share_one_bucket_instead_of_panicking() {
    use tower::ServiceExt;
    let app = app(limits(2, 0));
    let request = || {
        axum::http::Request::get("/api/things")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let first = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["ratelimit-remaining"], "1");
    let second = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(second.headers()["ratelimit-remaining"], "0");
    let third = app.oneshot(request()).await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
}
