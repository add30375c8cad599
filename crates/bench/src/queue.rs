//! queue: the engine as a library over a real SQLite file — how fast no-op
//! jobs go through enqueue, claim and completion, and how soon an idle worker
//! picks up a new job.

use anyhow::{bail, Context};
use async_trait::async_trait;
use genq_engine::account::NewAccount;
use genq_engine::{
    Engine, JobContext, JobFailure, JobHandler, JobId, LocalFiles, NewJob, Principal,
    ProducedOutput, SubmitLimits, WorkerConfig, WorkerPool,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use crate::stats::{ms, percentile, Summary};
use crate::table::{Row, Target};
use crate::Plan;

const KIND: &str = "noop";
/// Enqueuers working at once during the drain, like that many API requests.
const ENQUEUERS: usize = 8;
const SLOTS: usize = 4;
const GAP: Duration = Duration::from_millis(5);
const PATIENCE: Duration = Duration::from_secs(300);

pub async fn run(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let (mut drain, mut claim_p50, mut claim_p99, mut submit_p50) =
        (vec![], vec![], vec![], vec![]);
    let mut batches = vec![];
    for rep in 0..plan.queue_reps {
        // Batches on a database of their own, with no worker taking them.
        let batch_dir = dir.join(format!("queue-batch-{rep}"));
        let url = format!("sqlite://{}", batch_dir.join("genq.db").display());
        let (engine, principal) = engine_with_account(&url, &batch_dir).await?;
        let rate = batch_rate(&engine, &principal, plan.queue_jobs.max(BATCH)).await?;
        eprintln!("  queue run {}: batch submit {rate:.0} jobs/s", rep + 1);
        batches.push(rate);

        // A fresh database each time, so repetitions are alike.
        let bench = Bench::open(&dir.join(format!("queue-{rep}"))).await?;
        let result = async {
            let rate = bench.drain(plan.queue_jobs).await?;
            let (mut claims, mut submits) = bench.latencies(plan.latency_jobs).await?;
            claims.sort_unstable();
            submits.sort_unstable();
            anyhow::Ok((rate, claims, submits))
        }
        .await;
        bench.pool.shutdown().await;
        let (rate, claims, submits) = result?;
        let (p50, p99) = (pct(&claims, 50.0), pct(&claims, 99.0));
        eprintln!(
            "  queue run {}: drain {rate:.0} jobs/s; enqueue→claim p50 {p50:.2} ms, p99 {p99:.2} ms",
            rep + 1
        );
        drain.push(rate);
        claim_p50.push(p50);
        claim_p99.push(p99);
        submit_p50.push(pct(&submits, 50.0));
    }
    let summary = |v: &[f64]| Summary::of(v).context("no queue repetitions were run");
    let (drain, p50, p99) = (summary(&drain)?, summary(&claim_p50)?, summary(&claim_p99)?);
    Ok(vec![
        Row::new("queue: drain, no-op jobs", drain, "jobs/s").note(format!(
            "{} jobs, {ENQUEUERS} enqueuers, {SLOTS} slots",
            plan.queue_jobs
        )),
        Row::new("queue: enqueue→claim p50", p50, "ms")
            .target(Target::below(p50.median, 2.0, "< 2 ms")),
        Row::new("queue: enqueue→claim p99", p99, "ms")
            .target(Target::below(p99.median, 10.0, "< 10 ms")),
        Row::new("queue: submit call p50", summary(&submit_p50)?, "ms")
            .note("part of enqueue→claim: the durable insert"),
        Row::new("queue: batch submit", summary(&batches)?, "jobs/s").note(format!(
            "batches of {BATCH} (Engine::submit_all, as POST /v1/jobs/batch), one transaction each; {} jobs",
            plan.queue_jobs.max(BATCH)
        )),
    ])
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    percentile(sorted, p).map_or(f64::NAN, ms)
}

/// Records when each job reached its handler, and nothing else (also the
/// handler of the `pg-queue` figure).
#[derive(Default)]
pub(crate) struct Noop {
    started: Mutex<HashMap<JobId, Instant>>,
    pub(crate) runs: AtomicUsize,
}

#[async_trait]
impl JobHandler for Noop {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure> {
        let now = Instant::now();
        self.started
            .lock()
            .expect("not poisoned")
            .insert(ctx.job.id, now);
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::new())
    }
}

