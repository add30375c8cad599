//! Live job events end to end: the real `genq serve`, real renders, an SSE
//! client over TCP. A stream opened before its job's render starts sees it
//! PENDING, PROCESSING with rising progress, then COMPLETED, and ends; each
//! event's data is the body of the dialect's status endpoint. Subscribers
//! that never read do not hold a render up.

mod common;

use common::*;
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// An SSE stream of `path`, once the server answered 200.
async fn events(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> impl Stream<Item = Event> + Unpin {
    let mut request = reqwest::Client::new().get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response
        .bytes_stream()
        .eventsource()
        .map(|event| event.expect("a well-formed event"))
}

/// Every event until the stream ends (within `timeout`).
async fn until_end(mut stream: impl Stream<Item = Event> + Unpin, timeout: Duration) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(event)) => seen.push(event),
            Ok(None) => return seen,
            Err(_) => panic!("the stream did not end; saw {:?}", names(&seen)),
        }
    }
}

fn names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}:{}", e.event, data(e)["progress"]))
        .collect()
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

/// What a stream showed: PENDING first, PROCESSING with rising progress
/// (two values at least strictly between 0 and 100), the final status last,
/// ids (the change times) never going back.
fn assert_followed(seen: &[Event], statuses: [&str; 3]) {
    let [pending, processing, done] = statuses;
    assert_eq!(
        seen.first().map(|e| e.event.as_str()),
        Some(pending),
        "{:?}",
        names(seen)
    );
    assert_eq!(
        seen.last().map(|e| e.event.as_str()),
        Some(done),
        "{:?}",
        names(seen)
    );
    let progress: Vec<u64> = seen
        .iter()
        .filter(|e| e.event == processing)
        .map(|e| data(e)["progress"].as_u64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress rises, one event per change: {progress:?}"
    );
    assert!(
        progress.iter().filter(|p| **p > 0 && **p < 100).count() >= 2,
        "real progress while processing: {:?}",
        names(seen)
    );
    let ids: Vec<i64> = seen.iter().map(|e| e.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");
}

struct World {
    _dir: tempfile::TempDir,
    fixtures: std::path::PathBuf,
    server: Server,
}

fn world(args: &[&str]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let server = Server::start(&dir.path().join("data"), args, &[]);
    World {
        _dir: dir,
        fixtures,
        server,
    }
}

/// Submits a render that keeps the one worker busy for a while, from an
/// account of its own (one active job per key), and waits until it runs.
async fn occupy_the_worker(w: &World) -> String {
    let account = create_account(&w.server.data_dir, "busy");
    let client = Client::new(&account.api_key);
    let image = image(&w.fixtures, "busy.png", 640, 360);
    let audio = audio(&w.fixtures, "busy.wav", 90.0);
    let (code, created) = client.submit(&w.server, &image, &audio, None).await;
    assert_eq!(code, 201, "{created}");
    let id = created["jobId"].as_str().unwrap().to_owned();
    client
        .poll_until(&w.server, &id, Duration::from_secs(60), |s| {
            s["status"] != "PENDING"
        })
        .await;
    id
}

#[tokio::test]
async fn a_video_job_followed_from_pending_to_completed() {
    let w = world(&["--workers", "1"]);
    occupy_the_worker(&w).await;
    let account = create_account(&w.server.data_dir, "watcher");
    let client = Client::new(&account.api_key);
    let image = image(&w.fixtures, "card.png", 1280, 720);
    let audio = audio(&w.fixtures, "long.wav", 120.0);
    let (code, created) = client.submit(&w.server, &image, &audio, None).await;
    assert_eq!(code, 201, "{created}");
    let id = created["jobId"].as_str().unwrap();

    let path = format!("/api/jobs/{id}/events");
    let stream = events(&w.server, &path, &[("X-API-Key", &account.api_key)]).await;
    let seen = until_end(stream, Duration::from_secs(120)).await;
    assert_followed(&seen, ["PENDING", "PROCESSING", "COMPLETED"]);
    // The data is the status endpoint's body, as it is now.
    let last = data(seen.last().unwrap());
    assert_eq!(last, client.status(&w.server, id).await);
    assert!(last["outputVideo"]
        .as_str()
        .unwrap()
        .ends_with("/video.mp4"));

    // A client reconnecting gets the current state first (here: the last).
    let stream = events(
        &w.server,
        &path,
        &[
            ("X-API-Key", &account.api_key),
            ("Last-Event-ID", &seen[0].id),
        ],
    )
    .await;
    let again = until_end(stream, Duration::from_secs(10)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].event.as_str(), data(&again[0])),
        ("COMPLETED", last)
    );

    // Another account's job is not found, as on the status route.
    let stranger = create_account(&w.server.data_dir, "stranger");
    let response = reqwest::Client::new()
        .get(w.server.url(&path))
        .header("X-API-Key", &stranger.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "Job not found"})
    );
}

