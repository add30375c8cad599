//! pg-queue: genq's queue on PostgreSQL beside graphile-worker's, on the same
//! server, with the same number of jobs, one process each at the same
//! concurrency. Both sides enqueue N no-op jobs, then start their workers
//! and drain them; each side gets a fresh database for every run.
//!
//! genq runs in this process as a library (the engine, the PostgreSQL store
//! and a `WorkerPool`), as `queue` does over SQLite; graphile-worker runs in
//! its own Node.js process (`bench/graphile/bench.mjs`). Neither side logs.

use anyhow::Context;
use genq_engine::{Engine, Principal, WorkerConfig, WorkerPool};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use crate::queue::{batch_rate, engine_with_account, noop_job, Noop, BATCH};
use crate::stats::Summary;
use crate::table::{Row, Target};
use crate::{graphile, pg, Plan};

const PATIENCE: Duration = Duration::from_secs(300);

/// The rates of one configuration (concurrency C, N jobs) over its runs.
#[derive(Default)]
struct Samples {
    genq_enqueue: Vec<f64>,
    genq_batch: Vec<f64>,
    genq_drain: Vec<f64>,
    graphile_bulk: Vec<f64>,
    graphile_batched: Vec<f64>,
    graphile_each: Vec<f64>,
    graphile_drain: Vec<f64>,
}

pub async fn run(plan: &Plan, dir: &Path, postgres: &pg::Server) -> anyhow::Result<Vec<Row>> {
    let server = match postgres.describe().await {
        Ok(server) => server,
        Err(e) => return Ok(skipped(&format!("PostgreSQL unreachable: {e:#}"))),
    };
    let project = graphile::project_dir();
    if let Err(e) = graphile::install(&project).await {
        return Ok(skipped(&format!("graphile-worker not installed: {e:#}")));
    }
    let mut rows = Vec::new();
    for &(concurrency, jobs) in &plan.pg_queue {
        let mut samples = Samples::default();
        for rep in 0..plan.pg_queue_reps {
            // Alternating which side goes first spreads a burst of other load
            // over both.
            for genq_turn in [rep % 2 == 1, rep % 2 == 0] {
                if genq_turn {
                    let db = postgres.create_database("genq").await?;
                    let run_dir = dir.join(format!("pg-queue-c{concurrency}-{rep}"));
                    let measured = genq_once(&db.url, &run_dir, jobs, concurrency).await;
                    db.drop_now().await?;
                    let (enqueue, drain) = measured?;
                    let (enqueue, drain) = (enqueue.as_secs_f64(), drain.as_secs_f64());
                    eprintln!(
                        "  pg-queue c={concurrency} run {}: genq enqueue {:.0}/s, drain {:.0}/s",
                        rep + 1,
                        jobs as f64 / enqueue,
                        jobs as f64 / drain
                    );
                    samples.genq_enqueue.push(jobs as f64 / enqueue);
                    samples.genq_drain.push(jobs as f64 / drain);
                    let db = postgres.create_database("genq_batch").await?;
                    let run_dir = dir.join(format!("pg-queue-batch-c{concurrency}-{rep}"));
                    let measured = async {
                        let (engine, principal) = engine_with_account(&db.url, &run_dir).await?;
                        batch_rate(&engine, &principal, jobs.max(BATCH)).await
                    }
                    .await;
                    db.drop_now().await?;
                    let rate = measured?;
                    eprintln!(
                        "  pg-queue c={concurrency} run {}: genq batch submit {rate:.0}/s",
                        rep + 1
                    );
                    samples.genq_batch.push(rate);
                } else {
                    let db = postgres.create_database("graphile").await?;
                    let measured = graphile::run(&project, &db.url, jobs, concurrency, BATCH).await;
                    db.drop_now().await?;
                    let t = measured?;
                    eprintln!(
                        "  pg-queue c={concurrency} run {}: graphile-worker addJobs {:.0}/s \
                         ({:.0}/s in calls of {BATCH}), addJob {:.0}/s, drain {:.0}/s",
                        rep + 1,
                        jobs as f64 / t.enqueue_bulk,
                        jobs as f64 / t.enqueue_batched,
                        jobs as f64 / t.enqueue_each,
                        jobs as f64 / t.drain
                    );
                    samples.graphile_bulk.push(jobs as f64 / t.enqueue_bulk);
                    samples
                        .graphile_batched
                        .push(jobs as f64 / t.enqueue_batched);
                    samples.graphile_each.push(jobs as f64 / t.enqueue_each);
                    samples.graphile_drain.push(jobs as f64 / t.drain);
                }
            }
        }
        let first = rows.is_empty();
        rows.extend(rows_of(
            &samples,
            concurrency,
            jobs,
            first.then_some(&*server),
        )?);
    }
    Ok(rows)
}