/// An engine on the store at `url` (files under `dir`) and one account's
/// principal to submit with.
pub(crate) async fn engine_with_account(
    url: &str,
    dir: &Path,
) -> anyhow::Result<(Engine, Principal)> {
    tokio::fs::create_dir_all(dir).await?;
    let db = genq_db::open(url).await?;
    let files = Arc::new(LocalFiles::new(dir.join("files"))?);
    let engine = Engine::new(db, files, dir.join("tmp/uploads"))?;
    let account = NewAccount {
        name: "bench".into(),
        ..NewAccount::default()
    };
    let (_, _, key) = engine.create_account(&account, vec![]).await?;
    let principal = engine
        .authenticate(&key)
        .await?
        .context("the new key does not authenticate")?;
    Ok((engine, principal))
}

struct Bench {
    engine: Engine,
    principal: Principal,
    handler: Arc<Noop>,
    pool: WorkerPool,
}

impl Bench {
    async fn open(dir: &Path) -> anyhow::Result<Bench> {
        let url = format!("sqlite://{}", dir.join("genq.db").display());
        let (engine, principal) = engine_with_account(&url, dir).await?;
        let handler = Arc::new(Noop::default());
        let config = WorkerConfig {
            slots: SLOTS,
            lease: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            max_retries: 3,
            shutdown_grace: Duration::from_secs(10),
            scratch_dir: dir.join("tmp/work"),
            owner: "genq-bench".into(),
        };
        let pool = WorkerPool::start(engine.clone(), vec![handler.clone()], config);
        Ok(Bench {
            engine,
            principal,
            handler,
            pool,
        })
    }

    /// Jobs per second from the first enqueue to the last completion.
    async fn drain(&self, jobs: usize) -> anyhow::Result<f64> {
        let runs_before = self.handler.runs.load(Ordering::SeqCst);
        let started = Instant::now();
        let mut enqueuers = JoinSet::new();
        for i in 0..ENQUEUERS {
            let share = jobs / ENQUEUERS + usize::from(i < jobs % ENQUEUERS);
            let (engine, principal) = (self.engine.clone(), self.principal.clone());
            enqueuers.spawn(async move {
                for _ in 0..share {
                    engine.submit(&principal, noop_job()).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = enqueuers.join_next().await {
            done??;
        }
        // Watching the handler first keeps the database quiet while jobs run;
        // then the store says when the last completion is committed.
        let deadline = started + PATIENCE;
        while self.handler.runs.load(Ordering::SeqCst) < runs_before + jobs {
            wait_or_give_up(deadline, "the queue to drain").await?;
        }
        while self.engine.active_jobs(self.principal.account_id).await? > 0 {
            wait_or_give_up(deadline, "the last completions").await?;
        }
        Ok(jobs as f64 / started.elapsed().as_secs_f64())
    }

    /// One job at a time while the workers are idle: from just before
    /// `submit` to the handler's start, and the `submit` call alone.
    async fn latencies(&self, jobs: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
        let mut submitted = Vec::with_capacity(jobs);
        let mut submit_calls = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            let before = Instant::now();
            let job = self.engine.submit(&self.principal, noop_job()).await?;
            submit_calls.push(before.elapsed());
            submitted.push((job.id, before));
            tokio::time::sleep(GAP).await;
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let claims: Option<Vec<Duration>> = {
                let started = self.handler.started.lock().expect("not poisoned");
                submitted
                    .iter()
                    .map(|(id, before)| started.get(id).map(|s| s.duration_since(*before)))
                    .collect()
            };
            if let Some(claims) = claims {
                return Ok((claims, submit_calls));
            }
            wait_or_give_up(deadline, "the latency jobs to be claimed").await?;
        }
    }
}

/// The largest batch `POST /v1/jobs/batch` takes.
pub(crate) const BATCH: usize = 1_000;

/// Submits `jobs` no-op jobs in batches of [`BATCH`], each all or none in
/// one transaction (`Engine::submit_all`, as `POST /v1/jobs/batch` does);
/// jobs per second.
pub(crate) async fn batch_rate(
    engine: &Engine,
    principal: &Principal,
    jobs: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut left = jobs;
    while left > 0 {
        let n = left.min(BATCH);
        let batch = (0..n).map(|_| noop_job()).collect();
        engine.submit_all(principal, batch, None).await?;
        left -= n;
    }
    Ok(jobs as f64 / started.elapsed().as_secs_f64())
}

pub(crate) fn noop_job() -> NewJob {
    NewJob {
        kind: KIND.into(),
        dialect: "bench".into(),
        input: serde_json::json!({}),
        limits: SubmitLimits::default(),
        ..NewJob::default()
    }
}

async fn wait_or_give_up(deadline: Instant, what: &str) -> anyhow::Result<()> {
    if Instant::now() > deadline {
        bail!("gave up waiting for {what} after {} s", PATIENCE.as_secs());
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}
