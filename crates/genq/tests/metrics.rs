//! `--metrics-listen` and `/ready`, against the real binary: the metrics
//! parse as Prometheus text (PyPI's `prometheus_client` parser, in
//! target/pyenv) and move when a job runs; readiness follows the database
//! (a PostgreSQL cluster of the test's own, stopped and started again).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::postgres::OwnCluster;
use common::*;
use serde_json::{json, Value};

/// The metrics address the server logged.
fn metrics_url(server: &Server) -> String {
    let log = server.log();
    let at = log
        .find("metrics on ")
        .expect("the metrics address is logged")
        + 11;
    log[at..].split_whitespace().next().unwrap().to_owned()
}

/// `[name, labels, value]` of every sample, as prometheus_client parses them.
fn parse_prometheus(text: &str) -> Vec<(String, Value, f64)> {
    let python = std::env::var("GENQ_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python3");
        venv.to_string_lossy().into_owned()
    });
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
        print(json.dumps(out))";
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run target/pyenv's python (scripts/deps --test)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not Prometheus text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    samples
}

fn value(samples: &[(String, Value, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_when_a_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let account = create_account_with(dir.path(), "metrics", &["--credits", "100000000"]);
    let server = Server::start(
        dir.path(),
        &["--workers", "1", "--metrics-listen", "127.0.0.1:0"],
        &[],
    );
    let metrics = metrics_url(&server);
    let scrape = || async { reqwest::get(&metrics).await.unwrap().text().await.unwrap() };
    let before = parse_prometheus(&scrape().await);
    let submitted = |s: &[(String, Value, f64)]| {
        value(
            s,
            "genq_jobs_submitted_total",
            &[("dialect", "v1"), ("kind", "title_card")],
        )
    };
    assert_eq!(submitted(&before), 0.0);

    let client = Client::new(&account.api_key);
    let (code, body) = json_of(
        client
            .post(server.url("/v1/jobs/submit"))
            .json(&json!({"model": "genq/title-card/text-to-video", "input": {"prompt": "Metrics", "duration": 1}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let id = body["jobId"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, status) = json_of(
            client
                .get(server.url(&format!("/v1/jobs/{id}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if status["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let after = parse_prometheus(&scrape().await);
    assert_eq!(submitted(&after), 1.0);
    assert_eq!(
        value(
            &after,
            "genq_jobs_finished_total",
            &[("dialect", "v1"), ("outcome", "completed")]
        ),
        1.0
    );
    assert_eq!(value(&after, "genq_jobs", &[("state", "COMPLETED")]), 1.0);
    assert_eq!(value(&after, "genq_jobs", &[("state", "PENDING")]), 0.0);
    assert_eq!(
        value(&after, "genq_oldest_pending_job_age_seconds", &[]),
        0.0
    );
    assert_eq!(
        value(
            &after,
            "genq_render_duration_seconds_count",
            &[("kind", "title_card")]
        ),
        1.0
    );
    // Requests are counted by route template, not by raw path.
    assert_eq!(
        value(
            &after,
            "genq_http_requests_total",
            &[("route", "/v1/jobs/submit"), ("status", "200")]
        ),
        1.0
    );
    assert!(
        value(
            &after,
            "genq_http_requests_total",
            &[("route", "/v1/jobs/{job_id}")]
        ) >= 1.0
    );
    assert!(!after
        .iter()
        .any(|(_, l, _)| l["route"].as_str().is_some_and(|r| r.contains(id))));
    assert!(value(&after, "genq_process_resident_memory_bytes", &[]) > 0.0);

    // The main listener serves no metrics; /ready says why it is ready.
    assert_eq!(
        reqwest::get(server.url("/metrics")).await.unwrap().status(),
        404
    );
    let (code, ready) = json_of(reqwest::get(server.url("/ready")).await.unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(
        ready,
        json!({"status": "ready", "checks": {"database": "ok", "storage": "ok", "ffmpeg": "ok"}})
    );
}

async fn ready(server: &Server) -> (u16, Value) {
    json_of(reqwest::get(server.url("/ready")).await.unwrap()).await
}

async fn ready_becomes(server: &Server, want: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (code, body) = ready(server).await;
        if code == want {
            return body;
        }
        assert!(Instant::now() < deadline, "still {code}: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn ready_follows_the_database_down_and_back_up() {
    if backend() == Backend::Postgres
        || std::env::var("GENQ_TEST_POSTGRES_URL").as_deref() == Ok("off")
    {
        return; // one pass is enough; and PostgreSQL tests are off
    }
    let Some(cluster) = OwnCluster::create() else {
        eprintln!("skipped: no PostgreSQL binaries, or not root (runuser postgres)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.url();
    let server = Server::start(dir.path(), &["--workers", "0", "--database-url", &url], &[]);
    let (code, body) = ready(&server).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["checks"], json!({"database": "ok", "storage": "ok"}));

    cluster.stop();
    let down = ready_becomes(&server, 503, Duration::from_secs(15)).await;
    assert_eq!(down["status"], "not ready");
    assert_ne!(down["checks"]["database"], "ok", "{down}");
    assert_eq!(down["checks"]["storage"], "ok");
    // Liveness is another matter: the process is fine.
    assert_eq!(
        reqwest::get(server.url("/health")).await.unwrap().status(),
        200
    );

    cluster.start();
    ready_becomes(&server, 200, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn genq_check_prints_one_line_per_check_and_fails_when_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--workers", "0"], &[]);
    let check = |public_url: &str| {
        let out = genq_on(dir.path())
            .args(["check", "--data-dir"])
            .arg(dir.path())
            .args(["--public-url", public_url])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, report) = check(&server.base);
    assert_eq!(code, Some(0), "{report}");
    for name in [
        "database ",
        "storage ",
        "database version",
        "ffmpeg ",
        "espeak-ng",
        "free disk",
        "public URL",
    ] {
        let line = report
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name}: {report}"));
        assert!(line.starts_with("ok "), "{line}");
    }
    let version = report
        .lines()
        .find(|l| l.contains("database version"))
        .unwrap();
    assert!(
        version.contains("SQLite") || version.contains("PostgreSQL"),
        "{version}"
    );

    // Nothing answers on port 1.
    let (code, report) = check("http://127.0.0.1:1");
    assert_eq!(code, Some(1), "{report}");
    let line = report.lines().find(|l| l.contains("public URL")).unwrap();
    assert!(line.starts_with("FAIL"), "{line}");
}