fn rows_of(s: &Samples, c: usize, jobs: usize, server: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let summary = |v: &[f64]| Summary::of(v).context("no pg-queue runs were made");
    let (enqueue, drain) = (summary(&s.genq_enqueue)?, summary(&s.genq_drain)?);
    let batch = summary(&s.genq_batch)?;
    let (bulk, each) = (summary(&s.graphile_bulk)?, summary(&s.graphile_each)?);
    let batched = summary(&s.graphile_batched)?;
    let gw_drain = summary(&s.graphile_drain)?;
    let name = |what: &str| format!("pg-queue c={c}: {what}");
    let each_ratio = enqueue.median / each.median;
    let drain_ratio = drain.median / gw_drain.median;
    let mut setup = format!("{jobs} jobs, 1 process each, concurrency {c}");
    if let Some(server) = server {
        setup = format!("{setup}; {server}");
    }
    Ok(vec![
        Row::new(name("genq enqueue"), enqueue, "jobs/s")
            .ratio("genq/graphile addJob", each_ratio)
            .target(Target::at_least(each_ratio, 1.0, "≥ graphile"))
            .note(format!(
                "Engine::submit from {c} {}, a transaction each; {setup}",
                plural(c, "task", "tasks")
            )),
        Row::new(name("graphile enqueue, addJob"), each, "jobs/s").note(format!(
            "one addJob call per job from {c} {}",
            plural(c, "caller", "callers")
        )),
        // The goal is held against graphile-worker's bulk path at the same
        // batch size: genq's batch route takes at most BATCH jobs a call.
        Row::new(name("genq batch submit"), batch, "jobs/s")
            .ratio("genq/graphile addJobs, same batch size", batch.median / batched.median)
            .target(Target::at_least(
                batch.median / batched.median,
                0.5,
                "≥ 0.5× graphile addJobs",
            ))
            .note(format!(
                "batches of {BATCH} (Engine::submit_all, as POST /v1/jobs/batch): one genq_submit_batch call and one transaction each; {:.2}× graphile's single call of {jobs}",
                batch.median / bulk.median
            )),
        Row::new(name(&format!("graphile enqueue, addJobs by {BATCH}")), batched, "jobs/s")
            .note(format!("bulk in calls of {BATCH} jobs, one after another")),
        Row::new(name("graphile enqueue, addJobs"), bulk, "jobs/s")
            .note("bulk: one add_jobs() SQL call for all jobs"),
        Row::new(name("genq drain"), drain, "jobs/s")
            .ratio("genq/graphile", drain_ratio)
            .target(Target::at_least(drain_ratio, 1.0, "≥ graphile"))
            .note(format!(
                "WorkerPool, {c} {}, no-op handler",
                plural(c, "slot", "slots")
            )),
        Row::new(name("graphile drain"), gw_drain, "jobs/s").note(format!(
            "graphile-worker 0.17.3 run(), concurrency {c}, no-op task, defaults otherwise"
        )),
    ])
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// A row saying why the figure was not measured: not an error.
fn skipped(why: &str) -> Vec<Row> {
    eprintln!("  pg-queue skipped: {why}");
    vec![Row::skipped("pg-queue", why)]
}

/// Enqueues `jobs` no-op jobs from `concurrency` tasks, then starts a pool of
/// `concurrency` slots and waits for the last completion. Returns the two
/// durations.
async fn genq_once(
    url: &str,
    dir: &Path,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let (engine, principal) = engine_with_account(url, dir).await?;

    let started = Instant::now();
    enqueue(&engine, &principal, jobs, concurrency).await?;
    let enqueued = started.elapsed();

    let handler = Arc::new(Noop::default());
    let config = WorkerConfig {
        slots: concurrency,
        // genq serve's defaults: the lease and poll a real worker would use.
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_secs(1),
        max_retries: 3,
        shutdown_grace: Duration::from_secs(10),
        scratch_dir: dir.join("tmp/work"),
        owner: "genq-bench".into(),
    };
    let started = Instant::now();
    let pool = WorkerPool::start(engine.clone(), vec![handler.clone()], config);
    let drained = async {
        let deadline = started + PATIENCE;
        // The handler's count costs the database nothing; the store is asked
        // only at the end, for the moment the last completion is committed.
        while handler.runs.load(Ordering::SeqCst) < jobs {
            wait_or_give_up(deadline, "the genq queue to drain").await?;
        }
        while engine.active_jobs(principal.account_id).await? > 0 {
            wait_or_give_up(deadline, "genq's last completions").await?;
        }
        anyhow::Ok(started.elapsed())
    }
    .await;
    pool.shutdown().await;
    Ok((enqueued, drained?))
}

async fn enqueue(
    engine: &Engine,
    principal: &Principal,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    for i in 0..concurrency {
        let share = jobs / concurrency + usize::from(i < jobs % concurrency);
        let (engine, principal) = (engine.clone(), principal.clone());
        tasks.spawn(async move {
            for _ in 0..share {
                engine.submit(&principal, noop_job()).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

async fn wait_or_give_up(deadline: Instant, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        Instant::now() < deadline,
        "gave up waiting for {what} after {} s",
        PATIENCE.as_secs()
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}
