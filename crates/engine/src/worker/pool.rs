//! The worker pool: claims jobs from the database under a lease, runs each
//! through the handler for its kind, keeps the lease alive, and records the
//! outcome. It learns of new jobs and of cancels from the event bus, and
//! polls as a fallback.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{JobContext, JobHandler, ProducedOutput};
use crate::db::{ClaimRequest, LeaseStatus};
use crate::engine::Engine;
use crate::events::{JobEvent, Signal};
use crate::ids::JobId;
use crate::job::{deadline_failure, output_key, Job, JobFailure, JobOutput, JobState, Lease};
use crate::time::{now_ms, Millis};

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How many jobs run at once in this process.
    pub slots: usize,
    pub lease: Duration,
    /// Fallback poll for new jobs and expired leases; events wake a worker
    /// at once otherwise.
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

/// Jobs this pool is running, so that a cancel stops them at once.
type Running = Arc<Mutex<HashMap<JobId, CancellationToken>>>;

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
    match super::scratch::sweep_at_start(&engine, &config.scratch_dir).await {
        0 => {}
        n => tracing::info!(dirs = n, "removed work directories left by stopped runs"),
    }
    let kinds: Arc<Vec<String>> = Arc::new(handlers.keys().cloned().collect());
    let slots = Arc::new(Semaphore::new(config.slots.max(1)));
    let abort = CancellationToken::new();
    let running: Running = Default::default();
    // A queued job (from any process) wakes an idle claimer; a cancel asked
    // for a job running here stops it.
    let wake = Arc::new(Notify::new());
    let _hook = {
        let (wake, running) = (wake.clone(), running.clone());
        engine.on_event(move |signal| match signal {
            Signal::Changed(event) if event.state == JobState::Pending => wake.notify_one(),
            Signal::Changed(event) if event.cancel_requested => {
                if let Some(stop) = running.lock().expect("not poisoned").get(&event.job_id) {
                    stop.cancel();
                }
            }
            Signal::Changed(_) => {}
            Signal::Missed => wake.notify_one(),
        })
    };
    let mut jobs = JoinSet::new();
    // One claim at a time takes every slot free when it starts: while it is
    // out, freed slots gather for the next one, so a busy queue costs a
    // claim per batch rather than per job, and this process's claimers
    // never skip past each other's locks. A claim that comes back short
    // means the queue is drained: free slots wait for a wake-up.
    let mut claims = JoinSet::new();
    let mut queue_empty = false;
    let mut overdue = tokio::time::interval(OVERDUE_SWEEP_EVERY);
    let mut sweeps = 0u64;
    overdue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let runner = Runner {
        engine: engine.clone(),
        handlers,
        config: config.clone(),
        abort: abort.clone(),
        running,
    };

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
                runner.start(&mut jobs, claimed, permits);
            }
            _ = wake.notified(), if queue_empty => queue_empty = false,
            _ = tokio::time::sleep(config.poll_interval), if queue_empty => queue_empty = false,
            _ = overdue.tick() => {
                fail_overdue(&engine).await;
                sweeps += 1;
                if sweeps.is_multiple_of(FORGET_KEYS_EVERY) {
                    forget_expired_keys(&engine).await;
                }
            }
            _ = stop.cancelled() => break,
        }
        while jobs.try_join_next().is_some() {}
    }
    // A claim still in flight may have taken jobs: they run like the others,
    // within the grace period.
    while let Some(joined) = claims.join_next().await {
        if let Ok((claimed, permits)) = joined {
            runner.start(&mut jobs, claimed, permits);
        }
    }

    if !jobs.is_empty() {
        tracing::info!(jobs = jobs.len(), grace = ?config.shutdown_grace, "waiting for running jobs");
    }
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while jobs.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            jobs = jobs.len(),
            "grace period over; releasing unfinished jobs"
        );
        abort.cancel();
        while jobs.join_next().await.is_some() {}
    }
}

/// How often a worker process fails the pending jobs whose deadline passed
/// (running ones are failed by their own worker at the moment itself).
const OVERDUE_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Every so many overdue sweeps, expired idempotency keys are forgotten.
const FORGET_KEYS_EVERY: u64 = 60;

