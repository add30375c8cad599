//! The command line beyond `serve`: offline rendering, and a worker process
//! serving an API-only node on the same data.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn render_writes_a_video_poster_and_thumbnail_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path(), "in.png", 201, 150);
    let audio = audio(dir.path(), "in.wav", 1.5);
    let out = dir.path().join("talk.mp4");
    let status = Command::new(GENQ)
        .args([
            "render",
            "--image",
            image.to_str().unwrap(),
            "--audio",
            audio.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let probe = ffprobe(&out);
    let video = stream(&probe, "video");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(200), Some(150))
    );
    assert!((seconds(&video["duration"]) - 1.5).abs() <= 0.04);
    assert!(dir.path().join("talk.poster.jpg").exists());
    assert!(dir.path().join("talk.thumbnail.jpg").exists());

    let bad = Command::new(GENQ)
        .args([
            "render",
            "--image",
            audio.to_str().unwrap(),
            "--audio",
            audio.to_str().unwrap(),
        ])
        .args(["--out", dir.path().join("bad.mp4").to_str().unwrap()])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("image could not be decoded"));
}

/// The harness really runs the suite on the backend it was asked for
/// (`GENQ_TEST_BACKEND`), and `db_query` reads that store.
#[test]
fn the_store_is_the_backend_under_test() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let account = create_account(&data, "backend");
    let sqlite_file = data.join("genq.db").exists();
    assert_eq!(sqlite_file, backend() == Backend::Sqlite, "{:?}", backend());
    assert_eq!(
        db_query(
            &data,
            &format!("SELECT name FROM accounts WHERE id = '{}'", account.id)
        ),
        "backend"
    );
}

#[tokio::test]
async fn a_worker_process_runs_the_jobs_an_api_only_node_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let api = Server::start(&data, &["--workers", "0"], &[]);
    let account = create_account(&data, "split");
    let client = Client::new(&account.api_key);
    let (code, created) = client
        .submit(
            &api,
            &image(dir.path(), "a.jpg", 64, 48),
            &audio(dir.path(), "a.mp3", 1.0),
            None,
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let job = created["jobId"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client.status(&api, job).await["status"], "PENDING");

    let mut worker = genq_on(&data)
        .args([
            "worker",
            "--concurrency",
            "1",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let done = client.wait_terminal(&api, job).await;
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    assert!(
        worker.wait().unwrap().success(),
        "the worker stops cleanly on SIGTERM"
    );
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let video = reqwest::get(done["outputVideo"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        video.status(),
        200,
        "the API node serves what the worker rendered"
    );
}
