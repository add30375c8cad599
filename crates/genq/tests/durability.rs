//! A job accepted survives: kill -9 mid-render, and SIGTERM with and without
//! time to finish.

mod common;

use common::*;
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
    let args = ["--lease-seconds", "2"];
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
