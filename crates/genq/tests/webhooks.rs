//! Signed webhooks end to end: a real HTTPS receiver (Python, verifying with
//! the official `standardwebhooks` library) with a certificate from a private
//! CA that genq is told to trust.

mod common;

use common::tls::certificates;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Receiver {
    fn start(dir: &Path, secrets: &[&str], fail: u32, port: u16) -> Receiver {
        let log = dir.join(format!("received-{}.jsonl", rand_suffix()));
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .args([
                "--cert",
                dir.join("leaf.pem").to_str().unwrap(),
                "--key",
                dir.join("leaf.key").to_str().unwrap(),
            ])
            .args([
                "--log",
                log.to_str().unwrap(),
                "--fail",
                &fail.to_string(),
                "--port",
                &port.to_string(),
            ])
            .stdout(Stdio::piped());
        for secret in secrets {
            command.args(["--secret", secret]);
        }
        let mut child = command.spawn().expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("receiver did not start: {line:?}"));
        Receiver { child, port, log }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/hooks/vidgen", self.port)
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} deliveries, got {received:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

struct World {
    dir: tempfile::TempDir,
    data: PathBuf,
    ca: PathBuf,
    image: PathBuf,
    audio: PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = certificates(dir.path());
    let image = image(dir.path(), "portrait.jpg", 96, 64);
    let audio = audio(dir.path(), "voiceover.mp3", 1.0);
    World {
        data: dir.path().join("data"),
        dir,
        ca,
        image,
        audio,
    }
}

fn trusting_env(ca: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("GENQ_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("GENQ_WEBHOOK_CA_FILE", ca.to_str().unwrap().into()),
        ("GENQ_WEBHOOK_RETRY_SCHEDULE", "0,1,2".into()),
    ]
}

fn start(w: &World, args: &[&str], env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(&w.data, args, &env)
}

async fn deliveries(client: &Client, server: &Server, job: &str) -> Vec<Value> {
    let (code, body) = json_of(
        client
            .get(server.url(&format!("/api/jobs/{job}/webhooks")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["webhooks"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_completed_job_posts_its_status_signed_both_ways() {
    let w = world();
    let server = start(&w, &[], &trusting_env(&w.ca));
    let account = create_account(&w.data, "hooks");
    let receiver = Receiver::start(w.dir.path(), &[&account.webhook_secret], 0, 0);
    let client = Client::new(&account.api_key);
    let (code, created) = client
        .submit(
            &server,
            &w.image,
            &w.audio,
            Some(&receiver.url("localhost")),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let job = created["jobId"].as_str().unwrap();
    let status = client.wait_terminal(&server, job).await;
    assert_eq!(status["status"], "COMPLETED");

    let got = receiver.wait_for(1, Duration::from_secs(20));
    let delivery = &got[0];
    assert_eq!(delivery["path"], "/hooks/vidgen");
    assert_eq!(
        delivery["seed_ok"][&account.webhook_secret], true,
        "{delivery}"
    );
    assert_eq!(
        delivery["standard_ok"][&account.webhook_secret], true,
        "{delivery}"
    );
    // The body is exactly what GET /api/status/:jobId returns.
    let body: Value = serde_json::from_str(delivery["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, status);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = deliveries(&client, &server, job).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], delivery["webhook_id"]);
    assert_eq!(listed[0]["event"], "job.completed");
    assert_eq!(listed[0]["status"], "DELIVERED");
    assert_eq!(listed[0]["attempts"][0]["statusCode"], 200);
}

#[tokio::test]
async fn failed_attempts_are_retried_with_the_same_webhook_id() {
    let w = world();
    let server = start(&w, &["--workers", "0"], &trusting_env(&w.ca));
    let account = create_account(&w.data, "retries");
    let receiver = Receiver::start(w.dir.path(), &[&account.webhook_secret], 2, 0);
    let client = Client::new(&account.api_key);
    let (_, created) = client
        .submit(
            &server,
            &w.image,
            &w.audio,
            Some(&receiver.url("127.0.0.1")),
        )
        .await;
    let job = created["jobId"].as_str().unwrap();
    // A cancelled job owes its webhook too.
    client
        .post(server.url(&format!("/api/jobs/{job}/cancel")))
        .send()
        .await
        .unwrap();

    let got = receiver.wait_for(3, Duration::from_secs(30));
    let answers: Vec<i64> = got
        .iter()
        .map(|d| d["answered"].as_i64().unwrap())
        .collect();
    assert_eq!(answers, vec![500, 500, 200]);
    assert!(
        got.iter().all(|d| d["webhook_id"] == got[0]["webhook_id"]),
        "{got:?}"
    );
    let body: Value = serde_json::from_str(got[2]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "CANCELLED");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = deliveries(&client, &server, job).await;
    let codes: Vec<i64> = listed[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 500, 200]);
    assert_eq!(listed[0]["status"], "DELIVERED");
    assert!(listed[0]["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .contains("500"));
    // Another account cannot read them.
    let other = create_account(&w.data, "other");
    let (code, _) = json_of(
        Client::new(&other.api_key)
            .get(server.url(&format!("/api/jobs/{job}/webhooks")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_delivery_owed_when_the_server_dies_is_made_after_restart() {
    let w = world();
    let account_env = trusting_env(&w.ca);
    let mut server = start(&w, &[], &account_env);
    let account = create_account(&w.data, "crash");
    // Learn a free port, then leave it closed: the first attempt is refused.
    let port = {
        let probe = Receiver::start(w.dir.path(), &[&account.webhook_secret], 0, 0);
        probe.port
    };
    let url = format!("https://localhost:{port}/hooks/vidgen");
    let client = Client::new(&account.api_key);
    let (_, created) = client.submit(&server, &w.image, &w.audio, Some(&url)).await;
    let job = created["jobId"].as_str().unwrap().to_owned();
    assert_eq!(
        client.wait_terminal(&server, &job).await["status"],
        "COMPLETED"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliveries(&client, &server, &job).await[0]["attempts"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no attempt was made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();

    let receiver = Receiver::start(w.dir.path(), &[&account.webhook_secret], 0, port);
    let server = start(&w, &[], &account_env);
    let got = receiver.wait_for(1, Duration::from_secs(20));
    assert_eq!(got[0]["standard_ok"][&account.webhook_secret], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = deliveries(&client, &server, &job).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], got[0]["webhook_id"]);
    assert_eq!(listed[0]["status"], "DELIVERED");
    let attempts = listed[0]["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.first().unwrap()["statusCode"],
        Value::Null,
        "the first attempt found no receiver"
    );
    assert_eq!(attempts.last().unwrap()["statusCode"], 200);
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let w = world();
    let env = vec![
        ("GENQ_WEBHOOK_CA_FILE", w.ca.to_str().unwrap().to_owned()),
        // A refusal that waited for the schedule would not fail in time.
        ("GENQ_WEBHOOK_RETRY_SCHEDULE", "0,3600".to_owned()),
    ];
    let server = start(&w, &["--workers", "0"], &env);
    let account = create_account(&w.data, "ssrf");
    let receiver = Receiver::start(w.dir.path(), &[&account.webhook_secret], 0, 0);
    let client = Client::new(&account.api_key);
    for host in ["localhost", "127.0.0.1"] {
        let (code, created) = client
            .submit(&server, &w.image, &w.audio, Some(&receiver.url(host)))
            .await;
        assert_eq!(code, 201);
        let job = created["jobId"].as_str().unwrap();
        client
            .post(server.url(&format!("/api/jobs/{job}/cancel")))
            .send()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let listed = loop {
            let listed = deliveries(&client, &server, job).await;
            if listed[0]["status"] == "FAILED" {
                break listed;
            }
            assert!(Instant::now() < deadline, "{listed:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Refused at the first attempt, a name as at once as a literal.
        let attempts = listed[0]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{host}: {listed:?}");
        let error = attempts[0]["error"].as_str().unwrap();
        assert!(
            error.contains("refused") && error.contains("loopback"),
            "{host}: {error}"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "nothing may reach the receiver"
    );
}

#[tokio::test]
async fn during_a_rotation_both_secrets_verify() {
    let w = world();
    let server = start(&w, &["--workers", "0"], &trusting_env(&w.ca));
    let account = create_account(&w.data, "rotate");
    let rotated = cli_json(&[
        "accounts",
        "rotate-webhook-secret",
        &account.id,
        "--data-dir",
        w.data.to_str().unwrap(),
    ]);
    let new_secret = rotated["webhookSecret"].as_str().unwrap();
    assert_ne!(new_secret, account.webhook_secret);
    assert!(new_secret.starts_with("whsec_"));
    let receiver = Receiver::start(w.dir.path(), &[new_secret, &account.webhook_secret], 0, 0);
    let client = Client::new(&account.api_key);
    let (_, created) = client
        .submit(
            &server,
            &w.image,
            &w.audio,
            Some(&receiver.url("localhost")),
        )
        .await;
    client
        .post(server.url(&format!(
            "/api/jobs/{}/cancel",
            created["jobId"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();

    let got = receiver.wait_for(1, Duration::from_secs(20));
    let d = &got[0];
    assert_eq!(d["standard_ok"][new_secret], true, "{d}");
    assert_eq!(d["standard_ok"][&account.webhook_secret], true, "{d}");
    assert_eq!(
        d["seed_ok"][new_secret], true,
        "X-Webhook-Signature uses the new secret: {d}"
    );
    assert_eq!(
        d["webhook_signature"].as_str().unwrap().split(' ').count(),
        2
    );
}

#[tokio::test]
async fn the_31st_submission_in_a_minute_is_rate_limited() {
    let w = world();
    let server = start(&w, &["--workers", "0"], &[]);
    let account = create_account(&w.data, "busy");
    let client = Client::new(&account.api_key);

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = client.get(server.url("/api/jobs")).send().await.unwrap();
        assert_eq!(response.headers()["ratelimit-limit"], "600");
        assert!(response.headers().contains_key("ratelimit-reset"));
        assert!(response.headers().contains_key("ratelimit-policy"));
        remaining.push(
            response.headers()["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert!(
        remaining.windows(2).all(|p| p[1] == p[0] - 1),
        "{remaining:?}"
    );

    for i in 0..30 {
        let (code, body) = client.submit(&server, &w.image, &w.audio, None).await;
        // The first is accepted; the rest find it active. All count.
        assert_eq!(code, if i == 0 { 201 } else { 409 }, "{body}");
    }
    let part = |p: &Path| reqwest::multipart::Part::bytes(std::fs::read(p).unwrap()).file_name("f");
    let form = reqwest::multipart::Form::new()
        .part("image", part(&w.image))
        .part("audio", part(&w.audio));
    let response = client
        .post(server.url("/api/jobs"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    assert_eq!(response.headers()["ratelimit-limit"], "30");
    let (_, body) = json_of(response).await;
    assert!(body["error"].is_string());
    // Reads are still allowed, and /health is never limited.
    assert_eq!(
        client
            .get(server.url("/api/jobs"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert!(!health.headers().contains_key("ratelimit-limit"));
}

#[tokio::test]
async fn a_model_gateway_job_posts_its_v1_body() {
    let w = world();
    let server = start(&w, &[], &trusting_env(&w.ca));
    let account = create_account_with(&w.data, "gateway", &["--credits", "1000000"]);
    let receiver = Receiver::start(w.dir.path(), &[&account.webhook_secret], 0, 0);
    let response = reqwest::Client::new()
        .post(server.url("/v1/jobs/submit"))
        .bearer_auth(&account.api_key)
        .json(&serde_json::json!({
            "model": "genq/title-card/text-to-video",
            "input": { "prompt": "Welcome", "duration": 1 },
            "webhookUrl": receiver.url("localhost"),
        }))
        .send()
        .await
        .unwrap();
    let (code, submitted) = json_of(response).await;
    assert_eq!(code, 200, "{submitted}");
    let got = receiver.wait_for(1, Duration::from_secs(60));
    assert_eq!(got[0]["standard_ok"][&account.webhook_secret], true);
    let body: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    let job = submitted["jobId"].as_str().unwrap();
    let status = reqwest::Client::new()
        .get(server.url(&format!("/v1/jobs/{job}")))
        .bearer_auth(&account.api_key)
        .send()
        .await
        .unwrap();
    let (_, status) = json_of(status).await;
    assert_eq!(body, status);
    assert_eq!(body["status"], "completed");
}
