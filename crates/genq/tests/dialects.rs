//! What holds across the dialects, tried as a user would: scopes on every
//! route of each dialect (a read-only key cannot submit or cancel, a
//! submit-only key cannot read), each refused in the route's dialect's
//! shape; each dialect's routes see only the jobs submitted through it; a
//! rate limit's 429 comes out in the shape of the dialect whose route was
//! called.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

struct World {
    _dir: tempfile::TempDir,
    fixtures: std::path::PathBuf,
    server: Server,
    account: Account,
}

fn world(args: &[&str]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let server = Server::start(&data, args, &[]);
    let account = create_account_with(&data, "dialects", &["--credits", "10000000"]);
    World {
        _dir: dir,
        fixtures,
        server,
        account,
    }
}

impl World {
    /// A new key of the account holding only `scopes`, made with the CLI.
    fn key(&self, scopes: &str) -> String {
        let created = cli_json(&[
            "keys",
            "create",
            "--account",
            &self.account.id,
            "--scopes",
            scopes,
            "--data-dir",
            self.server.data_dir.to_str().unwrap(),
        ]);
        created["apiKey"].as_str().unwrap().to_owned()
    }

    async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, self.server.url(path))
            .header("X-API-Key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.unwrap()).await
    }

    async fn video_job(&self, key: &str) -> (u16, Value) {
        let image = image(&self.fixtures, "still.png", 64, 64);
        let audio = audio(&self.fixtures, "tone.wav", 1.0);
        Client::new(key)
            .submit(&self.server, &image, &audio, None)
            .await
    }

    async fn gateway_job(&self, key: &str) -> (u16, Value) {
        let body = json!({"model": "genq/title-card/text-to-video", "input": {"prompt": "hi"}});
        self.call(key, Method::POST, "/v1/jobs/submit", Some(body))
            .await
    }
}

/// The Image+Audio Video API's 403.
fn video_forbidden((code, body): &(u16, Value), path: &str) {
    assert_eq!(*code, 403, "{path}: {body}");
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: {body}"));
    assert!(message.contains("scope"), "{path}: {message}");
}

/// The model gateway's 403.
fn gateway_forbidden((code, body): &(u16, Value), path: &str) {
    assert_eq!(*code, 403, "{path}: {body}");
    assert_eq!(
        body["error"]["code"], "INSUFFICIENT_SCOPE",
        "{path}: {body}"
    );
}

