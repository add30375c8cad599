//! A job accepted survives: kill -9 mid-render, and SIGTERM with and without
//! time to finish.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

const AUDIO_SECONDS: f64 = 180.0;

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    image: std::path::PathBuf,
    audio: std::path::PathBuf,
}

/// Inputs that take a few seconds to render on two cores (the audio
/// transcode dominates: still frames cost almost nothing).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let image = image(dir.path(), "big.png", 1280, 720);
    let audio = audio(dir.path(), "long.wav", AUDIO_SECONDS);
    Fixture {
        _dir: dir,
        data,
        image,
        audio,
    }
}

async fn submit_and_wait_processing(server: &Server, client: &Client, f: &Fixture) -> String {
    let (code, created) = client
        .submit(server, &f.image, &f.audio, Some("https://example.com/hook"))
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["jobId"].as_str().unwrap().to_owned();
    client
        .poll_until(server, &id, Duration::from_secs(60), |s| {
            s["status"] == "PROCESSING"
        })
        .await;
    id
}

async fn list_item(server: &Server, client: &Client) -> Value {
    let (code, list) = json_of(client.get(server.url("/api/jobs")).send().await.unwrap()).await;
    assert_eq!(code, 200);
    let jobs = list["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "exactly one job: {list}");
    jobs[0].clone()
}

#[tokio::test]
async fn a_job_survives_kill_9_mid_render_and_completes_after_restart() {
    let f = fixture();
    let args = ["--lease-seconds", "2", "--rate-limit-per-minute", "0"];
    let mut server = Server::start(&f.data, &args, &[]);
    let account = create_account(&f.data, "crash");
    let client = Client::new(&account.api_key);
    let id = submit_and_wait_processing(&server, &client, &f).await;
    let before = list_item(&server, &client).await;
    let work = f.data.join("tmp/work");
    let work_dirs = || -> Vec<String> {
        std::fs::read_dir(&work)
            .map(|dir| {
                dir.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    // PROCESSING is recorded when the job is claimed, a moment before its
    // run makes its work directory: wait for the directory, so that the
    // kill lands mid-render.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while work_dirs().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    // The killed run's work directory could not remove itself.
    assert_eq!(work_dirs(), [format!("{id}-1")]);

    let server = Server::start(&f.data, &args, &[]);
    let done = client.wait_terminal(&server, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}\n{}", server.log());
    // The run that took the job over removed it, and then its own.
    assert_eq!(work_dirs(), Vec::<String>::new());
    let after = list_item(&server, &client).await;
    assert_eq!(after["retries"], 1);
    for field in ["id", "createdAt", "webhookUrl"] {
        assert_eq!(after[field], before[field], "{field} changed");
    }
    let video = reqwest::get(after["outputVideo"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(video.status(), 200);
    let path = f.data.join("downloaded.mp4");
    std::fs::write(&path, video.bytes().await.unwrap()).unwrap();
    let length = seconds(&stream(&ffprobe(&path), "video")["duration"]);
    assert!((length - AUDIO_SECONDS).abs() <= 0.04, "{length}");
}

#[tokio::test]
async fn sigterm_lets_a_running_render_finish() {
    let f = fixture();
    let mut server = Server::start(&f.data, &["--shutdown-grace-seconds", "120"], &[]);
    let account = create_account(&f.data, "graceful");
    let client = Client::new(&account.api_key);
    let id = submit_and_wait_processing(&server, &client, &f).await;
    let status = server.terminate(Duration::from_secs(120));
    assert!(status.success(), "exit status {status}");

    let server = Server::start(&f.data, &["--workers", "0"], &[]);
    let done = client.status(&server, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(list_item(&server, &client).await["retries"], 0);
}

#[tokio::test]
async fn sigterm_past_the_grace_period_releases_the_job_for_another_process() {
    let f = fixture();
    let mut server = Server::start(&f.data, &["--shutdown-grace-seconds", "0"], &[]);
    let account = create_account(&f.data, "impatient");
    let client = Client::new(&account.api_key);
    let id = submit_and_wait_processing(&server, &client, &f).await;
    let status = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
    assert!(server.log().contains("released"), "{}", server.log());

    let server = Server::start(&f.data, &["--workers", "0"], &[]);
    let released = client.status(&server, &id).await;
    assert_eq!(released["status"], "PENDING", "{released}");
    drop(server);

    // Released, not lost: the next process runs it, and no retry was counted.
    let server = Server::start(&f.data, &[], &[]);
    assert_eq!(
        client.wait_terminal(&server, &id).await["status"],
        "COMPLETED"
    );
    assert_eq!(list_item(&server, &client).await["retries"], 0);
}

/// Keyed v1 submissions in flight when the server is SIGKILLed: retried
/// with their keys after a restart, each key ends with exactly one job,
/// charged once, whichever side of its commit the kill fell on.
#[tokio::test]
async fn keyed_submissions_cut_by_kill_9_make_one_job_each_when_retried() {
    const KEYS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--workers",
        "0",
        "--max-concurrent-jobs",
        "1000",
        "--rate-limit-per-minute",
        "0",
        "--submit-rate-limit-per-minute",
        "0",
    ];
    let mut server = Server::start(&data, &args, &[]);
    let account = create_account_with(&data, "keyed", &["--credits", "1000000000"]);
    let balance = |server: &Server| {
        let (url, key) = (server.url("/v1/account"), account.api_key.clone());
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            json_of(response).await.1["balanceMicroCents"]
                .as_i64()
                .unwrap()
        }
    };
    let before = balance(&server).await;
    let submit = |base: String, i: usize| {
        let key = account.api_key.clone();
        async move {
            let body = serde_json::json!({
                "model": "genq/text-to-speech",
                "input": {"text": format!("Submission {i}.")},
            });
            let response = reqwest::Client::new()
                .post(format!("{base}/v1/jobs/submit"))
                .bearer_auth(key)
                .header("Idempotency-Key", format!("kill-{i}"))
                .json(&body)
                .send()
                .await
                .ok()?;
            let code = response.status().as_u16();
            Some((code, json_of(response).await.1))
        }
    };
    // All at once, and the kill as soon as the first is answered: some are
    // committed and answered, some committed and not yet answered, some not
    // yet committed.
    let mut racing: futures::stream::FuturesUnordered<_> = (0..KEYS)
        .map(|i| tokio::spawn(submit(server.base.clone(), i)))
        .collect();
    let mut answered_before = 0;
    while let Some(answer) = racing.next().await {
        if let Some((200, _)) = answer.unwrap() {
            answered_before += 1;
            break;
        }
    }
    server.kill();
    while let Some(answer) = racing.next().await {
        if let Some((200, _)) = answer.unwrap() {
            answered_before += 1;
        }
    }

    let server = Server::start(&data, &args, &[]);
    let response = reqwest::Client::new()
        .get(server.url("/v1/jobs?limit=100"))
        .bearer_auth(&account.api_key)
        .send()
        .await
        .unwrap();
    let committed = json_of(response).await.1["jobs"].as_array().unwrap().len();
    eprintln!("{answered_before} of {KEYS} answered, {committed} committed before the kill");
    let mut job_ids = std::collections::HashSet::new();
    let mut cost = 0;
    for i in 0..KEYS {
        // A claim cut short frees itself within its lease (on PostgreSQL).
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        let body = loop {
            let (code, body) = submit(server.base.clone(), i).await.unwrap();
            if code == 200 {
                break body;
            }
            assert_eq!(code, 409, "{body}");
            assert!(std::time::Instant::now() < deadline, "key {i} stays in use");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        job_ids.insert(body["jobId"].as_str().unwrap().to_owned());
        cost = body["costMicroCents"].as_i64().unwrap();
    }
    assert_eq!(job_ids.len(), KEYS);
    let response = reqwest::Client::new()
        .get(server.url("/v1/jobs?limit=100"))
        .bearer_auth(&account.api_key)
        .send()
        .await
        .unwrap();
    let (_, list) = json_of(response).await;
    let listed: std::collections::HashSet<String> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed, job_ids,
        "{answered_before} were answered before the kill"
    );
    assert_eq!(balance(&server).await, before - KEYS as i64 * cost);
}