#[tokio::test]
async fn a_gateway_job_followed_from_pending_to_completed() {
    let w = world(&["--workers", "1"]);
    occupy_the_worker(&w).await;
    let account = create_account_with(&w.server.data_dir, "gateway", &["--credits", "10000000"]);
    // A long, small MP3 as a data: URL keeps the request body small and the
    // render (mostly the audio) long enough to report progress.
    let image = image(&w.fixtures, "still.png", 640, 360);
    let audio = w.fixtures.join("long.mp3");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=150",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "24k",
        audio.to_str().unwrap(),
    ]);
    let data_url = |path: &std::path::Path, mime: &str| {
        use base64::Engine as _;
        let bytes = std::fs::read(path).unwrap();
        format!(
            "data:{mime};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    };
    let response = reqwest::Client::new()
        .post(w.server.url("/v1/jobs/submit"))
        .bearer_auth(&account.api_key)
        .json(&json!({
            "model": "genq/image-audio-to-video",
            "input": {
                "image_url": data_url(&image, "image/png"),
                "audio_url": data_url(&audio, "audio/mpeg"),
            }
        }))
        .send()
        .await
        .unwrap();
    let (code, submitted) = json_of(response).await;
    assert_eq!(code, 200, "{submitted}");
    let id = submitted["jobId"].as_str().unwrap();

    let auth = format!("Bearer {}", account.api_key);
    let stream = events(
        &w.server,
        &format!("/v1/jobs/{id}/events"),
        &[("Authorization", &auth)],
    )
    .await;
    let seen = until_end(stream, Duration::from_secs(120)).await;
    assert_followed(&seen, ["pending", "processing", "completed"]);
    let status = reqwest::Client::new()
        .get(w.server.url(&format!("/v1/jobs/{id}")))
        .bearer_auth(&account.api_key)
        .send()
        .await
        .unwrap();
    let (_, status) = json_of(status).await;
    assert_eq!(data(seen.last().unwrap()), status);
    assert_eq!(status["outputs"][0]["type"], "video");
}

/// A connection that asks for the account's events and never reads them,
/// with a receive buffer as small as the system allows, so that what it is
/// sent backs up into the server at once.
async fn stuck_subscriber(server: &Server, key: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Submits and cancels `n` model jobs: two events each for every follower
/// of the account.
async fn churn(server: &Server, key: &str, n: usize) {
    let http = reqwest::Client::new();
    for _ in 0..n {
        let response = http
            .post(server.url("/v1/jobs/submit"))
            .bearer_auth(key)
            .json(&json!({"model": "genq/title-card/text-to-video", "input": {"prompt": "churn"}}))
            .send()
            .await
            .unwrap();
        let (code, body) = json_of(response).await;
        assert_eq!(code, 200, "{body}");
        let id = body["jobId"].as_str().unwrap();
        let response = http
            .post(server.url(&format!("/v1/jobs/{id}/cancel")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_subscribers_that_never_read_do_not_hold_up_a_render() {
    // Title cards queue behind the render and are cancelled; a worker slot
    // of their kind would only take them from the queue.
    let w = world(&[
        "--workers",
        "1",
        "--rate-limit-per-minute",
        "0",
        "--submit-rate-limit-per-minute",
        "0",
        "--max-concurrent-jobs",
        "1000",
    ]);
    let account = create_account_with(&w.server.data_dir, "stuck", &["--credits", "1000000000"]);
    let client = Client::new(&account.api_key);
    let image = image(&w.fixtures, "card.png", 1280, 720);
    let audio = audio(&w.fixtures, "speech.wav", 60.0);

    let render = |label: &'static str| {
        let (client, server, image, audio) = (&client, &w.server, &image, &audio);
        async move {
            let started = Instant::now();
            let (code, created) = client.submit(server, image, audio, None).await;
            assert_eq!(code, 201, "{label}: {created}");
            let id = created["jobId"].as_str().unwrap().to_owned();
            let last = client.wait_terminal(server, &id).await;
            assert_eq!(last["status"], "COMPLETED", "{label}: {last}");
            started.elapsed()
        }
    };
    let alone = render("alone").await;

    let mut stuck = Vec::new();
    for _ in 0..50 {
        stuck.push(stuck_subscriber(&w.server, &account.api_key).await);
    }
    // Events pile up in front of the stuck subscribers while the render runs.
    let (watched, ()) = tokio::join!(render("watched"), churn(&w.server, &account.api_key, 150));
    eprintln!("render alone {alone:?}; with 50 stuck subscribers and 300 events each {watched:?}");
    assert!(
        watched < alone * 3 + Duration::from_secs(5),
        "a render took {watched:?} with stuck subscribers, {alone:?} without"
    );
    // The server still answers at once.
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(w.server.url("/api/jobs?limit=1"))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(stuck);
}