async fn forget_expired_keys(engine: &Engine) {
    match engine.db().delete_expired_keys(now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(keys = n, "forgot expired idempotency keys"),
        Err(e) => tracing::warn!(error = %e, "forgetting expired idempotency keys failed"),
    }
}

async fn fail_overdue(engine: &Engine) {
    match engine.db().fail_overdue(now_ms()).await {
        Ok(failed) => {
            for job in &failed {
                tracing::info!(job = %job.id, "job failed: its deadline passed while it waited");
                crate::metrics::job_finished(job, JobState::Failed);
                engine.bus().publish_local(engine.event_of(job));
            }
        }
        Err(e) => tracing::warn!(error = %e, "failing overdue jobs failed"),
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
    match engine.db().claim(&request).await {
        Ok(outcome) => {
            for job in &outcome.gave_up {
                tracing::warn!(job = %job.id, "job failed: its worker was lost too many times");
                crate::metrics::job_finished(job, JobState::Failed);
                engine.bus().publish_local(engine.event_of(job));
            }
            for (job, _) in &outcome.claimed {
                engine.bus().publish_local(engine.event_of(job));
            }
            (outcome.claimed, permits)
        }
        Err(e) => {
            tracing::error!(error = %e, "claiming a job failed");
            (Vec::new(), permits)
        }
    }
}

/// What every running job shares.
struct Runner {
    engine: Engine,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    config: Arc<WorkerConfig>,
    /// Fires when the grace period of a shutdown is over.
    abort: CancellationToken,
    running: Running,
}

impl Runner {
    /// Runs each claimed job in one of the claim's slots.
    fn start(
        &self,
        jobs: &mut JoinSet<()>,
        claimed: Vec<(Job, Lease)>,
        mut permits: Vec<OwnedSemaphorePermit>,
    ) {
        for (job, lease) in claimed {
            // A database returns at most one job per slot asked for; should
            // one not, the extra job's lease runs out and another claim
            // retries it.
            let Some(permit) = permits.pop() else {
                tracing::error!(job = %job.id, "the database returned more jobs than free slots");
                continue;
            };
            let Some(handler) = self.handlers.get(&job.kind).cloned() else {
                tracing::error!(job = %job.id, kind = %job.kind, "no handler for a claimed job");
                continue;
            };
            let user_cancel = CancellationToken::new();
            self.running
                .lock()
                .expect("not poisoned")
                .insert(job.id, user_cancel.clone());
            jobs.spawn(
                RunningJob {
                    engine: self.engine.clone(),
                    config: self.config.clone(),
                    event: JobEvent::of(&job),
                    job,
                    lease,
                    user_cancel,
                    running: self.running.clone(),
                    flags: Default::default(),
                }
                .run(handler, self.abort.clone(), permit),
            );
        }
    }
}

/// How a job's run ended, before it is recorded.
enum Stop {
    Failed(JobFailure),
    Shutdown,
    Cancelled,
    LeaseLost,
}

struct RunningJob {
    engine: Engine,
    config: Arc<WorkerConfig>,
    job: Job,
    /// The job as of its claim; outcomes are announced as changes of it.
    event: JobEvent,
    lease: Lease,
    /// Fires when its owner cancels it (through this process's bus).
    user_cancel: CancellationToken,
    running: Running,
    flags: Arc<RunFlags>,
}

impl RunningJob {
    async fn run(
        self,
        handler: Arc<dyn JobHandler>,
        abort: CancellationToken,
        slot: OwnedSemaphorePermit,
    ) {
        let job_id = self.job.id;
        let started = std::time::Instant::now();
        tracing::info!(job = %job_id, kind = %self.job.kind, attempt = self.lease.attempt, "job started");
        let scratch = &self.config.scratch_dir;
        if self.lease.attempt > 1 {
            super::scratch::remove_earlier_attempts(scratch, job_id, self.lease.attempt).await;
        }
        let workdir = scratch.join(format!("{}-{}", job_id, self.lease.attempt));
        let outcome = self.work(handler, &abort, workdir.clone()).await;
        // The slot is for the work: recording the outcome (a database commit)
        // overlaps the next claim and the next job instead of holding it up.
        drop(slot);
        // Outputs are in storage by now. Removed before the commit: a render
        // that failed on a full disk frees its space for the database.
        if let Err(e) = tokio::fs::remove_dir_all(&workdir).await {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(job = %job_id, error = %e, "could not remove work directory");
            }
        }
        self.record(&outcome, started).await;
        self.running.lock().expect("not poisoned").remove(&job_id);
    }

    /// Runs the handler under the lease keeper and stores what it produced.
    async fn work(
        &self,
        handler: Arc<dyn JobHandler>,
        abort: &CancellationToken,
        workdir: PathBuf,
    ) -> Result<Vec<JobOutput>, Stop> {
        // Claimed after its deadline (its worker was lost, or it waited for
        // a slot past the sweep): it fails without starting.
        if self.job.deadline_at.is_some_and(|at| at <= now_ms()) {
            return Err(Stop::Failed(deadline_failure(self.job.timeout_ms)));
        }
        let cancel = abort.child_token();
        let (progress_tx, progress_rx) = watch::channel(0u8);
        let flags = self.flags.clone();
        let keeper = LeaseKeeper {
            engine: self.engine.clone(),
            lease: self.lease.clone(),
            lease_for: self.config.lease,
            event: self.event.clone(),
            flags: flags.clone(),
            stop_job: cancel.clone(),
            deadline: self.job.deadline_at,
        };
        let keeper_stop = CancellationToken::new();
        let _stop_keeper = keeper_stop.clone().drop_guard();
        tokio::spawn(keeper.run(progress_rx, keeper_stop, self.user_cancel.clone()));

        let ctx = JobContext {
            job: self.job.clone(),
            workdir,
            workdir_made: Default::default(),
            cancel,
            files: self.engine.files().clone(),
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
        if flags.deadline_passed.load(Ordering::SeqCst) {
            return Err(Stop::Failed(deadline_failure(self.job.timeout_ms)));
        }
        if flags.cancel_requested.load(Ordering::SeqCst) {
            return Err(Stop::Cancelled);
        }
        if abort.is_cancelled() {
            return Err(Stop::Shutdown);
        }
        self.store_outputs(produced.map_err(Stop::Failed)?).await
    }

    async fn store_outputs(&self, produced: Vec<ProducedOutput>) -> Result<Vec<JobOutput>, Stop> {
        let mut outputs = Vec::with_capacity(produced.len());
        for output in produced {
            let size = self
                .engine
                .files()
                .put_file(&output_key(self.job.id, &output.name), &output.path)
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
                details: output.details,
            });
        }
        Ok(outputs)
    }

    /// Records the outcome under the lease and announces it.
    async fn record(&self, outcome: &Result<Vec<JobOutput>, Stop>, started: std::time::Instant) {
        let (db, lease, job_id) = (self.engine.db(), &self.lease, self.job.id);
        let now = now_ms();
        let progress = self.flags.progress.load(Ordering::SeqCst);
        let (recorded, state, progress) = match outcome {
            Ok(outputs) => (
                db.complete(lease, outputs, now).await,
                JobState::Completed,
                100,
            ),
            Err(Stop::Failed(failure)) => (
                db.fail(lease, failure, now).await,
                JobState::Failed,
                progress,
            ),
            Err(Stop::Shutdown) => (db.release(lease, now).await, JobState::Pending, 0),
            Err(Stop::Cancelled) => (
                db.record_cancelled(lease, now).await,
                JobState::Cancelled,
                progress,
            ),
            Err(Stop::LeaseLost) => (Ok(false), JobState::Processing, progress),
        };
        if matches!(recorded, Ok(true)) {
            self.engine
                .bus()
                .publish_local(self.event.changed(state, progress, now));
            if state.is_terminal() {
                crate::metrics::job_finished(&self.job, state);
                crate::metrics::render_took(&self.job.kind, started.elapsed().as_secs_f64());
            }
        }
        match (outcome, recorded) {
            (Ok(_), Ok(true)) => {
                tracing::info!(job = %job_id, elapsed = ?started.elapsed(), "job completed")
            }
            (Err(Stop::Failed(f)), Ok(true)) => {
                tracing::info!(job = %job_id, code = %f.code, message = %f.message, "job failed")
            }
            (Err(Stop::Shutdown), Ok(true)) => {
                tracing::info!(job = %job_id, "job released for another worker")
            }
            (Err(Stop::Cancelled), Ok(true)) => tracing::info!(job = %job_id, "job cancelled"),
            (_, Ok(_)) => {
                tracing::warn!(job = %job_id, "lease lost; another worker owns the job now")
            }
            (_, Err(e)) => {
                tracing::error!(job = %job_id, error = %e, "recording the job's outcome failed; its lease will expire and it will run again")
            }
        }
    }
}

