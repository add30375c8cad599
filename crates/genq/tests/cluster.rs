//! A cluster on one machine: 2 API nodes and 2 worker nodes on one PostgreSQL
//! database and one S3-compatible server (s3s-fs), each node with its own data
//! directory, so nothing is shared through the filesystem. 100 jobs go in
//! through both API nodes; one worker is SIGKILLed mid-render; every job must
//! complete exactly once, every output download through either API node after
//! the workers are gone, and the money add up.
//! Skipped when `GENQ_TEST_POSTGRES_URL=off` or `GENQ_TEST_S3=off`.

mod common;

use base64::Engine as _;
use common::postgres::Database;
use common::s3::S3Server;
use common::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const JOBS: usize = 100;
/// Short, so the killed worker's job is claimed again within seconds; long
/// enough that heartbeats (every lease/3) survive a busy 2-core machine.
const LEASE_SECONDS: &str = "5";
/// Slots per worker process: the most jobs one claim of a worker takes.
const WORKER_CONCURRENCY: usize = 2;
const PRICE: i64 = 100_000;
const CREDITS: i64 = 100_000_000;

/// Job ids of the log lines with `message` (the engine logs `job=ID`).
fn jobs_logged(log: &str, message: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(message))
        .filter_map(|line| {
            let id = line.split("job=").nth(1)?.split_whitespace().next()?;
            Some(id.to_owned())
        })
        .collect()
}

