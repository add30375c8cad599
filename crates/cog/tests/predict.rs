//! The Cog client against real Cog prediction servers (see `support`).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use genq_cog::{CogClient, CogError};
use genq_outbound::fetch::Fetcher;
use genq_outbound::OutboundPolicy;
use serde_json::json;
use support::{CogServer, Predictor};
use tokio_util::sync::CancellationToken;

fn client(timeout: Duration) -> CogClient {
    // Model servers live on private addresses, so the caller allows them.
    let policy = OutboundPolicy {
        allow_private: true,
        ..Default::default()
    };
    let fetcher = Fetcher::new(&policy, 16 << 20, Duration::from_secs(30)).unwrap();
    CogClient::new(&policy, fetcher, timeout).unwrap()
}

async fn predict(
    client: &CogClient,
    server: &CogServer,
    id: &str,
    input: serde_json::Value,
    out_dir: &Path,
) -> Result<Vec<genq_cog::CogFile>, CogError> {
    client
        .predict(&server.url, id, &input, out_dir, &CancellationToken::new())
        .await
}

#[tokio::test]
async fn an_image_prediction_writes_a_png_of_the_requested_size() {
    let server = CogServer::start(Predictor::Image).await;
    let out = tempfile::tempdir().unwrap();
    let files = predict(
        &client(Duration::from_secs(60)),
        &server,
        "job-1",
        json!({"prompt": "a blue square", "size": 96}),
        out.path(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert_eq!(file.content_type, "image/png");
    assert_eq!(file.path, out.path().join("output-0.png"));
    assert_eq!(file.size, std::fs::metadata(&file.path).unwrap().len());
    let image = image::open(&file.path).unwrap();
    assert_eq!((image.width(), image.height()), (96, 96));
    assert!(!out.path().join("output-0.part").exists());
}

#[tokio::test]
async fn invalid_input_names_the_field() {
    let server = CogServer::start(Predictor::Image).await;
    let client = client(Duration::from_secs(60));
    let out = tempfile::tempdir().unwrap();

    let error = predict(
        &client,
        &server,
        "bad-1",
        json!({"prompt": "x", "size": 1}),
        out.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, CogError::InvalidInput(_)), "{error:?}");
    assert_eq!(error.code(), "INVALID_INPUT");
    let message = error.to_string();
    assert!(
        message.contains("size") && message.contains('8'),
        "{message}"
    );

    let error = predict(
        &client,
        &server,
        "bad-2",
        json!({"size": "big"}),
        out.path(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("size:") && message.contains("prompt: Field required"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_failing_model_reports_its_own_error() {
    let server = CogServer::start(Predictor::Failing).await;
    let out = tempfile::tempdir().unwrap();
    let error = predict(
        &client(Duration::from_secs(60)),
        &server,
        "fail-1",
        json!({"prompt": "a cat"}),
        out.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, CogError::Failed(_)), "{error:?}");
    assert_eq!(error.code(), "GENERATION_FAILED");
    assert_eq!(
        error.to_string(),
        "the model failed: RuntimeError: the model exploded on 'a cat'"
    );
}

#[tokio::test]
async fn cancel_and_timeout_stop_the_prediction_and_free_the_model() {
    let server = CogServer::start(Predictor::Slow).await;
    let client = client(Duration::from_secs(60));
    let out = tempfile::tempdir().unwrap();

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let cancelled_at = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        trigger.cancel();
        Instant::now()
    });
    let error = client
        .predict(
            &server.url,
            "slow-1",
            &json!({"seconds": 30}),
            out.path(),
            &cancel,
        )
        .await
        .unwrap_err();
    let took = cancelled_at.await.unwrap().elapsed();
    assert!(matches!(error, CogError::Cancelled), "{error:?}");
    assert_eq!(error.code(), "CANCELLED");
    assert!(took < Duration::from_secs(2), "cancelling took {took:?}");

    let short = self::client(Duration::from_secs(1));
    let started = Instant::now();
    let error = predict(
        &short,
        &server,
        "slow-2",
        json!({"seconds": 30}),
        out.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, CogError::Timeout), "{error:?}");
    assert_eq!(error.code(), "TIMEOUT");
    assert!(started.elapsed() < Duration::from_secs(3));

    // The model is free again: the next prediction, sent at once, runs, and
    // its text output becomes a text file.
    let files = predict(
        &client,
        &server,
        "slow-3",
        json!({"seconds": 0.1}),
        out.path(),
    )
    .await
    .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].content_type, "text/plain");
    assert_eq!(
        std::fs::read_to_string(&files[0].path).unwrap(),
        "slept 0.1"
    );

    // Cancelled before it starts: nothing is sent.
    let error = client
        .predict(&server.url, "slow-4", &json!({}), out.path(), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, CogError::Cancelled));
}