#[tokio::test]
async fn every_route_of_every_dialect_checks_its_scope() {
    let w = world(&["--workers", "0"]);
    let read_only = w.key("check_status");
    let submit_only = w.key("submit_job");
    let everything = &w.account.api_key;
    let (_, video) = w.video_job(everything).await;
    let video = video["jobId"].as_str().unwrap().to_owned();
    let (_, gateway) = w.gateway_job(everything).await;
    let gateway = gateway["jobId"].as_str().unwrap().to_owned();

    // A read-only key submits and cancels nothing.
    video_forbidden(&w.video_job(&read_only).await, "POST /api/jobs");
    for (method, path) in [
        (Method::POST, format!("/api/jobs/{video}/cancel")),
        (Method::DELETE, format!("/api/jobs/{video}")),
    ] {
        video_forbidden(&w.call(&read_only, method, &path, None).await, &path);
    }
    gateway_forbidden(&w.gateway_job(&read_only).await, "POST /v1/jobs/submit");
    let path = format!("/v1/jobs/{gateway}/cancel");
    gateway_forbidden(&w.call(&read_only, Method::POST, &path, None).await, &path);
    let template = json!({"type": "image", "canvas": {"width": 100, "height": 100}});
    let (code, body) = w
        .call(
            &read_only,
            Method::POST,
            "/api/provider/projects",
            Some(template.clone()),
        )
        .await;
    assert_eq!((code, &body["statusCode"]), (403, &json!(403)), "{body}");
    let (code, body) = w
        .call(
            &submit_only,
            Method::GET,
            "/api/provider/projects/active",
            None,
        )
        .await;
    assert_eq!((code, &body["statusCode"]), (403, &json!(403)), "{body}");
    let (code, body) = w
        .call(
            &submit_only,
            Method::POST,
            "/api/provider/projects",
            Some(template),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, _) = w
        .call(
            &read_only,
            Method::GET,
            "/api/provider/projects/active",
            None,
        )
        .await;
    assert_eq!(code, 200);

    // A submit-only key reads nothing.
    for path in [
        "/api/jobs".to_owned(),
        format!("/api/status/{video}"),
        format!("/api/jobs/{video}/webhooks"),
        format!("/api/jobs/{video}/events"),
    ] {
        video_forbidden(&w.call(&submit_only, Method::GET, &path, None).await, &path);
    }
    for path in [
        "/v1/jobs".to_owned(),
        format!("/v1/jobs/{gateway}"),
        format!("/v1/jobs/{gateway}/events"),
        "/events".to_owned(),
    ] {
        gateway_forbidden(&w.call(&submit_only, Method::GET, &path, None).await, &path);
    }

    // And each key does what its scope allows.
    let (code, _) = w
        .call(
            &read_only,
            Method::GET,
            &format!("/api/status/{video}"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = w
        .call(
            &read_only,
            Method::GET,
            &format!("/v1/jobs/{gateway}"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    let (code, body) = w
        .call(
            &submit_only,
            Method::POST,
            &format!("/api/jobs/{video}/cancel"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = w.gateway_job(&submit_only).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn each_dialect_sees_only_the_jobs_submitted_through_it() {
    let w = world(&["--workers", "0"]);
    let key = &w.account.api_key;
    let (_, video) = w.video_job(key).await;
    let video = video["jobId"].as_str().unwrap().to_owned();
    let (_, gateway) = w.gateway_job(key).await;
    let gateway = gateway["jobId"].as_str().unwrap().to_owned();

    let (_, list) = w.call(key, Method::GET, "/api/jobs", None).await;
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [video.as_str()]);
    let (_, list) = w.call(key, Method::GET, "/v1/jobs", None).await;
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [gateway.as_str()]);

    // Another dialect's job is not found, in the route's dialect's shape.
    for (method, path) in [
        (Method::GET, format!("/api/status/{gateway}")),
        (Method::POST, format!("/api/jobs/{gateway}/cancel")),
        (Method::GET, format!("/api/jobs/{gateway}/webhooks")),
    ] {
        let (code, body) = w.call(key, method, &path, None).await;
        assert_eq!(
            (code, body),
            (404, json!({"error": "Job not found"})),
            "{path}"
        );
    }
    for (method, path) in [
        (Method::GET, format!("/v1/jobs/{video}")),
        (Method::POST, format!("/v1/jobs/{video}/cancel")),
    ] {
        let (code, body) = w.call(key, method, &path, None).await;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (404, Some("JOB_NOT_FOUND")),
            "{path}"
        );
    }
    // Neither was touched.
    let (_, status) = w
        .call(key, Method::GET, &format!("/api/status/{video}"), None)
        .await;
    assert_eq!(status["status"], "PENDING");
    let (_, status) = w
        .call(key, Method::GET, &format!("/v1/jobs/{gateway}"), None)
        .await;
    assert_eq!(status["status"], "pending");
}

#[tokio::test]
async fn a_rate_limit_refuses_in_the_called_dialects_shape() {
    let w = world(&["--workers", "0", "--rate-limit-per-minute", "2"]);
    let key = &w.account.api_key;
    for _ in 0..2 {
        assert_eq!(w.call(key, Method::GET, "/v1/models", None).await.0, 200);
    }
    let response = reqwest::Client::new()
        .get(w.server.url("/v1/account"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (code, body) = json_of(response).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (429, Some("RATE_LIMITED")),
        "{body}"
    );
    assert_eq!(body["requestId"], request_id);
    // The same client's bucket, the other dialect's shape.
    let (code, body) = w.call(key, Method::GET, "/api/jobs", None).await;
    assert_eq!(code, 429);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Rate limit exceeded"),
        "{body}"
    );
    // And the Provider dialect's.
    let (code, body) = w.call(key, Method::GET, "/auth/credits", None).await;
    assert_eq!(code, 429);
    assert_eq!(body["statusCode"], 429, "{body}");
    assert_eq!(body["error"], "Too Many Requests", "{body}");
    // Routes outside the dialects are not limited.
    assert_eq!(
        reqwest::get(w.server.url("/health"))
            .await
            .unwrap()
            .status(),
        200
    );
}

/// What no handler answers — a path no route matches, a method the route
/// does not take, a path segment that is not UTF-8 — is still JSON in the
/// shape of the dialect owning the path's prefix (the longest: the
/// Provider's `/api/provider` inside the video API's `/api`).
#[tokio::test]
async fn refusals_outside_the_handlers_come_in_the_owning_dialects_shape() {
    let w = world(&["--workers", "0"]);
    let key = &w.account.api_key;
    let video = |(code, body): &(u16, Value), want: u16, what: &str| {
        assert_eq!(*code, want, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
    };
    let gateway = |(code, body): &(u16, Value), want: u16, what: &str| {
        assert_eq!(*code, want, "{what}: {body}");
        assert!(body["error"]["code"].is_string(), "{what}: {body}");
        assert!(body["requestId"].is_string(), "{what}: {body}");
    };
    let provider = |(code, body): &(u16, Value), want: u16, what: &str| {
        assert_eq!(*code, want, "{what}: {body}");
        assert_eq!(body["statusCode"], want, "{what}: {body}");
        assert!(body["message"].is_string(), "{what}: {body}");
    };

    // Unknown routes.
    video(
        &w.call(key, Method::GET, "/api/nope", None).await,
        404,
        "/api/nope",
    );
    gateway(
        &w.call(key, Method::GET, "/v1/nope", None).await,
        404,
        "/v1/nope",
    );
    gateway(&w.call(key, Method::GET, "/v1", None).await, 404, "/v1");
    for path in [
        "/jobs/a/b/c",
        "/api/provider/nope",
        "/auth/nope",
        "/storage/nope",
    ] {
        provider(&w.call(key, Method::GET, path, None).await, 404, path);
    }
    let (code, body) = w.call(key, Method::GET, "/nope", None).await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (404, &json!("NOT_FOUND")),
        "{body}"
    );

    // Methods a route does not take: 405 with its Allow header.
    for (path, shape) in [
        ("/api/jobs", 'v'),
        ("/v1/jobs/submit", 'g'),
        ("/auth/credits", 'p'),
        ("/api/provider/projects/active", 'p'),
    ] {
        let response = reqwest::Client::new()
            .put(w.server.url(path))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap();
        let allow = response.headers()["allow"].to_str().unwrap().to_owned();
        assert!(
            !allow.is_empty() && !allow.contains("PUT"),
            "{path}: {allow}"
        );
        let answer = json_of(response).await;
        match shape {
            'v' => video(&answer, 405, path),
            'g' => gateway(&answer, 405, path),
            _ => provider(&answer, 405, path),
        }
    }

    // Path segments that are not UTF-8.
    video(
        &w.call(key, Method::GET, "/api/status/%ff", None).await,
        404,
        "/api/status/%ff",
    );
    gateway(
        &w.call(key, Method::GET, "/v1/jobs/%ff", None).await,
        404,
        "/v1/jobs/%ff",
    );
    let path = "/storage/files/%ff?expires=1&signature=00";
    provider(&w.call(key, Method::GET, path, None).await, 404, path);
}

/// JSON bodies up to the documented 16 MB are read (a `data:` input of a
/// few MB fits); over it, 413 in the route's dialect's shape, not a 400.
#[tokio::test]
async fn json_bodies_fit_the_documented_limit_and_over_it_are_413() {
    let w = world(&["--workers", "0"]);
    let key = &w.account.api_key;
    let picture = "A".repeat(3_000_000);
    let body = json!({"model": "genq/image-audio-to-video", "input": {
        "image_url": format!("data:image/png;base64,{picture}"),
        "audio_url": "https://example.com/a.mp3"}});
    let (code, answer) = w
        .call(key, Method::POST, "/v1/jobs/submit", Some(body))
        .await;
    assert_eq!(code, 200, "{answer}");

    let huge = "A".repeat(17 * 1024 * 1024);
    let body = json!({"model": "genq/title-card/text-to-video", "input": {"prompt": huge}});
    let (code, answer) = w
        .call(key, Method::POST, "/v1/jobs/submit", Some(body))
        .await;
    assert_eq!(
        (code, &answer["error"]["code"]),
        (413, &json!("INVALID_INPUT")),
        "{answer}"
    );
    assert!(answer["requestId"].is_string(), "{answer}");
    let body = json!({"job_type": "tts", "input": {"text": huge}});
    let (code, answer) = w.call(key, Method::POST, "/jobs/v2", Some(body)).await;
    assert_eq!(
        (code, &answer["statusCode"]),
        (413, &json!(413)),
        "{answer}"
    );
    assert_eq!(answer["error"], "Payload Too Large", "{answer}");
}

/// Slowloris: clients from four addresses dribbling request lines a byte at
/// a time, more of them than the per-IP cap allows, into a server whose
/// open-file limit is 256. Each is cut off after the header timeout, those
/// over the cap get a clean 503 within a second, a stalled request body fails after
/// the body idle timeout — and meanwhile `/health` and submissions from
/// another address keep answering in time, and nothing runs out of files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_are_cut_off_while_others_keep_being_answered() {
    use std::net::{IpAddr, SocketAddr};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--workers",
        "0",
        "--header-timeout-seconds",
        "2",
        "--body-idle-timeout-seconds",
        "2",
        "--max-connections-per-ip",
        "40",
        "--rate-limit-per-minute",
        "0",
        "--submit-rate-limit-per-minute",
        "0",
        "--max-concurrent-jobs",
        "1000",
    ];
    let server = Server::start_with_file_limit(&data, &args, &[], 256);
    let account = create_account_with(&data, "slow", &["--credits", "100000000"]);
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let until = Instant::now() + Duration::from_secs(8);
    let refused = Arc::new(AtomicUsize::new(0));
    let longest_hold = Arc::new(Mutex::new(Duration::ZERO));
    let cut = Arc::new(AtomicUsize::new(0));

    let mut attackers = Vec::new();
    for source in 2..6u8 {
        for _ in 0..60 {
            let (refused, cut, longest_hold) = (refused.clone(), cut.clone(), longest_hold.clone());
            attackers.push(tokio::spawn(async move {
                let source = IpAddr::from([127, 0, 0, source]);
                let line = b"GET /health HTTP/1.1\r\nHost: genq\r\nX-Slow: yes";
                while Instant::now() < until {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket.bind(SocketAddr::new(source, 0)).unwrap();
                    let Ok(mut stream) = socket.connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    let opened = Instant::now();
                    let mut answer = [0u8; 512];
                    for byte in line.iter().cycle() {
                        if Instant::now() >= until {
                            return;
                        }
                        if stream.write_all(&[*byte]).await.is_err() {
                            cut.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        let read = tokio::time::timeout(
                            Duration::from_millis(300),
                            stream.read(&mut answer),
                        )
                        .await;
                        match read {
                            Err(_) => continue,
                            Ok(Ok(n)) if answer[..n].starts_with(b"HTTP/1.1 503") => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                break;
                            }
                            Ok(_) => {
                                cut.fetch_add(1, Ordering::Relaxed);
                                let mut longest = longest_hold.lock().unwrap();
                                *longest = (*longest).max(opened.elapsed());
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }

    // Another client, on a new connection each time, is answered in time.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut answered = 0;
    let mut submitted = 0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while Instant::now() < until {
        let health = http.get(server.url("/health")).send().await;
        let health = health.unwrap_or_else(|e| panic!("/health: {e}\n{}", server.log()));
        assert_eq!(health.status(), 200);
        answered += 1;
        if answered % 4 == 0 {
            let body = json!({"model": "genq/text-to-speech", "input": {"text": "hi"}});
            let response = http
                .post(server.url("/v1/jobs/submit"))
                .bearer_auth(&account.api_key)
                .json(&body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("a submission: {e}"));
            assert_eq!(response.status(), 200);
            submitted += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(answered >= 10 && submitted >= 2, "{answered} {submitted}");

    // A body that stops arriving fails the request, and frees the connection.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/jobs/submit HTTP/1.1\r\nHost: genq\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\"",
        account.api_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(6), stream.read(&mut answer))
        .await
        .expect("a stalled body is given up on")
        .unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );

    for attacker in attackers {
        attacker.await.unwrap();
    }
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "over the per-IP cap: 503"
    );
    assert!(
        cut.load(Ordering::Relaxed) >= 160,
        "cut off: {}",
        cut.load(Ordering::Relaxed)
    );
    let longest = *longest_hold.lock().unwrap();
    assert!(
        longest < Duration::from_secs(4),
        "a dribbler was held {longest:?}"
    );
    let log = server.log();
    assert!(!log.contains("Too many open files"), "{log}");
}
