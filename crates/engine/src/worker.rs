//! Workers: claim jobs from the store under a lease, run them through the
//! handler for their kind, keep the lease alive, and record the outcome.

use async_trait::async_trait;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::job::{Job, JobFailure, JobOutput, Lease, OutputKind, OutputRole};
use crate::storage::Storage;
use crate::store::{ClaimRequest, LeaseStatus, Store};
use crate::time::now_ms;

/// Runs one kind of job. Renderers implement this.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Produces the job's output files in `ctx.workdir()`. Must return soon
    /// after `ctx.cancel` fires (killing any subprocess it started).
    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure>;
}

/// A file a handler produced, to be stored as one of the job's outputs.
#[derive(Debug, Clone)]
pub struct ProducedOutput {
    pub name: String,
    pub role: OutputRole,
    pub kind: OutputKind,
    pub content_type: String,
    pub path: PathBuf,
}

/// What a handler gets to work with.
pub struct JobContext {
    pub job: Job,
    workdir: PathBuf,
    workdir_made: tokio::sync::OnceCell<()>,
    /// Fires when the job must stop (shutdown past its grace period, or the
    /// lease was lost).
    pub cancel: CancellationToken,
    storage: Arc<dyn Storage>,
    progress: watch::Sender<u8>,
}

impl JobContext {
    /// Scratch space for this attempt, made on first use (a job that needs no
    /// files costs no directory) and removed after the attempt.
    pub async fn workdir(&self) -> Result<&Path, JobFailure> {
        self.make_workdir().await.map_err(|e| {
            JobFailure::new(
                "IO_ERROR",
                format!("could not create a work directory: {e}"),
            )
        })
    }

    async fn make_workdir(&self) -> io::Result<&Path> {
        self.workdir_made
            .get_or_try_init(|| tokio::fs::create_dir_all(&self.workdir))
            .await?;
        Ok(&self.workdir)
    }

    /// A readable local path of one of the job's input files.
    pub async fn input_path(&self, name: &str) -> io::Result<PathBuf> {
        let key = self.job.input_key(name);
        if let Some(path) = self.storage.local_path(&key) {
            if tokio::fs::try_exists(&path).await? {
                return Ok(path);
            }
        }
        let dst = self.make_workdir().await?.join(format!("input-{name}"));
        self.storage.fetch_to(&key, &dst).await?;
        Ok(dst)
    }

    /// Reports progress (0–99; 100 is reported by completion). Never moves
    /// backwards.
    pub fn set_progress(&self, pct: u8) {
        let pct = pct.min(99);
        self.progress.send_if_modified(|current| {
            let rises = pct > *current;
            if rises {
                *current = pct;
            }
            rises
        });
    }
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How many jobs run at once in this process.
    pub slots: usize,
    pub lease: Duration,
    /// Fallback poll for jobs enqueued by other processes and expired leases;
    /// jobs enqueued in this process wake a worker at once.
    pub poll_interval: Duration,
    pub max_retries: u32,
    pub shutdown_grace: Duration,
    pub scratch_dir: PathBuf,
    /// Names this process in leases (for operators reading the database).
    pub owner: String,
}

pub struct WorkerPool {
    stop: CancellationToken,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl WorkerPool {
    pub fn start(engine: Engine, handlers: Vec<Arc<dyn JobHandler>>, config: WorkerConfig) -> Self {
        let stop = CancellationToken::new();
        let handlers = handlers
            .into_iter()
            .map(|h| (h.kind().to_owned(), h))
            .collect();
        let dispatcher = tokio::spawn(dispatch(engine, handlers, Arc::new(config), stop.clone()));
        Self { stop, dispatcher }
    }

    /// Stops claiming, lets running jobs finish within the grace period, and
    /// releases the rest back to the queue.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.dispatcher.await {
            tracing::error!(error = %e, "worker dispatcher ended abnormally");
        }
    }
}

