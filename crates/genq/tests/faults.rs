//! Faults in what genq stands on, with real parts: a PostgreSQL cluster of
//! the test's own restarted under load, the S3 server (s3s-fs) killed in the
//! middle of an upload, the data directory's disk (a small tmpfs) full, and
//! more connections than the server allows. Each wants the same: every
//! answered 2xx is kept, every refusal is a clean 503 the client can read,
//! in the dialect's shape, and service resumes without a restart.
//!
//! These run in the SQLite pass only: they bring their own database (or none).

mod common;

use common::postgres::OwnCluster;
use common::s3::S3Server;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether this pass runs the fault tests (one pass is enough).
fn this_pass() -> bool {
    backend() == Backend::Sqlite
}

async fn v1_submit(
    client: &reqwest::Client,
    server: &Server,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    match client
        .post(server.url("/v1/jobs/submit"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
    {
        Ok(response) => json_of(response).await,
        Err(e) => panic!("a submission got no answer: {e}"),
    }
}

async fn v1_status(server: &Server, key: &str, id: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(server.url(&format!("/v1/jobs/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .ok()?;
    let (code, body) = json_of(response).await;
    (code == 200).then_some(body)
}

/// A refusal in the Jobs v1 shape: `{"error": {"code", "message"}}`.
fn is_v1_unavailable(code: u16, body: &Value) -> bool {
    code == 503 && body["error"]["code"].is_string() && body["error"]["message"].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_keeps_every_accepted_job() {
    if !this_pass() || std::env::var("GENQ_TEST_POSTGRES_URL").as_deref() == Ok("off") {
        return;
    }
    let Some(cluster) = OwnCluster::create() else {
        eprintln!("skipped: no PostgreSQL binaries, or not root (runuser postgres)");
        return;
    };
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    // One data directory for both nodes: local storage shared on one machine.
    let data = dir.path().join("data");
    let admin = dir.path().join("admin");
    let account = create_account_with(
        &admin,
        "faults",
        &[
            "--database-url",
            &url,
            "--credits",
            "1000000000",
            "--max-concurrent-jobs",
            "100000",
        ],
    );
    let api = Server::start(
        &data,
        &[
            "--workers",
            "0",
            "--database-url",
            &url,
            "--rate-limit-per-minute",
            "0",
            "--submit-rate-limit-per-minute",
            "0",
        ],
        &[],
    );
    let mut worker = Worker::start(
        &data,
        &url,
        &["--concurrency", "2", "--lease-seconds", "6"],
        &[],
    );
    let api = Arc::new(api);
    let key = Arc::new(account.api_key.clone());

    // Four clients submit short speech jobs for 14 s, each one every 0.5 s
    // (about as fast as the worker renders them); PostgreSQL goes down
    // (immediate stop: connections cut) at 4 s and comes back at 9 s.
    let started = Instant::now();
    let submitters: Vec<_> = (0..4)
        .map(|n| {
            let (api, key) = (api.clone(), key.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut answers = Vec::new();
                let mut i = 0;
                while started.elapsed() < Duration::from_secs(14) {
                    let body = json!({"model": "genq/text-to-speech", "input": {"text": format!("Fault {n} {i}.")}});
                    answers.push(v1_submit(&client, &api, &key, &body).await);
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.stop();
    eprintln!("PostgreSQL stopped at {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.start();
    eprintln!("PostgreSQL started at {:?}", started.elapsed());

    let mut accepted = Vec::new();
    let mut refused = 0;
    for submitter in submitters {
        for (code, body) in submitter.await.unwrap() {
            if code == 200 {
                accepted.push(body["jobId"].as_str().unwrap().to_owned());
            } else {
                assert!(
                    is_v1_unavailable(code, &body),
                    "a refusal that is not a clean 503 in the v1 shape: {code} {body}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("{} accepted, {refused} refused with 503", accepted.len());
    assert!(refused > 0, "the outage refused nothing: was it an outage?");
    assert!(accepted.len() > 20, "too few accepted: {}", accepted.len());

    // Every accepted job completes, through the same processes.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut waiting: HashSet<String> = accepted.iter().cloned().collect();
    while !waiting.is_empty() {
        let mut done = Vec::new();
        for id in &waiting {
            if let Some(status) = v1_status(&api, &key, id).await {
                match status["status"].as_str() {
                    Some("completed") => done.push(id.clone()),
                    Some("failed" | "cancelled") => panic!("accepted job {id} ended {status}"),
                    _ => {}
                }
            }
        }
        for id in done {
            waiting.remove(&id);
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted jobs never completed; worker log:\n{}",
            waiting.len(),
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(worker.running(), "the worker exited:\n{}", worker.log());

    // Each job in the database (answered or not) finished, and money moved
    // once per job: one reservation each, no refund.
    let psql = |sql: &str| common::postgres::psql(&url, sql);
    assert_eq!(
        psql("SELECT count(*) FROM jobs WHERE state <> 'COMPLETED'"),
        "0",
        "jobs left unfinished: {}",
        psql("SELECT string_agg(id || ' ' || state, ', ') FROM jobs WHERE state <> 'COMPLETED'")
    );
    let in_db: usize = psql("SELECT count(*) FROM jobs").parse().unwrap();
    assert!(in_db >= accepted.len());
    eprintln!("{in_db} jobs in the database");
    assert_eq!(
        psql(
            "SELECT count(*) || '|' || count(DISTINCT job_id) FROM ledger WHERE reason = 'reserve'"
        ),
        format!("{in_db}|{in_db}"),
        "every job reserved exactly once"
    );
    assert_eq!(
        psql("SELECT count(*) FROM ledger WHERE reason = 'refund'"),
        "0"
    );

    // Both nodes serve on without a restart.
    let body = json!({"model": "genq/text-to-speech", "input": {"text": "After the storm."}});
    let (code, answer) = v1_submit(&reqwest::Client::new(), &api, &key, &body).await;
    assert_eq!(code, 200, "{answer}");
    let id = answer["jobId"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while v1_status(&api, &key, id).await.map(|s| s["status"].clone()) != Some(json!("completed")) {
        assert!(
            Instant::now() < deadline,
            "the job after recovery did not complete"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(worker.running(), "the worker exited:\n{}", worker.log());
    let mut api = Arc::into_inner(api).expect("submitters are done");
    assert!(api.running(), "the API node exited:\n{}", api.log());
}

/// A multipart body for `POST /api/jobs` whose audio part arrives in two
/// halves: the second only once the returned sender fires.
fn slow_upload(
    image: &Path,
    audio: &Path,
) -> (reqwest::multipart::Form, tokio::sync::oneshot::Sender<()>) {
    use futures::StreamExt as _;
    let audio = std::fs::read(audio).unwrap();
    let (first, second) = audio.split_at(audio.len() / 2);
    let (first, second) = (first.to_vec(), second.to_vec());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let chunks = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures::stream::once(async move {
            let _ = rx.await;
            Ok(second)
        }),
    );
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(std::fs::read(image).unwrap()).file_name("in.png"),
        )
        .part(
            "audio",
            reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(chunks))
                .file_name("in.wav"),
        );
    (form, tx)
}

/// Files left in the staging directory (uploads not yet stored).
fn staged(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir.join("tmp/uploads"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A refusal in the Image+Audio Video shape: `{"error": "..."}`.
fn is_video_unavailable(code: u16, body: &Value) -> bool {
    code == 503 && body["error"].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_killed_mid_upload_is_a_clean_503_and_uploads_resume() {
    if !this_pass() {
        return;
    }
    let Some(mut s3) = S3Server::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = s3.genq_env("faults");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
    let server = Server::start(dir.path(), &["--rate-limit-per-minute", "0"], &env);
    let account = create_account(dir.path(), "s3");
    let client = Client::new(&account.api_key);
    let image = image(dir.path(), "in.png", 64, 48);
    let audio = audio(dir.path(), "in.wav", 4.0);

    let (form, second_half) = slow_upload(&image, &audio);
    let request = client.post(server.url("/api/jobs")).multipart(form).send();
    let request = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s3.stop();
    let _ = second_half.send(());
    let asked = Instant::now();
    let (code, body) = json_of(request.await.unwrap().expect("an answer")).await;
    eprintln!("answered {code} after {:?}: {body}", asked.elapsed());
    assert!(is_video_unavailable(code, &body), "{code} {body}");
    assert_eq!(db_query(dir.path(), "SELECT count(*) FROM jobs"), "0");
    assert_eq!(staged(dir.path()), Vec::<String>::new());

    s3.restart();
    let (code, body) = client.submit(&server, &image, &audio, None).await;
    assert_eq!(code, 201, "{body}");
    let id = body["jobId"].as_str().unwrap();
    let last = client.wait_terminal(&server, id).await;
    assert_eq!(last["status"], "COMPLETED", "{last}");
    let video = reqwest::get(last["outputVideo"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(video.status(), 200);
}

/// A tmpfs of `megabytes` mounted at `at`, unmounted on drop.
struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, megabytes: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("mount: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(SmallDisk { at: at.to_owned() })
    }

    fn free_bytes(&self) -> u64 {
        let path = std::ffi::CString::new(self.at.to_str().unwrap()).unwrap();
        // SAFETY: statvfs writes into the zeroed struct we pass.
        unsafe {
            let mut stat: libc::statvfs = std::mem::zeroed();
            assert_eq!(libc::statvfs(path.as_ptr(), &mut stat), 0);
            stat.f_bavail as u64 * stat.f_frsize as u64
        }
    }

    /// Fills the disk with a file until `leave` bytes are free.
    fn fill(&self, name: &str, leave: u64) {
        let size = self.free_bytes().saturating_sub(leave);
        let mut file = std::fs::File::create(self.at.join(name)).unwrap();
        let block = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        while written < size {
            let n = block.len().min((size - written) as usize);
            std::io::Write::write_all(&mut file, &block[..n]).unwrap();
            written += n as u64;
        }
        file.sync_all().unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.at)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_submissions_fails_renders_clearly_and_recovers() {
    if !this_pass() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small disk needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk"), 48) else {
        eprintln!("skipped: this machine does not allow mounting a tmpfs");
        return;
    };
    let data = disk.at.clone();
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures).unwrap();
    let image = image(&fixtures, "in.png", 1280, 720);
    let audio = audio(&fixtures, "in.mp3", 60.0);

    // The API process alone first: job A is accepted and waits.
    let mut api = Server::start(
        &data,
        &["--workers", "0", "--rate-limit-per-minute", "0"],
        &[],
    );
    let account = create_account(&data, "disk");
    let client = Client::new(&account.api_key);
    let (code, body) = client.submit(&api, &image, &audio, None).await;
    assert_eq!(code, 201, "{body}");
    let job_a = body["jobId"].as_str().unwrap().to_owned();

    // The disk fills up (another tenant of the disk, a log gone wild…).
    disk.fill("filler", 256 * 1024);
    let other = create_account(&data, "disk-2");
    let (code, body) = Client::new(&other.api_key)
        .submit(&api, &image, &audio, None)
        .await;
    assert!(is_video_unavailable(code, &body), "{code} {body}");
    assert_eq!(staged(&data), Vec::<String>::new());

    // A worker takes job A: its render cannot write its output.
    let worker_dir = data.clone();
    let mut worker = Worker::start_sqlite(&worker_dir, &["--concurrency", "1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let status = client.status(&api, &job_a).await;
        if status["status"] != "PENDING" && status["status"] != "PROCESSING" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "job A did not end: {status}\nworker log:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let message = failed["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("No space left on device"),
        "the failure does not say the disk is full: {failed}"
    );

    // Space comes back: the same processes take and render new work.
    std::fs::remove_file(disk.at.join("filler")).unwrap();
    let (code, body) = Client::new(&other.api_key)
        .submit(&api, &image, &audio, None)
        .await;
    assert_eq!(code, 201, "{body}");
    let job_c = body["jobId"].as_str().unwrap().to_owned();
    let last = Client::new(&other.api_key)
        .wait_terminal(&api, &job_c)
        .await;
    assert_eq!(last["status"], "COMPLETED", "{last}");
    assert!(worker.running() && api.running());
    assert_eq!(db_query(&data, "PRAGMA integrity_check"), "ok");
    api.terminate(Duration::from_secs(20));
    drop(worker);
}

#[tokio::test]
async fn a_pooling_client_over_the_connection_cap_reads_a_503() {
    use tokio::io::AsyncWriteExt;
    if !this_pass() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--workers", "0", "--max-connections-per-ip", "2"],
        &[],
    );
    let address = server.base.trim_start_matches("http://").to_owned();
    // Two connections hold this address's share, each mid-request.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // hyper's pooled client, as most HTTP libraries: it reads an answer only
    // after sending its request.
    let response = reqwest::Client::new()
        .get(server.url("/health"))
        .send()
        .await
        .expect("the refusal is an HTTP answer, not a broken connection");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = json_of(response).await;
    assert_eq!(body["error"]["code"], "TOO_MANY_CONNECTIONS", "{body}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(health.status(), 200);
}
