//! Catalog models served by a real Cog prediction server (the `cog` package
//! from PyPI), through the Jobs v1 gateway.

#[allow(dead_code)]
#[path = "../../cog/tests/support/mod.rs"]
mod cog_support;
mod common;

use cog_support::{CogServer, Predictor};
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
    account: Account,
    _cog: Vec<CogServer>,
}

/// A genq whose catalog points the seed's example slug at a Cog image model,
/// plus a failing and a slow model.
async fn setup() -> Setup {
    let (image, failing, slow) = (
        CogServer::start(Predictor::Image).await,
        CogServer::start(Predictor::Failing).await,
        CogServer::start(Predictor::Slow).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("models.toml"),
        format!(
            r#"
[[models]]
slug = "google/veo-3.1-fast/text-to-video"
output = "image"
price = {{ flat = 500000 }}
backend = {{ cog = "{image}" }}
input_schema = {{ type = "object", required = ["prompt"], properties = {{ prompt = {{ type = "string" }}, size = {{ type = "integer" }} }} }}

[[models]]
slug = "acme/broken/text-to-image"
output = "image"
price = {{ flat = 1000 }}
backend = {{ cog = "{failing}" }}
input_schema = {{ type = "object" }}

[[models]]
slug = "acme/slow/text-to-text"
output = "text"
price = {{ flat = 2000 }}
backend = {{ cog = "{slow}" }}
input_schema = {{ type = "object" }}
"#,
            image = image.url,
            failing = failing.url,
            slow = slow.url
        ),
    )
    .unwrap();
    let server = Server::start(&data, &[], &[]);
    let account = create_account_with(&data, "cog", &["--credits", "1000000"]);
    Setup {
        _dir: dir,
        server,
        account,
        _cog: vec![image, failing, slow],
    }
}

impl Setup {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, self.server.url(path))
            .bearer_auth(&self.account.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.unwrap()).await
    }

    async fn submit(&self, body: Value) -> String {
        let (code, submitted) = self
            .call(reqwest::Method::POST, "/v1/jobs/submit", Some(body))
            .await;
        assert_eq!(code, 200, "{submitted}");
        submitted["jobId"].as_str().unwrap().to_owned()
    }

    async fn wait_for(&self, job: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, status) = self
                .call(reqwest::Method::GET, &format!("/v1/jobs/{job}"), None)
                .await;
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{status}\n{}", self.server.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn balance(&self) -> i64 {
        self.call(reqwest::Method::GET, "/v1/account", None).await.1["balanceMicroCents"]
            .as_i64()
            .unwrap()
    }
}

fn finished(status: &Value) -> bool {
    ["completed", "failed", "cancelled"].contains(&status["status"].as_str().unwrap())
}

#[tokio::test]
async fn the_seed_example_runs_on_a_cog_model_and_its_failures_and_cancels_are_refunded() {
    let s = setup().await;

    // The seed's example request, as written (host replaced).
    let job = s
        .submit(json!({
            "model": "google/veo-3.1-fast/text-to-video",
            "input": { "prompt": "A cinematic drone shot of a mountain landscape at sunset" },
            "webhookUrl": "https://example.com/webhooks/pixelbyte"
        }))
        .await;
    let done = s.wait_for(&job, finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["outputs"][0]["type"], "image");
    let png = reqwest::get(done["output"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"\x89PNG");
    assert_eq!(s.balance().await, 1_000_000 - 500_000);

    // Cog's own validation, reported as a failed job and refunded.
    let job = s.submit(json!({ "model": "google/veo-3.1-fast/text-to-video", "input": { "prompt": "x", "size": 1 } })).await;
    let failed = s.wait_for(&job, finished).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "INVALID_INPUT");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("size"),
        "{failed}"
    );

    let job = s
        .submit(json!({ "model": "acme/broken/text-to-image", "input": { "prompt": "a cat" } }))
        .await;
    let failed = s.wait_for(&job, finished).await;
    assert_eq!(failed["error"]["code"], "GENERATION_FAILED", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exploded"),
        "{failed}"
    );
    assert_eq!(s.balance().await, 1_000_000 - 500_000);

    // Cancelling a running prediction stops it on the Cog server and refunds.
    let job = s
        .submit(json!({ "model": "acme/slow/text-to-text", "input": { "seconds": 30 } }))
        .await;
    s.wait_for(&job, |st| st["status"] == "processing").await;
    let started = Instant::now();
    let (code, cancelled) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/jobs/{job}/cancel"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.balance().await, 1_000_000 - 500_000);

    // The slow model is free again: a short prediction completes.
    let job = s
        .submit(json!({ "model": "acme/slow/text-to-text", "input": { "seconds": 0.1 } }))
        .await;
    let done = s.wait_for(&job, finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["outputs"][0]["type"], "text");
    let text = reqwest::get(done["output"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("slept"), "{text}");
    assert_eq!(s.balance().await, 1_000_000 - 500_000 - 2_000);
}
