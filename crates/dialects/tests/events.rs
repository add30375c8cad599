//! `GET /events` and the dialects' per-job event routes, over TCP, on an
//! engine over a real SQLite file: jobs of every dialect, each shown in its
//! own dialect's shape, filtered by correlation id and status; refusals in
//! the route's dialect's shape. (Renders with rising progress are followed
//! end to end in `crates/genq/tests/events.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use genq_catalog::Catalog;
use genq_dialects::shared::openapi::path_shape;
use genq_dialects::shared::rate_limit::RateLimitConfig;
use genq_dialects::DialectSettings;
use genq_engine::account::NewAccount;
use genq_engine::db::CancelMode;
use genq_engine::{Engine, Job, LocalFiles, NewJob, Principal};
use serde_json::Value;

struct Server {
    base: String,
    engine: Engine,
    _dir: tempfile::TempDir,
}

async fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("genq.db").display());
    let db = genq_db::open(&url).await.unwrap();
    let files = Arc::new(LocalFiles::new(dir.path().join("files")).unwrap());
    let engine = Engine::new(db, files, dir.path().join("staging")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = settings(&format!("http://{addr}"));
    let limits = RateLimitConfig {
        api_per_minute: 0,
        submit_per_minute: 0,
        trusted_proxies: vec![],
    };
    let app = genq_dialects::router(engine.clone(), &settings, limits);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    Server {
        base: format!("http://{addr}"),
        engine,
        _dir: dir,
    }
}

fn settings(public_url: &str) -> DialectSettings {
    DialectSettings {
        video_price_micro_cents: 0,
        public_url: public_url.to_owned(),
        max_upload_bytes: 1_000_000,
        catalog: Arc::new(Catalog::default()),
        max_concurrent_jobs: 100,
        worker_slots: 1,
        runs_workers: false,
        provider: genq_dialects::provider::ProviderSettings {
            credit_micro_cents: 10_000,
            fonts: Arc::new(genq_template::Fonts::load(&[])),
            prices: genq_dialects::provider::Prices::parse("").unwrap(),
            signed_url_ttl_secs: 3600,
            models: Default::default(),
            tts_max_chars: genq_dialects::provider::DEFAULT_TTS_MAX_CHARS,
        },
    }
}

impl Server {
    /// A new account's principal and raw key, holding `scopes`.
    async fn account(&self, scopes: &[&str]) -> (Principal, String) {
        let new = NewAccount {
            name: "events".into(),
            ..Default::default()
        };
        let scopes = scopes.iter().map(|s| s.to_string()).collect();
        let (_, _, key) = self.engine.create_account(&new, scopes).await.unwrap();
        let principal = self.engine.authenticate(&key).await.unwrap().unwrap();
        (principal, key)
    }

    /// A job as a dialect would submit it (no worker runs here, so it stays
    /// PENDING until cancelled).
    async fn job(&self, principal: &Principal, dialect: &str, session: Option<&str>) -> Job {
        let new = NewJob {
            kind: "nothing_runs_this".into(),
            dialect: dialect.into(),
            input: serde_json::json!({}),
            correlation_id: session.map(str::to_owned),
            ..NewJob::default()
        };
        self.engine.submit(principal, new).await.unwrap()
    }

    async fn get(&self, path: &str, key: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("X-API-Key", key);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        request.send().await.unwrap()
    }

    /// The event stream of `path`, once the server answered 200.
    async fn events(
        &self,
        path: &str,
        key: &str,
        last_event_id: Option<&str>,
    ) -> impl Stream<Item = Event> + Unpin {
        let response = self.get(path, key, last_event_id).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{path}"
        );
        response
            .bytes_stream()
            .eventsource()
            .map(|event| event.expect("a well-formed event"))
    }
}

/// The next event within 5 s.
async fn next(events: &mut (impl Stream<Item = Event> + Unpin)) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
}

