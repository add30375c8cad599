//! scaling: renders per minute with 1, 2 and 4 worker processes, the way an
//! operator scales rendering apart from the API: one `genq serve --workers 0`
//! and K `genq worker --concurrency 1` on one PostgreSQL database and one
//! shared data directory (uploads and outputs are files under it).
//!
//! Each K gets a fresh database and data directory. M image + audio jobs are
//! submitted through `POST /api/jobs`; the figure runs from just before the
//! first submission to the last job's completion, as the server recorded it
//! (a COMPLETED job's `updatedAt` is the moment of its completion), so the
//! status polling's interval does not blur it.

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::task::JoinSet;

use crate::server::{genq_binary, genq_command, tail, Server};
use crate::stats::Summary;
use crate::table::Row;
use crate::{inputs, pg, Plan};

const PATIENCE: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(100);

pub async fn run(plan: &Plan, dir: &Path, postgres: &pg::Server) -> anyhow::Result<Vec<Row>> {
    if let Err(e) = postgres.describe().await {
        let why = format!("PostgreSQL unreachable: {e:#}");
        eprintln!("  scaling skipped: {why}");
        return Ok(vec![Row::skipped("scaling", &why)]);
    }
    let genq = genq_binary()?;
    let image = inputs::small_photo(dir).await?;
    let audio = inputs::mp3(dir, plan.scaling_audio_secs).await?;
    let jobs = plan.scaling_jobs;
    let mut rates = Vec::new();
    for &workers in &plan.scaling_workers {
        let db = postgres
            .create_database(&format!("scaling{workers}"))
            .await?;
        let data_dir = dir.join(format!("scaling-{workers}"));
        let measured = once(&genq, &data_dir, &db.url, workers, jobs, &image, &audio).await;
        db.drop_now().await?;
        let per_minute = measured?;
        eprintln!("  scaling: {workers} worker process(es): {per_minute:.1} renders/min");
        rates.push((workers, per_minute));
    }
    let base = rates.first().map(|(_, r)| *r);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut rows = Vec::new();
    for (workers, per_minute) in rates {
        let s = Summary::of(&[per_minute]).expect("one sample");
        let noun = if workers == 1 { "process" } else { "processes" };
        let mut note = format!(
            "{jobs} renders, 1280×720 JPEG + {} s MP3, --concurrency 1 each",
            plan.scaling_audio_secs
        );
        if workers > cores {
            // ffmpeg is CPU-bound: more renderers than cores only share them.
            note.push_str(&format!("; more processes than the {cores} cores"));
        }
        let mut row = Row::new(
            format!("scaling: {workers} worker {noun}"),
            s,
            "renders/min",
        )
        .decimals(1)
        .note(note);
        if let (Some(base), true) = (base, workers > 1) {
            row = row.ratio("speedup vs 1", per_minute / base);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// One configuration: the API, `workers` worker processes, `jobs` renders.
/// Returns renders per minute.
async fn once(
    genq: &Path,
    data_dir: &Path,
    url: &str,
    workers: usize,
    jobs: usize,
    image: &Path,
    audio: &Path,
) -> anyhow::Result<f64> {
    let server = Server::start_on(genq, data_dir, Some(url)).await?;
    let mut pool = Vec::new();
    let measured = async {
        // One key per job: the video API allows one active job per key.
        let mut keys = JoinSet::new();
        for i in 0..jobs {
            let accounts = server.accounts();
            keys.spawn(async move { accounts.create(&format!("bench-{i}")).await });
        }
        let mut accounts = Vec::new();
        while let Some(key) = keys.join_next().await {
            accounts.push(key??);
        }
        for i in 0..workers {
            pool.push(Worker::start(genq, data_dir, url, i).await?);
        }
        // Each worker LISTENs once it first finds the queue empty; a moment
        // of rest lets every one of them get there before the clock starts,
        // so none waits for its 1 s fallback poll.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let client = reqwest::Client::new();
        let started = Utc::now();
        let mut ids = Vec::new();
        for key in &accounts {
            ids.push((
                key.as_str(),
                crate::memory::upload(&client, &server, key, image, audio).await?,
            ));
        }
        let finished = wait_for_all(&client, &server, &ids).await?;
        for worker in &mut pool {
            worker.check()?;
        }
        let span = (finished - started).num_milliseconds() as f64 / 1e3;
        anyhow::ensure!(
            span > 0.0,
            "the renders finished before they were submitted"
        );
        anyhow::Ok(jobs as f64 * 60.0 / span)
    }
    .await;
    for worker in pool {
        worker.stop().await;
    }
    server.stop().await?;
    measured
}

/// Polls until every job is COMPLETED; returns when the last one completed.
async fn wait_for_all(
    client: &reqwest::Client,
    server: &Server,
    ids: &[(&str, String)],
) -> anyhow::Result<DateTime<Utc>> {
    let deadline = Instant::now() + PATIENCE;
    let mut done: Vec<Option<DateTime<Utc>>> = vec![None; ids.len()];
    while done.iter().any(Option::is_none) {
        if Instant::now() > deadline {
            bail!(
                "the renders did not all finish within {} s",
                PATIENCE.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
        for ((key, id), done) in ids.iter().zip(&mut done) {
            if done.is_some() {
                continue;
            }
            let status: serde_json::Value = client
                .get(server.url(&format!("/api/status/{id}")))
                .header("X-API-Key", *key)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            match status["status"].as_str() {
                Some("COMPLETED") => {
                    let at = status["updatedAt"].as_str().unwrap_or_default();
                    let at = DateTime::parse_from_rfc3339(at)
                        .with_context(|| format!("bad updatedAt in {status}"))?;
                    *done = Some(at.with_timezone(&Utc));
                }
                Some("PENDING" | "PROCESSING") => {}
                _ => bail!("render {id} did not complete: {status}"),
            }
        }
    }
    Ok(done.into_iter().flatten().max().expect("at least one job"))
}

/// A `genq worker` process, logging to a file beside the data dir.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    async fn start(genq: &Path, data_dir: &Path, url: &str, n: usize) -> anyhow::Result<Worker> {
        let log = data_dir.with_extension(format!("worker-{n}.log"));
        let log_file = std::fs::File::create(&log)?;
        let mut child = genq_command(genq)
            .args(["worker", "--concurrency", "1", "--database-url", url])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting genq worker")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = tokio::fs::read_to_string(&log).await.unwrap_or_default();
            if text.contains("starting workers") {
                return Ok(Worker { child, log });
            }
            if let Some(status) = child.try_wait()? {
                bail!("genq worker exited ({status}) at startup:\n{}", tail(&text));
            }
            if Instant::now() > deadline {
                bail!("genq worker did not start within 60 s:\n{}", tail(&text));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails if the worker died during the run.
    fn check(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!(
                "genq worker exited ({status}) during the run:\n{}",
                tail(&log)
            );
        }
        Ok(())
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
