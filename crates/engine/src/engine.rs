//! The engine's front door: what dialects and the CLI call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::account::{
    generate_api_key, generate_webhook_secret, hash_api_key, Account, ApiKeyRecord, NewAccount,
    Principal,
};
use crate::db::{
    CancelMode, CancelOutcome, CancelRequest, Database, LedgerEntry, RequeueOutcome, RequeueRequest,
};
use crate::error::EngineError;
use crate::events::{EventBus, HookGuard, Interest, JobEvent, Notice, Signal, Subscription};
use crate::files::FileStore;
use crate::ids::{AccountId, JobId, KeyId, ProjectId};
use crate::job::{Job, JobQuery, JobState, ModelRef, SubmitLimits};
use crate::project::{NewProject, Project};
use crate::time::{now_ms, Millis};
use crate::worker::InputCheck;

/// An uploaded input file, already streamed to local disk under
/// [`Engine::staging_dir`], waiting to become part of a job.
#[derive(Debug)]
pub struct StagedInput {
    pub name: String,
    pub path: PathBuf,
}

/// What a dialect asks the engine to run.
#[derive(Debug, Default)]
pub struct NewJob {
    pub kind: String,
    pub dialect: String,
    pub input: serde_json::Value,
    pub files: Vec<StagedInput>,
    pub webhook_url: Option<String>,
    /// The catalog model, for jobs of a model.
    pub model: Option<ModelRef>,
    /// Reserved from the balance in the same transaction that records the job.
    pub cost_micro_cents: i64,
    pub limits: SubmitLimits,
    /// The client's correlation id (at most
    /// [`crate::job::MAX_CORRELATION_ID_BYTES`]; the dialect checks).
    pub correlation_id: Option<String>,
    /// Within [`crate::job::PRIORITY_RANGE`] (the dialect checks).
    pub priority: i32,
    /// At most [`crate::job::MAX_TIMEOUT_SECONDS`] (the dialect checks).
    pub timeout_seconds: Option<u32>,
}

/// How often a database that does not announce changes is asked for other
/// processes' changes to what subscribers follow.
const POLL_OTHER_PROCESSES: Duration = Duration::from_secs(1);
/// How far back each poll looks: a change committed a little after the time
/// it carries is still found.
const POLL_OVERLAP_MS: Millis = 2_000;

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<dyn Database>,
    files: Arc<dyn FileStore>,
    staging_dir: PathBuf,
    bus: EventBus,
    /// The source of other processes' events, started on first use.
    feed: Once,
    /// How long an idempotency key's answer is kept, in ms.
    idempotency_retention_ms: std::sync::atomic::AtomicI64,
    /// Checks of an input by job kind, run at submission.
    input_checks: std::sync::OnceLock<HashMap<&'static str, InputCheck>>,
}