/// True when no event arrives within `quiet`.
async fn silent(events: &mut (impl Stream<Item = Event> + Unpin), quiet: Duration) -> bool {
    tokio::time::timeout(quiet, events.next()).await.is_err()
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

#[tokio::test]
async fn events_of_one_session_in_each_jobs_own_dialect_shape() {
    let server = serve().await;
    let (principal, key) = server.account(&["check_status", "submit_job"]).await;
    let (stranger, _) = server.account(&["check_status"]).await;
    let first = server.job(&principal, "video", Some("studio-1")).await;
    server.job(&principal, "v1", Some("studio-2")).await;

    let mut events = server
        .events("/events?session_id=studio-1", &key, None)
        .await;
    // The jobs in flight come first: this session's only.
    let now = next(&mut events).await;
    assert_eq!(
        (now.event.as_str(), data(&now)["jobId"].as_str()),
        ("PENDING", Some(first.id.to_string().as_str()))
    );
    assert_eq!(now.id, first.updated_at.to_string());

    let other_session = server.job(&principal, "video", Some("studio-2")).await;
    server.job(&principal, "video", None).await;
    server.job(&stranger, "video", Some("studio-1")).await;
    let gateway_job = server.job(&principal, "v1", Some("studio-1")).await;
    let created = next(&mut events).await;
    // The model gateway's own words and body.
    assert_eq!(created.event, "pending");
    let body = data(&created);
    assert_eq!(body["jobId"], gateway_job.id.to_string());
    assert_eq!(body["status"], "pending");
    assert!(body.get("outputs").is_some(), "{body}");

    server
        .engine
        .cancel(&principal, first.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    server
        .engine
        .cancel(&principal, other_session.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    let cancelled = next(&mut events).await;
    assert_eq!(cancelled.event, "CANCELLED");
    let body = data(&cancelled);
    assert_eq!(
        (body["jobId"].as_str(), body["status"].as_str()),
        (Some(first.id.to_string().as_str()), Some("CANCELLED"))
    );
    // Nothing of the other session, the untagged job or another account.
    assert!(silent(&mut events, Duration::from_millis(500)).await);
}

#[tokio::test]
async fn a_status_filter_and_a_reconnect_with_last_event_id() {
    let server = serve().await;
    let (principal, key) = server.account(&["check_status", "submit_job"]).await;
    let a = server.job(&principal, "video", None).await;
    let b = server.job(&principal, "v1", None).await;

    let mut cancelled_only = server.events("/events?status=cancelled", &key, None).await;
    server
        .engine
        .cancel(&principal, b.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    let event = next(&mut cancelled_only).await;
    assert_eq!(event.event, "cancelled");
    assert_eq!(data(&event)["jobId"], b.id.to_string());
    let seen = event.id.clone();
    drop(cancelled_only);

    // While the client was away: `a` was cancelled too, and a job was made.
    tokio::time::sleep(Duration::from_millis(5)).await;
    server
        .engine
        .cancel(&principal, a.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    let c = server.job(&principal, "video", None).await;
    let mut again = server.events("/events", &key, Some(&seen)).await;
    let mut caught_up = Vec::new();
    for _ in 0..3 {
        let event = next(&mut again).await;
        caught_up.push((
            event.event.clone(),
            data(&event)["jobId"].as_str().unwrap().to_owned(),
        ));
    }
    caught_up.sort();
    let mut expected = vec![
        ("CANCELLED".to_owned(), a.id.to_string()),
        ("PENDING".to_owned(), c.id.to_string()),
        // Changed at the very time of the last event seen: sent again.
        ("cancelled".to_owned(), b.id.to_string()),
    ];
    expected.sort();
    assert_eq!(caught_up, expected);

    let refused = server.get("/events?status=done", &key, None).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_INPUT");
}

#[tokio::test]
async fn per_job_streams_see_only_their_dialects_jobs_of_the_caller() {
    let server = serve().await;
    let (principal, key) = server.account(&["check_status", "submit_job"]).await;
    let (_, stranger_key) = server.account(&["check_status"]).await;
    let video = server.job(&principal, "video", None).await;
    let gateway = server.job(&principal, "v1", None).await;

    let mut stream = server
        .events(&format!("/api/jobs/{}/events", video.id), &key, None)
        .await;
    let first = next(&mut stream).await;
    assert_eq!(first.event, "PENDING");
    assert_eq!(data(&first)["progress"], 0);
    server
        .engine
        .cancel(&principal, video.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    assert_eq!(next(&mut stream).await.event, "CANCELLED");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends after the final state"
    );

    // Another dialect's job, another account's job, a malformed id: not
    // found, in the route's dialect's shape.
    for (path, key) in [
        (format!("/api/jobs/{}/events", gateway.id), &key),
        (format!("/api/jobs/{}/events", video.id), &stranger_key),
        ("/api/jobs/nonsense/events".to_owned(), &key),
    ] {
        let response = server.get(&path, key, None).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "Job not found"}),
            "{path}"
        );
    }
    let response = server
        .get(&format!("/v1/jobs/{}/events", video.id), &key, None)
        .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "JOB_NOT_FOUND");
    assert!(body["requestId"].as_str().unwrap().starts_with("req_"));
}

#[tokio::test]
async fn refusals_of_the_event_routes_are_in_their_dialects_shapes() {
    let server = serve().await;
    let (principal, _) = server.account(&["check_status", "submit_job"]).await;
    let (_, submit_only) = server.account(&["submit_job"]).await;
    let job = server.job(&principal, "video", None).await;

    let no_key = reqwest::get(format!("{}/events", server.base))
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let body: Value = no_key.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");

    let response = server.get("/events", &submit_only, None).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INSUFFICIENT_SCOPE");

    let response = server
        .get(&format!("/api/jobs/{}/events", job.id), &submit_only, None)
        .await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("check_status"),
        "{body}"
    );

    let response = server
        .get(
            &format!("/v1/jobs/{}/events", job.id),
            "genq_not-a-key",
            None,
        )
        .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_API_KEY");
}