async fn dispatch(
    engine: Engine,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    config: Arc<WorkerConfig>,
    stop: CancellationToken,
) {
    let kinds: Arc<Vec<String>> = Arc::new(handlers.keys().cloned().collect());
    let slots = Arc::new(Semaphore::new(config.slots.max(1)));
    let abort = CancellationToken::new();
    let mut running = JoinSet::new();
    // One claim at a time takes every slot free when it starts: while it is
    // out, freed slots gather for the next one, so a busy queue costs a
    // claim per batch rather than per job, and this process's claimers
    // never skip past each other's locks. A claim that comes back short
    // means the queue is drained: free slots wait for a wake-up.
    let mut claims = JoinSet::new();
    let mut queue_empty = false;

    loop {
        tokio::select! {
            permit = slots.clone().acquire_owned(), if !queue_empty && claims.is_empty() => {
                let mut permits = vec![permit.expect("semaphore never closes")];
                while let Ok(permit) = slots.clone().try_acquire_owned() {
                    permits.push(permit);
                }
                claims.spawn(claim_batch(engine.clone(), kinds.clone(), config.clone(), permits));
            }
            Some(joined) = claims.join_next() => {
                let (claimed, permits) = joined.expect("claims do not panic");
                // Slots left over had no job to take.
                queue_empty = claimed.len() < permits.len();
                start(&mut running, claimed, permits, &handlers, &engine, &config, &abort);
            }
            _ = engine.job_enqueued().notified(), if queue_empty => queue_empty = false,
            // Jobs enqueued by other processes, where the backend can tell.
            _ = engine.store().wait_for_jobs(), if queue_empty => queue_empty = false,
            _ = tokio::time::sleep(config.poll_interval), if queue_empty => queue_empty = false,
            _ = stop.cancelled() => break,
        }
        while running.try_join_next().is_some() {}
    }
    // A claim still in flight may have taken jobs: they run like the others,
    // within the grace period.
    while let Some(joined) = claims.join_next().await {
        if let Ok((claimed, permits)) = joined {
            start(
                &mut running,
                claimed,
                permits,
                &handlers,
                &engine,
                &config,
                &abort,
            );
        }
    }

    if !running.is_empty() {
        tracing::info!(jobs = running.len(), grace = ?config.shutdown_grace, "waiting for running jobs");
    }
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            jobs = running.len(),
            "grace period over; releasing unfinished jobs"
        );
        abort.cancel();
        while running.join_next().await.is_some() {}
    }
}

/// Runs each claimed job in one of the claim's slots.
fn start(
    running: &mut JoinSet<()>,
    claimed: Vec<(Job, Lease)>,
    mut permits: Vec<OwnedSemaphorePermit>,
    handlers: &HashMap<String, Arc<dyn JobHandler>>,
    engine: &Engine,
    config: &Arc<WorkerConfig>,
    abort: &CancellationToken,
) {
    for (job, lease) in claimed {
        // A store returns at most one job per slot asked for; should one
        // not, the extra job's lease runs out and another claim retries it.
        let Some(permit) = permits.pop() else {
            tracing::error!(job = %job.id, "the store returned more jobs than free slots");
            continue;
        };
        let handler = handlers[&job.kind].clone();
        running.spawn(run_job(
            engine.clone(),
            handler,
            job,
            lease,
            config.clone(),
            abort.clone(),
            permit,
        ));
    }
}

/// One claim for the given free slots; the slots come back with the jobs.
async fn claim_batch(
    engine: Engine,
    kinds: Arc<Vec<String>>,
    config: Arc<WorkerConfig>,
    permits: Vec<OwnedSemaphorePermit>,
) -> (Vec<(Job, Lease)>, Vec<OwnedSemaphorePermit>) {
    let now = now_ms();
    let request = ClaimRequest {
        owner: &config.owner,
        kinds: &kinds,
        now,
        lease_until: now + config.lease.as_millis() as i64,
        max_retries: config.max_retries,
        limit: permits.len() as u32,
    };
    match engine.store().claim(&request).await {
        Ok(outcome) => {
            for id in &outcome.gave_up {
                tracing::warn!(job = %id, "job failed: its worker was lost too many times");
            }
            if !outcome.gave_up.is_empty() {
                engine.webhook_enqueued().notify_one();
            }
            (outcome.claimed, permits)
        }
        Err(e) => {
            tracing::error!(error = %e, "claiming a job failed");
            (Vec::new(), permits)
        }
    }
}