#[tokio::test]
async fn back_to_back_predictions_wait_for_the_slot_but_not_for_long() {
    let server = CogServer::start(Predictor::Slow).await;
    let client = client(Duration::from_secs(60));
    let out = tempfile::tempdir().unwrap();
    // Cog has one slot and answers 409 while it is taken (and for a moment
    // after it answers); the client retries briefly, so three predictions
    // sent at once all run, one after the other.
    let (a, b, c) = tokio::join!(
        predict(&client, &server, "q1", json!({"seconds": 0.3}), out.path()),
        predict(&client, &server, "q2", json!({"seconds": 0.3}), out.path()),
        predict(&client, &server, "q3", json!({"seconds": 0.3}), out.path()),
    );
    for result in [a, b, c] {
        result.unwrap();
    }

    // Busy with a long prediction for longer than the client waits.
    let long = {
        let url = server.url.clone();
        let dir = out.path().to_owned();
        tokio::spawn(async move {
            self::client(Duration::from_secs(60))
                .predict(
                    &url,
                    "long",
                    &json!({"seconds": 4}),
                    &dir,
                    &CancellationToken::new(),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let error = predict(&client, &server, "other", json!({"seconds": 0}), out.path())
        .await
        .unwrap_err();
    assert!(matches!(error, CogError::Unreachable(_)), "{error:?}");
    assert!(error.to_string().contains("busy"), "{error}");
    long.await.unwrap().unwrap();
}

#[tokio::test]
async fn lists_and_non_file_outputs_become_files() {
    let server = CogServer::start(Predictor::Mixed).await;
    let out = tempfile::tempdir().unwrap();
    let files = predict(
        &client(Duration::from_secs(60)),
        &server,
        "mixed-1",
        json!({}),
        out.path(),
    )
    .await
    .unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| {
            (
                f.path.file_name().unwrap().to_str().unwrap(),
                f.content_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("output-0.json", "application/json"),
            ("output-1.txt", "text/plain")
        ]
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0].path).unwrap()).unwrap();
    assert_eq!(json, json!({"seed": 42}));
}

#[tokio::test]
async fn a_server_that_is_not_running_is_unreachable() {
    let url = format!("http://127.0.0.1:{}/", support::free_port())
        .parse()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let error = client(Duration::from_secs(10))
        .predict(&url, "p", &json!({}), out.path(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(error, CogError::Unreachable(_)), "{error:?}");
    assert_eq!(error.code(), "BACKEND_UNAVAILABLE");
}

#[tokio::test]
async fn the_address_policy_applies_to_model_servers() {
    let fetcher =
        Fetcher::new(&OutboundPolicy::default(), 1 << 20, Duration::from_secs(5)).unwrap();
    let client =
        CogClient::new(&OutboundPolicy::default(), fetcher, Duration::from_secs(5)).unwrap();
    let out = tempfile::tempdir().unwrap();
    for url in ["http://127.0.0.1:5000/", "http://localhost:5000/"] {
        let error = client
            .predict(
                &url.parse().unwrap(),
                "p",
                &json!({}),
                out.path(),
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, CogError::Unreachable(_)), "{error:?}");
        assert!(error.to_string().contains("loopback"), "{error}");
    }
}
