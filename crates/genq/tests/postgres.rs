//! genq beyond one process: API nodes and a worker node on one PostgreSQL
//! database (files in one shared directory, as on one machine).
//! Skipped when `GENQ_TEST_POSTGRES_URL=off`.

mod common;

use common::postgres::Database;
use common::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn api_nodes_and_a_worker_node_share_one_database() {
    let Some(db) = Database::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--workers", "0", "--database-url", &db.url];
    let (a, b) = (
        Server::start(&data, &args, &[]),
        Server::start(&data, &args, &[]),
    );
    let account = create_account_with(
        &data,
        "cluster",
        &["--credits", "1000000", "--database-url", &db.url],
    );
    let mut worker = Command::new(GENQ)
        .args([
            "worker",
            "--concurrency",
            "2",
            "--database-url",
            &db.url,
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let mut jobs = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        let response = http
            .post(node.url("/v1/jobs/submit"))
            .bearer_auth(&account.api_key)
            .json(&json!({ "model": "genq/title-card/text-to-video", "input": { "prompt": format!("card {i}"), "duration": 1 } }))
            .send()
            .await
            .unwrap();
        let (code, body) = json_of(response).await;
        assert_eq!(code, 200, "{body}");
        jobs.push(body["jobId"].as_str().unwrap().to_owned());
    }
    for (i, job) in jobs.iter().enumerate() {
        let node = if i % 2 == 0 { &b } else { &a };
        let done = loop {
            let response = http
                .get(node.url(&format!("/v1/jobs/{job}")))
                .bearer_auth(&account.api_key)
                .send()
                .await
                .unwrap();
            let (_, body) = json_of(response).await;
            if body["status"] != "pending" && body["status"] != "processing" {
                break body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(done["status"], "completed", "{done}");
        // Either node serves the output.
        for server in [&a, &b] {
            let url = done["output"]
                .as_str()
                .unwrap()
                .replace(&a.base, &server.base)
                .replace(&b.base, &server.base);
            assert_eq!(reqwest::get(url).await.unwrap().status(), 200);
        }
    }
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    assert!(worker.wait().unwrap().success());

    // Every job ran once, and the ledger adds up to the balance.
    assert_eq!(
        db.query("SELECT count(*) FROM jobs WHERE state = 'COMPLETED' AND attempt = 1"),
        "6"
    );
    let drift = db.query(&format!(
        "SELECT (SELECT balance_micro_cents FROM accounts WHERE id = '{0}') - \
         (SELECT COALESCE(SUM(amount_micro_cents), 0) FROM ledger WHERE account_id = '{0}')",
        account.id
    ));
    assert_eq!(drift, "0");
}

#[tokio::test]
async fn one_active_job_per_key_holds_across_api_nodes() {
    let Some(db) = Database::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--workers",
        "0",
        "--database-url",
        &db.url,
        "--submit-rate-limit-per-minute",
        "0",
    ];
    let (a, b) = (
        Server::start(&data, &args, &[]),
        Server::start(&data, &args, &[]),
    );
    let account = create_account_with(&data, "race", &["--database-url", &db.url]);
    let image = std::fs::read(image(dir.path(), "a.jpg", 32, 32)).unwrap();
    let audio = std::fs::read(audio(dir.path(), "a.mp3", 0.5)).unwrap();
    let submissions = (0..50).map(|i| {
        let url = if i % 2 == 0 {
            a.url("/api/jobs")
        } else {
            b.url("/api/jobs")
        };
        let (key, image, audio) = (account.api_key.clone(), image.clone(), audio.clone());
        tokio::spawn(async move {
            let form = reqwest::multipart::Form::new()
                .part(
                    "image",
                    reqwest::multipart::Part::bytes(image).file_name("a.jpg"),
                )
                .part(
                    "audio",
                    reqwest::multipart::Part::bytes(audio).file_name("a.mp3"),
                );
            reqwest::Client::new()
                .post(url)
                .header("X-API-Key", key)
                .multipart(form)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let codes: Vec<u16> = futures_join(submissions).await;
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 49, "{codes:?}");
}

#[tokio::test]
async fn one_idempotency_key_makes_one_job_across_api_nodes() {
    let Some(db) = Database::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--workers",
        "0",
        "--database-url",
        &db.url,
        "--submit-rate-limit-per-minute",
        "0",
    ];
    let (a, b) = (
        Server::start(&data, &args, &[]),
        Server::start(&data, &args, &[]),
    );
    let account = create_account_with(
        &data,
        "keyed",
        &["--database-url", &db.url, "--credits", "10000000"],
    );
    let body = json!({"model": "genq/text-to-speech", "input": {"text": "Just once."}});
    let submissions = (0..20).map(|i| {
        let url = if i % 2 == 0 { &a } else { &b }.url("/v1/jobs/submit");
        let (key, body) = (account.api_key.clone(), body.clone());
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "both-nodes")
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            (code, response.bytes().await.unwrap())
        })
    });
    let mut answers = Vec::new();
    for handle in submissions.collect::<Vec<_>>() {
        answers.push(handle.await.unwrap());
    }
    let accepted: std::collections::HashSet<_> = answers
        .iter()
        .filter(|(code, _)| *code == 200)
        .map(|(_, body)| body.clone())
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    assert!(
        answers.iter().all(|(code, _)| *code == 200 || *code == 409),
        "{answers:?}"
    );
    // One job, one charge, in the database both nodes share.
    assert_eq!(
        common::postgres::psql(&db.url, "SELECT count(*) FROM jobs"),
        "1"
    );
    assert_eq!(
        common::postgres::psql(
            &db.url,
            "SELECT count(*) FROM ledger WHERE reason = 'reserve'"
        ),
        "1"
    );
}

async fn futures_join(handles: impl Iterator<Item = tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut codes = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        codes.push(handle.await.unwrap());
    }
    codes
}

/// Managed PostgreSQL services require TLS: `sslmode=require` connects over
/// it (skipped when the test server has no TLS configured).
#[test]
fn connects_over_tls_when_the_url_requires_it() {
    let Some(db) = Database::create() else { return };
    if db.query("SHOW ssl") != "on" {
        eprintln!("skipped: the test server has ssl = off");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}sslmode=require", db.url);
    let _server = Server::start(&data, &["--workers", "0", "--database-url", &url], &[]);
    let tls = db.query(&format!(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{}' AND a.pid <> pg_backend_pid()",
        db.name
    ));
    let (encrypted, all) = tls.split_once('|').unwrap();
    assert!(all != "0" && encrypted == all, "TLS/all connections: {tls}");
}
