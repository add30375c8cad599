//! Events across processes on PostgreSQL: an SSE client of an API-only node
//! (`genq serve --workers 0`) follows what a `genq worker` process does, and
//! keeps hearing after PostgreSQL restarts under both. Its own test binary:
//! the restart would cut every other test's connections.
//! Skipped when `GENQ_TEST_POSTGRES_URL=off`; the restart is skipped when the
//! server is not a local cluster this test can restart (`pg_ctlcluster`).

mod common;

use common::postgres::Database;
use common::*;
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The next event within `within`.
async fn next(events: &mut (impl Stream<Item = Event> + Unpin), within: Duration) -> Event {
    tokio::time::timeout(within, events.next())
        .await
        .unwrap_or_else(|_| panic!("no event within {within:?}"))
        .expect("the stream goes on")
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

/// Follows `events` until `job` is COMPLETED; the statuses and progress
/// values seen of it, and when its first event came.
async fn follow(
    events: &mut (impl Stream<Item = Event> + Unpin),
    job: &str,
) -> (Vec<(String, u64)>, Instant) {
    let mut seen = Vec::new();
    let mut first = None;
    loop {
        let event = next(events, Duration::from_secs(60)).await;
        let body = data(&event);
        if body["jobId"] != job {
            continue;
        }
        first.get_or_insert_with(Instant::now);
        seen.push((event.event.clone(), body["progress"].as_u64().unwrap()));
        match event.event.as_str() {
            "COMPLETED" => return (seen, first.expect("set above")),
            "FAILED" | "CANCELLED" => panic!("the job ended {seen:?}: {body}"),
            _ => {}
        }
    }
}

/// A child process that does not outlive a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Restarts the local PostgreSQL cluster, when this machine has one to
/// restart; false otherwise.
fn restart_postgres() -> bool {
    let Ok(versions) = std::fs::read_dir("/etc/postgresql") else {
        return false;
    };
    let Some(version) = versions
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
    else {
        return false;
    };
    let restarted = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .stdout(Stdio::null())
        .status();
    matches!(restarted, Ok(status) if status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_node_streams_a_worker_processs_changes_and_survives_a_database_restart() {
    let Some(db) = Database::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let api = Server::start(
        &data_dir,
        &["--workers", "0", "--database-url", &db.url],
        &[],
    );
    let account = create_account_with(&data_dir, "events", &["--database-url", &db.url]);
    let client = Client::new(&account.api_key);
    let mut worker = KillOnDrop(
        Command::new(GENQ)
            .args([
                "worker",
                "--concurrency",
                "1",
                "--database-url",
                &db.url,
                "--data-dir",
            ])
            .arg(&data_dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let response = reqwest::Client::new()
        .get(api.url("/events"))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response
        .bytes_stream()
        .eventsource()
        .map(|e| e.expect("a well-formed event"));

    let image = image(&fixtures, "still.png", 1280, 720);
    let audio = audio(&fixtures, "long.wav", 120.0);
    let (code, created) = client.submit(&api, &image, &audio, None).await;
    assert_eq!(code, 201, "{created}");
    let first = created["jobId"].as_str().unwrap().to_owned();
    let (seen, _) = follow(&mut events, &first).await;
    assert_eq!(
        seen.first().map(|s| s.0.as_str()),
        Some("PENDING"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .filter(|(status, p)| status == "PROCESSING" && *p > 0 && *p < 100)
            .count()
            >= 2,
        "the worker process's progress reaches the API node's client: {seen:?}"
    );

    if !restart_postgres() {
        eprintln!("skipped the restart: no local PostgreSQL cluster to restart here");
    } else {
        // The restart cut every connection: the stream must hear again.
        let restarted = Instant::now();
        let second = loop {
            let (code, created) = client.submit(&api, &image, &audio, None).await;
            if code == 201 {
                break created["jobId"].as_str().unwrap().to_owned();
            }
            assert!(
                restarted.elapsed() < Duration::from_secs(30),
                "{code}: {created}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let submitted = Instant::now();
        // Its first state may have been announced while the API node's
        // listener was still reconnecting: the stream then catches up with
        // the job's current state instead (no gap, maybe no PENDING).
        let (seen, first_event) = follow(&mut events, &second).await;
        let heard = first_event - submitted;
        eprintln!(
            "after the restart: accepted after {:?}, first event {heard:?} later, seen {seen:?}",
            submitted - restarted
        );
        assert!(
            heard < Duration::from_secs(10),
            "events flow again within seconds of a restart (here {heard:?})"
        );
    }
    unsafe { libc::kill(worker.0.id() as i32, libc::SIGTERM) };
    assert!(worker.0.wait().unwrap().success());
}