async fn run_job(
    engine: Engine,
    handler: Arc<dyn JobHandler>,
    job: Job,
    lease: Lease,
    config: Arc<WorkerConfig>,
    abort: CancellationToken,
    slot: OwnedSemaphorePermit,
) {
    let job_id = job.id;
    let started = std::time::Instant::now();
    tracing::info!(job = %job_id, kind = %job.kind, attempt = lease.attempt, "job started");
    let workdir = config
        .scratch_dir
        .join(format!("{}-{}", job.id, lease.attempt));
    let store = engine.store().clone();
    let user_cancel = CancellationToken::new();
    engine.track_running(job_id, user_cancel.clone());

    let outcome = async {
        let cancel = abort.child_token();
        let (progress_tx, progress_rx) = watch::channel(0u8);
        let flags = Arc::new(RunFlags::default());
        let keeper_stop = CancellationToken::new();
        let _stop_keeper = keeper_stop.clone().drop_guard();
        tokio::spawn(keep_lease(
            store.clone(),
            lease.clone(),
            config.lease,
            progress_rx,
            keeper_stop,
            cancel.clone(),
            user_cancel.clone(),
            flags.clone(),
        ));

        let ctx = JobContext {
            job,
            workdir: workdir.clone(),
            workdir_made: Default::default(),
            cancel,
            storage: engine.storage().clone(),
            progress: progress_tx,
        };
        // A panicking handler must fail its job, not leave it PROCESSING.
        let produced = match tokio::spawn(async move { handler.run(&ctx).await }).await {
            Ok(result) => result,
            Err(e) => Err(JobFailure::new(
                "INTERNAL_ERROR",
                format!("the renderer crashed: {e}"),
            )),
        };
        if flags.lease_lost.load(Ordering::SeqCst) {
            return Err(Stop::LeaseLost);
        }
        if flags.cancel_requested.load(Ordering::SeqCst) {
            return Err(Stop::Cancelled);
        }
        if abort.is_cancelled() {
            return Err(Stop::Shutdown);
        }
        let mut outputs = Vec::new();
        for output in produced.map_err(Stop::Failed)? {
            let size = engine
                .storage()
                .put_file(&crate::job::output_key(job_id, &output.name), &output.path)
                .await
                .map_err(|e| {
                    Stop::Failed(JobFailure::new(
                        "STORAGE_ERROR",
                        format!("could not store output {}: {e}", output.name),
                    ))
                })?;
            outputs.push(JobOutput {
                name: output.name,
                role: output.role,
                kind: output.kind,
                content_type: output.content_type,
                size,
            });
        }
        Ok(outputs)
    }
    .await;
    // The slot is for the work: recording the outcome (a database commit)
    // overlaps the next claim and the next job instead of holding it up.
    drop(slot);

    let now = now_ms();
    let recorded = match &outcome {
        Ok(outputs) => store.complete(&lease, outputs, now).await,
        Err(Stop::Failed(failure)) => store.fail(&lease, failure, now).await,
        Err(Stop::Shutdown) => store.release(&lease, now).await,
        Err(Stop::Cancelled) => store.cancel_processing(&lease, now).await,
        Err(Stop::LeaseLost) => Ok(false),
    };
    if matches!(recorded, Ok(true)) && !matches!(outcome, Err(Stop::Shutdown)) {
        engine.webhook_enqueued().notify_one();
    }
    match (&outcome, recorded) {
        (Ok(_), Ok(true)) => {
            tracing::info!(job = %job_id, elapsed = ?started.elapsed(), "job completed")
        }
        (Err(Stop::Failed(f)), Ok(true)) => {
            tracing::info!(job = %job_id, code = %f.code, message = %f.message, "job failed")
        }
        (Err(Stop::Shutdown), Ok(true)) => {
            tracing::info!(job = %job_id, "job released for another worker")
        }
        (_, Ok(_)) => tracing::warn!(job = %job_id, "lease lost; another worker owns the job now"),
        (_, Err(e)) => {
            tracing::error!(job = %job_id, error = %e, "recording the job's outcome failed; its lease will expire and it will run again")
        }
    }
    engine.untrack_running(job_id);
    if let Err(e) = tokio::fs::remove_dir_all(&workdir).await {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(job = %job_id, error = %e, "could not remove work directory");
        }
    }
}

enum Stop {
    Failed(JobFailure),
    Shutdown,
    Cancelled,
    LeaseLost,
}

/// Why a running job was stopped, as learnt by its lease keeper.
#[derive(Default)]
struct RunFlags {
    lease_lost: AtomicBool,
    cancel_requested: AtomicBool,
}

impl From<JobFailure> for Stop {
    fn from(f: JobFailure) -> Self {
        Stop::Failed(f)
    }
}

const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_millis(250);

/// Heartbeats the lease and writes progress (at most every 250 ms) while the
/// job runs. Stops the job when its lease is lost or it is cancelled (in this
/// process through `user_cancel`, elsewhere through the heartbeat).
#[allow(clippy::too_many_arguments)]
async fn keep_lease(
    store: Arc<dyn Store>,
    lease: Lease,
    lease_for: Duration,
    progress: watch::Receiver<u8>,
    stop: CancellationToken,
    stop_job: CancellationToken,
    user_cancel: CancellationToken,
    flags: Arc<RunFlags>,
) {
    let mut heartbeat = tokio::time::interval(lease_for / 3);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut progress_tick = tokio::time::interval(PROGRESS_WRITE_INTERVAL);
    let mut written = 0u8;
    let cancel = |flags: &RunFlags| {
        flags.cancel_requested.store(true, Ordering::SeqCst);
        stop_job.cancel();
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = user_cancel.cancelled(), if !stop_job.is_cancelled() => cancel(&flags),
            _ = heartbeat.tick() => {
                let until = now_ms() + lease_for.as_millis() as i64;
                match store.heartbeat(&lease, until).await {
                    Ok(LeaseStatus::Held) => {}
                    Ok(LeaseStatus::CancelRequested) => cancel(&flags),
                    Ok(LeaseStatus::Lost) => {
                        flags.lease_lost.store(true, Ordering::SeqCst);
                        stop_job.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(job = %lease.job_id, error = %e, "heartbeat failed"),
                }
            }
            _ = progress_tick.tick() => {
                let current = *progress.borrow();
                if current != written {
                    match store.record_progress(&lease, current, now_ms()).await {
                        Ok(_) => written = current,
                        Err(e) => tracing::warn!(job = %lease.job_id, error = %e, "recording progress failed"),
                    }
                }
            }
        }
    }
}