/// The methods a route takes, as the live router says: a method it does
/// not take (OPTIONS, which no route takes) is a 405 whose `Allow` lists
/// them.
async fn methods_of(base: &str, path: &str) -> Vec<String> {
    let concrete = path_shape(path).replace("{}", "0193a6d2-5c1e-7bb4-9d3e-0a1b2c3d4e5f");
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}{concrete}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405, "OPTIONS {concrete}");
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    let mut methods: Vec<String> = allow
        .split(',')
        .map(|m| m.trim().to_lowercase())
        .filter(|m| m != "head")
        .collect();
    methods.sort();
    methods
}

/// The operations the document describes, by path shape.
fn documented(doc: &Value) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut operations = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let mut methods: Vec<String> = item.as_object().unwrap().keys().cloned().collect();
        methods.sort();
        operations.insert(path_shape(path), methods);
    }
    operations
}

/// Walks every route the dialects and genq's shared routes mount
/// (`genq_dialects::mounted_paths`, the list the router is built from),
/// asks the live router which methods each takes, and holds
/// `/openapi.json` to it both ways: a route added without documentation,
/// or documentation of a route that is gone, fails here. (The console's
/// routes are walked in `crates/genq/tests/console_http.rs`.)
#[tokio::test]
async fn the_openapi_document_describes_every_route_and_only_those() {
    let server = serve().await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut documented = documented(&doc);
    let mut mounted = std::collections::BTreeSet::new();
    for path in genq_dialects::mounted_paths(&settings(&server.base)) {
        if !mounted.insert(path_shape(&path)) {
            continue;
        }
        let methods = methods_of(&server.base, &path).await;
        let described = documented.remove(&path_shape(&path));
        assert_eq!(
            described.as_ref(),
            Some(&methods),
            "{path} takes {methods:?}; the OpenAPI document describes {described:?}"
        );
    }
    assert!(
        documented.is_empty(),
        "the OpenAPI document describes routes that are not mounted: {documented:?}"
    );
    // Every operation says which status codes it answers with, the shared
    // refusals included, each with a body schema or content type.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["429", "500", "503"] {
                let limited =
                    path != "/health" && path != "/openapi.json" && !path.starts_with("/media/");
                if limited || status == "503" {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            for (status, response) in responses {
                if status != "503" {
                    assert_eq!(
                        response["headers"]["X-Request-Id"]["required"], true,
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    for (path, method) in [("/v1/jobs", "get"), ("/api/jobs", "get")] {
        let limit = doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(
            (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
            (&serde_json::json!(1), &serde_json::json!(100)),
            "{path}: limit is 1–100, as the server accepts"
        );
    }
    assert_eq!(
        doc["paths"]["/v1/jobs"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/V1JobList"
    );
}