impl Engine {
    pub fn new(
        db: Arc<dyn Database>,
        files: Arc<dyn FileStore>,
        staging_dir: impl Into<PathBuf>,
    ) -> std::io::Result<Self> {
        let staging_dir = staging_dir.into();
        std::fs::create_dir_all(&staging_dir)?;
        let bus = EventBus::new(!db.announces_changes());
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                files,
                staging_dir,
                bus,
                feed: Once::new(),
                idempotency_retention_ms: std::sync::atomic::AtomicI64::new(
                    crate::idempotency::DEFAULT_RETENTION.as_millis() as i64,
                ),
                input_checks: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn db(&self) -> &Arc<dyn Database> {
        &self.inner.db
    }

    pub fn files(&self) -> &Arc<dyn FileStore> {
        &self.inner.files
    }

    /// How long an idempotency key's answer is replayed (default a day).
    pub fn set_idempotency_retention(&self, retention: Duration) {
        let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.inner
            .idempotency_retention_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the renderers check of a job's input beyond its JSON Schema,
    /// by kind, so that a submission is refused (400) for what its job
    /// would fail on before running anything. Set once, at start-up.
    pub fn set_input_checks(&self, checks: impl IntoIterator<Item = (&'static str, InputCheck)>) {
        let _ = self.inner.input_checks.set(checks.into_iter().collect());
    }

    pub(crate) fn input_check(&self, kind: &str) -> Option<InputCheck> {
        self.inner.input_checks.get()?.get(kind).copied()
    }

    pub(crate) fn idempotency_retention_ms(&self) -> Millis {
        self.inner
            .idempotency_retention_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where dialects stream uploads before submitting them.
    pub fn staging_dir(&self) -> &Path {
        &self.inner.staging_dir
    }

    /// Removes staged uploads older than `max_age`: leftovers of requests
    /// that a crash cut short (a finished request never leaves one behind).
    pub fn sweep_staging(&self, max_age: std::time::Duration) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.inner.staging_dir)? {
            let entry = entry?;
            let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
            if age > max_age && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    // ---- events ----

    /// The bus, for publishing this process's own changes.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// Follows the changes of one job or of one account's jobs, in every
    /// process. Once it returns, every change committed afterwards is
    /// delivered, and one committed before can be read: subscribe, then read
    /// the state, and no change falls in between.
    pub async fn subscribe(&self, interest: Interest) -> Subscription {
        self.start_feed();
        let account = interest.account();
        let subscription = self.inner.bus.subscribe(interest);
        if self.inner.db.announces_changes() {
            self.inner.db.follow_account(&self.inner.bus, account).await;
        }
        subscription
    }

    /// Calls `hook` for every change of any job in every process (see
    /// [`EventBus::on_event`]).
    pub fn on_event(&self, hook: impl Fn(Signal<'_>) + Send + Sync + 'static) -> HookGuard {
        self.start_feed();
        self.inner.bus.on_event(hook)
    }

    /// Starts hearing of other processes' changes now rather than at the
    /// first subscriber (a server calls it at start, so that its first
    /// subscriber does not wait for the database connection that carries
    /// them).
    pub fn follow_other_processes(&self) {
        self.start_feed();
    }

    /// Other processes' changes reach this one's bus from the first
    /// subscriber on: announced by the database, or found by a poll.
    fn start_feed(&self) {
        self.inner.feed.call_once(|| {
            let db = self.inner.db.clone();
            if db.announces_changes() {
                let bus = self.inner.bus.clone();
                tokio::spawn(async move { db.follow_changes(bus).await });
            } else {
                tokio::spawn(poll_other_processes(db, self.inner.bus.downgrade()));
            }
        });
    }

    /// The event announcing `job` as it now is: with the job itself when
    /// someone here follows jobs (they need not read it then).
    pub(crate) fn event_of(&self, job: &Job) -> JobEvent {
        if self.inner.bus.publishes_locally() && self.inner.bus.has_subscribers() {
            JobEvent::with_job(Arc::new(job.clone()))
        } else {
            JobEvent::of(job)
        }
    }

    // ---- accounts and keys ----

    /// A new account with one key holding `scopes`. Returns the raw key: it
    /// is shown once and never stored.
    pub async fn create_account(
        &self,
        new: &NewAccount,
        scopes: Vec<String>,
    ) -> Result<(Account, KeyId, String), EngineError> {
        let id = AccountId::new();
        self.inner
            .db
            .insert_account(id, new, &generate_webhook_secret(), now_ms())
            .await?;
        let (key_id, raw) = self.create_key(id, scopes, None).await?;
        Ok((self.account(id).await?, key_id, raw))
    }

    pub async fn account(&self, id: AccountId) -> Result<Account, EngineError> {
        self.inner
            .db
            .get_account(id)
            .await?
            .ok_or(EngineError::AccountNotFound)
    }

    /// Adds credits; returns the new balance.
    pub async fn credit(&self, id: AccountId, micro_cents: i64) -> Result<i64, EngineError> {
        self.inner
            .db
            .credit_account(id, micro_cents, now_ms())
            .await?
            .ok_or(EngineError::AccountNotFound)
    }

    pub async fn ledger(&self, id: AccountId) -> Result<Vec<LedgerEntry>, EngineError> {
        Ok(self.inner.db.ledger(id).await?)
    }

    pub async fn active_jobs(&self, id: AccountId) -> Result<u64, EngineError> {
        Ok(self.inner.db.active_jobs(id).await?)
    }

    pub async fn create_project(
        &self,
        account: AccountId,
        new: NewProject,
    ) -> Result<Project, EngineError> {
        let now = now_ms();
        let project = new.into_project(ProjectId::new(), account, now, now);
        self.inner.db.insert_project(&project).await?;
        Ok(project)
    }

    /// One of the account's projects; another account's is not found.
    pub async fn project(&self, account: AccountId, id: ProjectId) -> Result<Project, EngineError> {
        self.inner
            .db
            .get_project(account, id)
            .await?
            .ok_or(EngineError::ProjectNotFound)
    }

    /// The account's projects, oldest first.
    pub async fn projects(&self, account: AccountId) -> Result<Vec<Project>, EngineError> {
        Ok(self.inner.db.list_projects(account).await?)
    }

    /// Replaces a project's template and what is read from it. Jobs already
    /// accepted keep the template they were submitted with.
    pub async fn update_project(
        &self,
        account: AccountId,
        id: ProjectId,
        new: NewProject,
    ) -> Result<Project, EngineError> {
        let before = self.project(account, id).await?;
        let project = new.into_project(id, account, before.created_at, now_ms());
        if !self.inner.db.update_project(&project).await? {
            return Err(EngineError::ProjectNotFound);
        }
        Ok(project)
    }

    pub async fn delete_project(
        &self,
        account: AccountId,
        id: ProjectId,
    ) -> Result<(), EngineError> {
        if self.inner.db.delete_project(account, id).await? {
            Ok(())
        } else {
            Err(EngineError::ProjectNotFound)
        }
    }

    pub async fn create_key(
        &self,
        account_id: AccountId,
        scopes: Vec<String>,
        model_patterns: Option<Vec<String>>,
    ) -> Result<(KeyId, String), EngineError> {
        if self.inner.db.get_account(account_id).await?.is_none() {
            return Err(EngineError::AccountNotFound);
        }
        let (raw, key_hash) = generate_api_key();
        let record = ApiKeyRecord {
            id: KeyId::new(),
            account_id,
            key_hash,
            scopes,
            model_patterns,
            created_at: now_ms(),
        };
        self.inner.db.insert_api_key(&record).await?;
        Ok((record.id, raw))
    }

    /// A new webhook secret; the old one keeps signing for `overlap`.
    /// Returns the new secret and when the old one stops.
    pub async fn rotate_webhook_secret(
        &self,
        account: AccountId,
        overlap: std::time::Duration,
    ) -> Result<(String, Millis), EngineError> {
        let secret = generate_webhook_secret();
        let until = now_ms() + overlap.as_millis() as i64;
        if !self
            .inner
            .db
            .rotate_webhook_secret(account, &secret, until)
            .await?
        {
            return Err(EngineError::AccountNotFound);
        }
        Ok((secret, until))
    }

    pub async fn revoke_key(&self, key_id: KeyId) -> Result<bool, EngineError> {
        Ok(self.inner.db.revoke_api_key(key_id, now_ms()).await?)
    }

    pub async fn account_count(&self) -> Result<u64, EngineError> {
        Ok(self.inner.db.account_count().await?)
    }

    /// The principal for a raw API key, or None for an unknown or revoked key.
    pub async fn authenticate(&self, raw_key: &str) -> Result<Option<Principal>, EngineError> {
        Ok(self
            .inner
            .db
            .principal_for_key(&hash_api_key(raw_key))
            .await?)
    }

    // ---- jobs ----

    /// One of the caller's jobs; another account's job is NotFound.
    pub async fn job(&self, principal: &Principal, id: JobId) -> Result<Job, EngineError> {
        self.inner
            .db
            .get_job(principal.account_id, id)
            .await?
            .ok_or(EngineError::NotFound)
    }

    pub async fn jobs(
        &self,
        principal: &Principal,
        query: &JobQuery,
    ) -> Result<Vec<Job>, EngineError> {
        Ok(self.inner.db.list_jobs(principal.account_id, query).await?)
    }

    /// Cancels one of the caller's jobs as far as `mode` allows, and only a
    /// job of `dialect` when one is named. Returns the job as it is after
    /// the request: CANCELLED, or (a running job asked to stop) PROCESSING.
    pub async fn cancel(
        &self,
        principal: &Principal,
        id: JobId,
        dialect: Option<&str>,
        mode: CancelMode,
    ) -> Result<Job, EngineError> {
        let request = CancelRequest {
            account: principal.account_id,
            job: id,
            dialect,
            mode,
            now: now_ms(),
        };
        match self.inner.db.cancel(&request).await? {
            CancelOutcome::Cancelled(job) => {
                tracing::info!(job = %id, "job cancelled");
                crate::metrics::job_finished(&job, JobState::Cancelled);
                self.inner.bus.publish_local(self.event_of(&job));
                Ok(*job)
            }
            CancelOutcome::CancelRequested(job) => {
                tracing::info!(job = %id, "cancel requested for a running job");
                // The worker running it, if in this process, stops at once;
                // one elsewhere hears of it from the database.
                self.inner.bus.publish_local(JobEvent {
                    cancel_requested: true,
                    ..JobEvent::of(&job)
                });
                Ok(*job)
            }
            CancelOutcome::NotFound => Err(EngineError::NotFound),
            CancelOutcome::NotCancellable(state) => Err(EngineError::NotCancellable(state)),
        }
    }

    /// Runs the caller's finished jobs again (COMPLETED or FAILED ones; jobs
    /// queued, running or cancelled are left alone), charging each anew.
    /// All or nothing: a job that is not the caller's (of `dialect`) is
    /// [`EngineError::NotFound`] and nothing changes. The jobs queued again.
    pub async fn requeue(
        &self,
        principal: &Principal,
        ids: &[JobId],
        dialect: Option<&str>,
    ) -> Result<Vec<JobId>, EngineError> {
        let request = RequeueRequest {
            account: principal.account_id,
            jobs: ids,
            dialect,
            now: now_ms(),
        };
        match self.inner.db.requeue(&request).await? {
            RequeueOutcome::Requeued(ids) => {
                for id in &ids {
                    tracing::info!(job = %id, "job queued again");
                    // A database that announces its changes has done so; a
                    // job is read again only to publish it here.
                    if !self.inner.bus.publishes_locally() {
                        continue;
                    }
                    if let Ok(job) = self.job(principal, *id).await {
                        self.inner.bus.publish_local(self.event_of(&job));
                    }
                }
                Ok(ids)
            }
            RequeueOutcome::NotFound(_) => Err(EngineError::NotFound),
            RequeueOutcome::InputsDeleted(id) => Err(EngineError::InputsDeleted(id)),
            RequeueOutcome::InsufficientBalance { balance, cost } => {
                Err(EngineError::InsufficientBalance { balance, cost })
            }
        }
    }

    /// Waits (at most `timeout`) until one of the caller's jobs satisfies
    /// `done`, following its events; returns it as it then is.
    pub async fn wait_for_job(
        &self,
        principal: &Principal,
        id: JobId,
        timeout: Duration,
        done: impl Fn(&Job) -> bool,
    ) -> Result<Job, EngineError> {
        let mut events = self
            .subscribe(Interest::Job(principal.account_id, id))
            .await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.job(principal, id).await?;
            if done(&job) {
                return Ok(job);
            }
            // Any notice (a change, or a loss) means: look again.
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Notice::Changed(_) | Notice::Missed)) => {}
                Ok(None) | Err(_) => return self.job(principal, id).await,
            }
        }
    }

    /// The webhook deliveries of one of the caller's jobs.
    pub async fn webhook_deliveries(
        &self,
        principal: &Principal,
        id: JobId,
    ) -> Result<Vec<crate::webhook::DeliveryRecord>, EngineError> {
        let job = self.job(principal, id).await?;
        Ok(self
            .inner
            .db
            .deliveries_for_job(job.account_id, job.id)
            .await?)
    }

    pub async fn job_by_media_token(&self, token: &str) -> Result<Option<Job>, EngineError> {
        Ok(self.inner.db.job_by_media_token(token).await?)
    }

    /// Any account's job, for a link signed with the job's own secret
    /// (the caller checks the signature).
    pub async fn job_for_signed_link(&self, id: JobId) -> Result<Option<Job>, EngineError> {
        Ok(self.inner.db.job_by_id(id).await?)
    }

    pub async fn job_by_share_token(&self, token: &str) -> Result<Option<Job>, EngineError> {
        Ok(self.inner.db.job_by_share_token(token).await?)
    }
}

/// For a database that does not announce changes (SQLite): while anyone
/// follows anything, asks it every second for changes to what is followed
/// and publishes those this process has not (another process made them).
async fn poll_other_processes(db: Arc<dyn Database>, bus: crate::events::WeakBus) {
    let mut tick = tokio::time::interval(POLL_OTHER_PROCESSES);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since = now_ms();
    loop {
        tick.tick().await;
        let Some(bus) = bus.upgrade() else {
            return;
        };
        let checked_at = now_ms();
        if !bus.has_subscribers() {
            since = checked_at;
            continue;
        }
        let (jobs, accounts) = bus.followed();
        match db
            .changed_jobs(&jobs, &accounts, since - POLL_OVERLAP_MS)
            .await
        {
            Ok(changes) => {
                for event in changes {
                    if !bus.delivered_since(event.job_id, event.at) {
                        bus.publish(event);
                    }
                }
                since = checked_at;
            }
            Err(e) => tracing::warn!(error = %e, "looking for other processes' job changes failed"),
        }
        bus.forget_deliveries_before(checked_at - 10 * POLL_OVERLAP_MS);
    }
}