fn data_url(path: &Path, mime: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_api_nodes_and_two_workers_on_postgres_and_s3() {
    let Some(db) = Database::create() else { return };
    let Some(s3) = S3Server::start() else { return };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let env = s3.genq_env("cluster");
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
    let api_args = [
        "--workers",
        "0",
        "--database-url",
        &db.url,
        "--rate-limit-per-minute",
        "0",
        "--submit-rate-limit-per-minute",
        "0",
    ];
    let data: Vec<_> = (0..4)
        .map(|i| dir.path().join(format!("node{i}")))
        .collect();
    let mut a = Server::start(&data[0], &api_args, &env_refs);
    let b = Server::start(&data[1], &api_args, &env_refs);

    // The video dialect allows one active job per key: 50 keys. The v1
    // dialect reserves money per job: one account with room for 50 at once.
    // The admin commands get a directory of their own (they open local
    // storage there), so the nodes' directories show what the nodes wrote.
    let admin = dir.path().join("admin");
    let admin = admin.to_str().unwrap();
    let video = create_account_with(Path::new(admin), "video", &["--database-url", &db.url]);
    let mut video_keys = vec![video.api_key.clone()];
    while video_keys.len() < JOBS / 2 {
        let key = cli_json(&[
            "keys",
            "create",
            "--account",
            &video.id,
            "--database-url",
            &db.url,
            "--data-dir",
            admin,
        ]);
        video_keys.push(key["apiKey"].as_str().unwrap().to_owned());
    }
    let gateway = create_account_with(
        Path::new(admin),
        "gateway",
        &[
            "--database-url",
            &db.url,
            "--credits",
            &CREDITS.to_string(),
            "--max-concurrent-jobs",
            "1000",
        ],
    );

    // Tiny inputs keep 100 renders to about a minute on 2 cores.
    let image = image(dir.path(), "in.jpg", 64, 48);
    let audio = audio(dir.path(), "in.mp3", 1.0);
    let (image_url, audio_url) = (
        data_url(&image, "image/jpeg"),
        data_url(&audio, "audio/mpeg"),
    );
    let mut jobs: Vec<(String, &'static str, String)> = Vec::new(); // (id, dialect, key)
    for i in 0..JOBS {
        let node = if i % 2 == 0 { &a } else { &b };
        if i % 4 < 2 {
            // Each video job has a key of its own.
            let key = &video_keys[jobs.iter().filter(|j| j.1 == "video").count()];
            let client = Client::new(key);
            let (code, body) = client.submit(node, &image, &audio, None).await;
            assert_eq!(code, 201, "{body}");
            let id = body["jobId"].as_str().unwrap().to_owned();
            jobs.push((id, "video", key.clone()));
        } else {
            let response = reqwest::Client::new()
                .post(node.url("/v1/jobs/submit"))
                .bearer_auth(&gateway.api_key)
                .json(&json!({
                    "model": "genq/image-audio-to-video",
                    "input": { "image_url": image_url, "audio_url": audio_url },
                }))
                .send()
                .await
                .unwrap();
            let (code, body) = json_of(response).await;
            assert_eq!(code, 200, "{body}");
            let id = body["jobId"].as_str().unwrap().to_owned();
            jobs.push((id, "v1", gateway.api_key.clone()));
        }
    }
    let count = |sql: &str| db.query(sql).parse::<usize>().unwrap();
    assert_eq!(
        count("SELECT count(*) FROM jobs WHERE state = 'PENDING'"),
        JOBS
    );
    eprintln!("{JOBS} jobs queued after {:?}", started.elapsed());

    let concurrency = WORKER_CONCURRENCY.to_string();
    let worker_args = [
        "--concurrency",
        &concurrency,
        "--lease-seconds",
        LEASE_SECONDS,
    ];
    let mut doomed = Worker::start(&data[2], &db.url, &worker_args, &env);
    let mut survivor = Worker::start(&data[3], &db.url, &worker_args, &env);

    // SIGKILL the first worker while it renders, once it has finished a few
    // jobs (whose outputs must outlive it).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = doomed.log();
        let done: HashSet<_> = jobs_logged(&log, "job completed").into_iter().collect();
        let running = jobs_logged(&log, "job started")
            .into_iter()
            .any(|id| !done.contains(&id));
        if done.len() >= 3 && running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker rendered nothing:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    doomed.child.kill().unwrap();
    doomed.wait();
    let doomed_log = doomed.log();
    let doomed_done: HashSet<_> = jobs_logged(&doomed_log, "job completed")
        .into_iter()
        .collect();
    let killed: HashSet<_> = jobs_logged(&doomed_log, "job started")
        .into_iter()
        .filter(|id| !doomed_done.contains(id))
        .collect();
    assert!(!killed.is_empty());
    eprintln!(
        "killed a worker after {:?}: {} jobs done by it, {} cut short",
        started.elapsed(),
        doomed_done.len(),
        killed.len()
    );

    // The survivor finishes everything, the killed jobs after their leases end.
    let deadline = Instant::now() + Duration::from_secs(300);
    while count("SELECT count(*) FROM jobs WHERE state IN ('PENDING', 'PROCESSING')") > 0 {
        assert!(
            Instant::now() < deadline,
            "jobs still unfinished; survivor log:\n{}",
            survivor.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("all jobs finished after {:?}", started.elapsed());
    unsafe { libc::kill(survivor.child.id() as i32, libc::SIGTERM) };
    assert!(survivor.wait().success(), "{}", survivor.log());

    // Every job COMPLETED, each rendered to completion exactly once.
    assert_eq!(
        count("SELECT count(*) FROM jobs WHERE state = 'COMPLETED'"),
        JOBS,
        "{}",
        db.query("SELECT id, state, error_message FROM jobs WHERE state <> 'COMPLETED'")
    );
    let retried: HashSet<String> = db
        .query("SELECT id FROM jobs WHERE retries > 0")
        .lines()
        .map(str::to_owned)
        .collect();
    // A killed job that never ran again finished in the killed worker: its
    // outcome was committed in the instant before the kill, ahead of its
    // "job completed" line.
    let finished_unlogged: HashSet<String> = killed.difference(&retried).cloned().collect();
    let mut renders: HashMap<String, usize> = HashMap::new();
    for id in jobs_logged(&doomed_log, "job completed")
        .into_iter()
        .chain(jobs_logged(&survivor.log(), "job completed"))
        .chain(finished_unlogged.iter().cloned())
    {
        *renders.entry(id).or_default() += 1;
    }
    for (id, _, _) in &jobs {
        assert_eq!(renders.get(id), Some(&1), "renders of {id}");
    }
    assert_eq!(renders.len(), JOBS);
    // Only the killed worker's jobs ran again: those it had started and not
    // finished (rendering, or done with the outcome not yet recorded), and
    // at most one claim's worth more if the kill landed between a claim's
    // commit and its "job started" lines.
    let unlogged = retried.difference(&killed).count();
    assert!(unlogged <= WORKER_CONCURRENCY, "{retried:?}");
    assert!(retried.is_disjoint(&doomed_done), "{retried:?}");
    assert_eq!(count("SELECT count(*) FROM jobs WHERE retries > 1"), 0);

    // No node kept files of its own: they are all in the object store.
    for node in &data {
        assert!(node.exists(), "{}", node.display());
        assert!(!node.join("files").exists(), "{}", node.display());
    }

    // Every output downloads through both API nodes, with no worker left.
    let http = reqwest::Client::new();
    for (i, (id, dialect, key)) in jobs.iter().enumerate() {
        let status_node = if i % 2 == 0 { &b } else { &a };
        let video_url = if *dialect == "video" {
            let status = Client::new(key).status(status_node, id).await;
            assert_eq!(status["status"], "COMPLETED", "{status}");
            status["outputVideo"].as_str().unwrap().to_owned()
        } else {
            let response = http
                .get(status_node.url(&format!("/v1/jobs/{id}")))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let (_, status) = json_of(response).await;
            assert_eq!(status["status"], "completed", "{status}");
            status["output"].as_str().unwrap().to_owned()
        };
        let path = video_url
            .strip_prefix(&status_node.base)
            .unwrap_or_else(|| panic!("{video_url} is not on {}", status_node.base))
            .to_owned();
        let stored = std::fs::metadata(s3.object_file(&format!("cluster/outputs/{id}/video.mp4")))
            .expect("the output is in the bucket")
            .len();
        let mut bodies = Vec::new();
        for node in [&a, &b] {
            let response = http.get(node.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{}", node.url(&path));
            assert_eq!(response.headers()["content-type"], "video/mp4");
            assert_eq!(response.headers()["accept-ranges"], "bytes");
            assert_eq!(response.content_length(), Some(stored));
            bodies.push(response.bytes().await.unwrap());
        }
        assert_eq!(bodies[0].len() as u64, stored);
        assert!(bodies[0] == bodies[1], "the nodes serve different bytes");
        let ranged = http
            .get(a.url(&path))
            .header("Range", "bytes=0-99")
            .send()
            .await
            .unwrap();
        assert_eq!(ranged.status(), 206);
        assert_eq!(
            ranged.headers()["content-range"],
            format!("bytes 0-99/{stored}").as_str()
        );
        assert_eq!(ranged.bytes().await.unwrap(), bodies[0].slice(0..100));
        if i % 10 == 0 {
            let file = dir.path().join(format!("out-{i}.mp4"));
            std::fs::write(&file, &bodies[0]).unwrap();
            let probe = ffprobe(&file);
            assert_eq!(stream(&probe, "video")["codec_name"], "h264");
            stream(&probe, "audio");
        }
    }
    check_ranges(&http, &a, &b, &jobs, &s3).await;

    // Money: 50 reservations, no refunds, and the ledger sums to each balance.
    assert_eq!(
        count("SELECT count(*) FROM ledger WHERE reason = 'reserve'"),
        JOBS / 2
    );
    assert_eq!(
        count("SELECT count(*) FROM ledger WHERE reason = 'refund'"),
        0
    );
    let balance = db.query(&format!(
        "SELECT balance_micro_cents FROM accounts WHERE id = '{}'",
        gateway.id
    ));
    assert_eq!(balance, (CREDITS - PRICE * (JOBS as i64 / 2)).to_string());
    let drift = db.query(
        "SELECT count(*) FROM accounts WHERE balance_micro_cents <> \
         (SELECT COALESCE(SUM(amount_micro_cents), 0) FROM ledger WHERE account_id = accounts.id)",
    );
    assert_eq!(drift, "0");

    // With the API node that took half the jobs gone too, the other serves all.
    a.kill();
    let (id, _, _) = &jobs[0];
    let media = db.query(&format!("SELECT media_token FROM jobs WHERE id = '{id}'"));
    let response = http
        .get(b.url(&format!("/media/{media}/video.mp4")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eprintln!("cluster test took {:?}", started.elapsed());
}

/// The other Range forms, through the object store.
async fn check_ranges(
    http: &reqwest::Client,
    a: &Server,
    b: &Server,
    jobs: &[(String, &'static str, String)],
    s3: &S3Server,
) {
    let (id, _, key) = &jobs[0];
    let status = Client::new(key).status(b, id).await;
    let url = status["outputVideo"].as_str().unwrap().to_owned();
    let url = url.replace(&b.base, &a.base);
    let whole = http.get(&url).send().await.unwrap().bytes().await.unwrap();
    let size = whole.len() as u64;
    assert_eq!(
        size,
        std::fs::metadata(s3.object_file(&format!("cluster/outputs/{id}/video.mp4")))
            .unwrap()
            .len()
    );
    let get = |range: String| http.get(&url).header("Range", range).send();
    let tail = get("bytes=-10".into()).await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.headers()["content-range"],
        format!("bytes {}-{}/{size}", size - 10, size - 1).as_str()
    );
    assert_eq!(tail.bytes().await.unwrap(), whole.slice(whole.len() - 10..));
    let rest = get("bytes=100-".into()).await.unwrap();
    assert_eq!(rest.status(), 206);
    assert_eq!(rest.content_length(), Some(size - 100));
    assert_eq!(rest.bytes().await.unwrap(), whole.slice(100..));
    let past = get(format!("bytes={size}-")).await.unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );
    // The poster is served from the store too, with its own type.
    let poster = sibling(&url, "poster.jpg");
    let response = http.get(&poster).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(
        response.headers()["cache-control"],
        "private, max-age=86400"
    );
}

/// Another output of the same job: outputs share the job's media token.
fn sibling(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}