/// Why a running job was stopped, as learnt by its lease keeper.
#[derive(Default)]
struct RunFlags {
    lease_lost: AtomicBool,
    cancel_requested: AtomicBool,
    deadline_passed: AtomicBool,
    /// The progress last written to the database.
    progress: AtomicU8,
}

const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_millis(250);

/// Heartbeats a job's lease and writes its progress (at most every 250 ms)
/// while it runs. Stops the job when its lease is lost or it is cancelled
/// (through the bus, or as a heartbeat finds).
struct LeaseKeeper {
    engine: Engine,
    lease: Lease,
    lease_for: Duration,
    /// The job as of its claim, for announcing progress.
    event: JobEvent,
    flags: Arc<RunFlags>,
    stop_job: CancellationToken,
    /// When the job must have finished: the keeper stops it then.
    deadline: Option<Millis>,
}

impl LeaseKeeper {
    fn cancel(&self) {
        self.flags.cancel_requested.store(true, Ordering::SeqCst);
        self.stop_job.cancel();
    }

    async fn run(
        self,
        progress: watch::Receiver<u8>,
        stop: CancellationToken,
        user_cancel: CancellationToken,
    ) {
        let db = self.engine.db();
        let mut heartbeat = tokio::time::interval(self.lease_for / 3);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let mut progress_tick = tokio::time::interval(PROGRESS_WRITE_INTERVAL);
        let mut written = 0u8;
        // The deadline is in the database's terms (ms since the epoch); the
        // timer runs on this process's clock from now on.
        let deadline = self.deadline.map(|at| {
            let left = u64::try_from(at - now_ms()).unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_millis(left)
        });
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if deadline.is_some() && !self.stop_job.is_cancelled() => {
                    self.flags.deadline_passed.store(true, Ordering::SeqCst);
                    self.stop_job.cancel();
                }
                _ = user_cancel.cancelled(), if !self.stop_job.is_cancelled() => self.cancel(),
                _ = heartbeat.tick() => {
                    let until = now_ms() + self.lease_for.as_millis() as i64;
                    match db.heartbeat(&self.lease, until).await {
                        Ok(LeaseStatus::Held) => {}
                        Ok(LeaseStatus::CancelRequested) => self.cancel(),
                        Ok(LeaseStatus::Lost) => {
                            self.flags.lease_lost.store(true, Ordering::SeqCst);
                            self.stop_job.cancel();
                            return;
                        }
                        Err(e) => tracing::warn!(job = %self.lease.job_id, error = %e, "heartbeat failed"),
                    }
                }
                _ = progress_tick.tick() => {
                    let current = *progress.borrow();
                    if current != written {
                        let now = now_ms();
                        match db.record_progress(&self.lease, current, now).await {
                            Ok(moved) => {
                                written = current;
                                self.flags.progress.store(current, Ordering::SeqCst);
                                if moved {
                                    self.engine.bus().publish_local(
                                        self.event.changed(JobState::Processing, current, now),
                                    );
                                }
                            }
                            Err(e) => tracing::warn!(job = %self.lease.job_id, error = %e, "recording progress failed"),
                        }
                    }
                }
            }
        }
    }
}
