//! The engine's front door: what dialects and the CLI call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::account::{
    generate_api_key, generate_token, generate_webhook_secret, hash_api_key, Account, AccountId,
    ApiKeyRecord, KeyId, NewAccount, Principal, ALL_SCOPES,
};
use crate::error::EngineError;
use crate::job::{input_key, Job, JobId, JobQuery, JobState, SubmitLimits};
use crate::storage::Storage;
use crate::store::LedgerEntry;
use crate::store::{CancelOutcome, InsertOutcome, Store};
use crate::time::now_ms;

/// An uploaded input file, already streamed to local disk under
/// [`Engine::staging_dir`], waiting to become part of a job.
#[derive(Debug)]
pub struct StagedInput {
    pub name: String,
    pub path: PathBuf,
}

/// What a dialect asks the engine to run.
#[derive(Debug)]
pub struct NewJob {
    pub kind: String,
    pub dialect: String,
    pub input: serde_json::Value,
    pub files: Vec<StagedInput>,
    pub webhook_url: Option<String>,
    /// The catalog model (slug, version), for model-gateway jobs.
    pub model: Option<(String, String)>,
    /// Reserved from the balance in the same transaction that records the job.
    pub cost_micro_cents: i64,
    pub limits: SubmitLimits,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    storage: Arc<dyn Storage>,
    staging_dir: PathBuf,
    /// Wakes idle workers of this process the moment a job is enqueued.
    job_enqueued: Notify,
    /// Wakes this process's webhook dispatcher when a delivery is recorded.
    webhook_enqueued: Notify,
    /// Jobs this process's workers are running, so a cancel stops them at
    /// once (workers elsewhere learn of it from their next heartbeat).
    running: std::sync::Mutex<HashMap<JobId, CancellationToken>>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        storage: Arc<dyn Storage>,
        staging_dir: impl Into<PathBuf>,
    ) -> std::io::Result<Self> {
        let staging_dir = staging_dir.into();
        std::fs::create_dir_all(&staging_dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                storage,
                staging_dir,
                job_enqueued: Notify::new(),
                webhook_enqueued: Notify::new(),
                running: Default::default(),
            }),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
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

    pub(crate) fn job_enqueued(&self) -> &Notify {
        &self.inner.job_enqueued
    }

    pub(crate) fn webhook_enqueued(&self) -> &Notify {
        &self.inner.webhook_enqueued
    }

    /// Registers a job this process runs; `stop` fires if it is cancelled.
    pub(crate) fn track_running(&self, id: JobId, stop: CancellationToken) {
        self.inner
            .running
            .lock()
            .expect("not poisoned")
            .insert(id, stop);
    }

    pub(crate) fn untrack_running(&self, id: JobId) {
        self.inner.running.lock().expect("not poisoned").remove(&id);
    }

    // ---- accounts and keys ----

    /// A new account with one key holding every scope. Returns the raw key:
    /// it is shown once and never stored.
    pub async fn create_account(
        &self,
        new: &NewAccount,
    ) -> Result<(Account, KeyId, String), EngineError> {
        let id = AccountId::new();
        self.inner
            .store
            .insert_account(id, new, &generate_webhook_secret(), now_ms())
            .await?;
        let scopes = ALL_SCOPES.iter().map(|s| s.to_string()).collect();
        let (key_id, raw) = self.create_key(id, scopes, None).await?;
        Ok((self.account(id).await?, key_id, raw))
    }

    pub async fn account(&self, id: AccountId) -> Result<Account, EngineError> {
        self.inner
            .store
            .get_account(id)
            .await?
            .ok_or(EngineError::AccountNotFound)
    }

    /// Adds credits; returns the new balance.
    pub async fn credit(&self, id: AccountId, micro_cents: i64) -> Result<i64, EngineError> {
        self.inner
            .store
            .credit_account(id, micro_cents, now_ms())
            .await?
            .ok_or(EngineError::AccountNotFound)
    }

    pub async fn ledger(&self, id: AccountId) -> Result<Vec<LedgerEntry>, EngineError> {
        Ok(self.inner.store.ledger(id).await?)
    }

    pub async fn active_jobs(&self, id: AccountId) -> Result<u64, EngineError> {
        Ok(self.inner.store.active_jobs(id).await?)
    }

    pub async fn create_key(
        &self,
        account_id: AccountId,
        scopes: Vec<String>,
        model_patterns: Option<Vec<String>>,
    ) -> Result<(KeyId, String), EngineError> {
        if self.inner.store.get_account(account_id).await?.is_none() {
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
        self.inner.store.insert_api_key(&record).await?;
        Ok((record.id, raw))
    }

    /// A new webhook secret; the old one keeps signing for `overlap`.
    /// Returns the new secret and when the old one stops.
    pub async fn rotate_webhook_secret(
        &self,
        account: AccountId,
        overlap: std::time::Duration,
    ) -> Result<(String, crate::time::Millis), EngineError> {
        let secret = generate_webhook_secret();
        let until = now_ms() + overlap.as_millis() as i64;
        if !self
            .inner
            .store
            .rotate_webhook_secret(account, &secret, until)
            .await?
        {
            return Err(EngineError::AccountNotFound);
        }
        Ok((secret, until))
    }

    pub async fn revoke_key(&self, key_id: KeyId) -> Result<bool, EngineError> {
        Ok(self.inner.store.revoke_api_key(key_id, now_ms()).await?)
    }

    pub async fn account_count(&self) -> Result<u64, EngineError> {
        Ok(self.inner.store.account_count().await?)
    }

    /// The principal for a raw API key, or None for an unknown or revoked key.
    pub async fn authenticate(&self, raw_key: &str) -> Result<Option<Principal>, EngineError> {
        Ok(self
            .inner
            .store
            .principal_for_key(&hash_api_key(raw_key))
            .await?)
    }

    // ---- jobs ----

    /// Stores the job's input files, records the job and enqueues it. Once
    /// this returns Ok, the job survives a crash of this process.
    pub async fn submit(&self, principal: &Principal, new: NewJob) -> Result<Job, EngineError> {
        let id = JobId::new();
        let now = now_ms();
        let mut input_files = Vec::with_capacity(new.files.len());
        for file in &new.files {
            if let Err(e) = self
                .inner
                .storage
                .put_file(&input_key(id, &file.name), &file.path)
                .await
            {
                self.discard_inputs(id).await;
                return Err(e.into());
            }
            input_files.push(file.name.clone());
        }
        let job = Job {
            id,
            account_id: principal.account_id,
            api_key_id: principal.key_id,
            kind: new.kind,
            dialect: new.dialect,
            input: new.input,
            input_files,
            state: JobState::Pending,
            progress: 0,
            outputs: Vec::new(),
            failure: None,
            retries: 0,
            webhook_url: new.webhook_url,
            model: new.model,
            cost_micro_cents: new.cost_micro_cents,
            media_token: generate_token(),
            share_token: generate_token(),
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
        };
        match self.inner.store.insert_job(&job, &new.limits).await {
            Ok(InsertOutcome::Inserted) => {
                self.inner.job_enqueued.notify_one();
                tracing::info!(job = %job.id, kind = %job.kind, "job enqueued");
                Ok(job)
            }
            Ok(refused) => {
                self.discard_inputs(id).await;
                Err(match refused {
                    InsertOutcome::ConcurrencyLimit => EngineError::ConcurrencyLimit,
                    InsertOutcome::InsufficientBalance { balance } => {
                        EngineError::InsufficientBalance {
                            balance,
                            cost: job.cost_micro_cents,
                        }
                    }
                    _ => EngineError::ActiveLimit,
                })
            }
            Err(e) => {
                self.discard_inputs(id).await;
                Err(e.into())
            }
        }
    }

    async fn discard_inputs(&self, id: JobId) {
        if let Err(e) = self
            .inner
            .storage
            .delete_prefix(&format!("inputs/{id}"))
            .await
        {
            tracing::warn!(job = %id, error = %e, "could not remove inputs of a rejected job");
        }
    }

    /// One of the caller's jobs; another account's job is NotFound.
    pub async fn job(&self, principal: &Principal, id: JobId) -> Result<Job, EngineError> {
        self.inner
            .store
            .get_job(principal.account_id, id)
            .await?
            .ok_or(EngineError::NotFound)
    }

    pub async fn jobs(
        &self,
        principal: &Principal,
        query: &JobQuery,
    ) -> Result<Vec<Job>, EngineError> {
        Ok(self
            .inner
            .store
            .list_jobs(principal.account_id, query)
            .await?)
    }

    /// Cancels a PENDING job.
    pub async fn cancel(&self, principal: &Principal, id: JobId) -> Result<Job, EngineError> {
        self.cancel_job(principal, id, false).await
    }

    /// Cancels a PENDING job, or asks a PROCESSING one to stop (its renderer
    /// is killed; it becomes CANCELLED and is refunded once its worker stops).
    /// Returns the job as it is after the request.
    pub async fn cancel_even_if_running(
        &self,
        principal: &Principal,
        id: JobId,
    ) -> Result<Job, EngineError> {
        self.cancel_job(principal, id, true).await
    }

    async fn cancel_job(
        &self,
        principal: &Principal,
        id: JobId,
        processing: bool,
    ) -> Result<Job, EngineError> {
        match self
            .inner
            .store
            .cancel(principal.account_id, id, processing, now_ms())
            .await?
        {
            CancelOutcome::Cancelled(job) => {
                tracing::info!(job = %id, "job cancelled");
                self.inner.webhook_enqueued.notify_one();
                Ok(*job)
            }
            CancelOutcome::CancelRequested(job) => {
                tracing::info!(job = %id, "cancel requested for a running job");
                if let Some(stop) = self.inner.running.lock().expect("not poisoned").get(&id) {
                    stop.cancel();
                }
                Ok(*job)
            }
            CancelOutcome::NotFound => Err(EngineError::NotFound),
            CancelOutcome::NotCancellable(state) => Err(EngineError::NotCancellable(state)),
        }
    }

    /// When a just-submitted job should be done: the jobs ahead of it spread
    /// over `slots` workers, each taking the model's observed average run time
    /// (or `typical_seconds` before it has run).
    pub async fn estimate_completion(
        &self,
        job: &Job,
        typical_seconds: f64,
        slots: usize,
    ) -> Result<crate::time::Millis, EngineError> {
        let ahead = self.inner.store.jobs_ahead(job.id).await?;
        let run_ms = match &job.model {
            Some((slug, _)) => self.inner.store.model_run_ms(slug).await?,
            None => None,
        }
        .unwrap_or(typical_seconds * 1000.0);
        let rounds = (ahead / slots.max(1) as u64) as f64 + 1.0;
        Ok(job.created_at + (rounds * run_ms) as i64)
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
            .store
            .deliveries_for_job(job.account_id, job.id)
            .await?)
    }

    pub async fn job_by_media_token(&self, token: &str) -> Result<Option<Job>, EngineError> {
        Ok(self.inner.store.job_by_media_token(token).await?)
    }

    pub async fn job_by_share_token(&self, token: &str) -> Result<Option<Job>, EngineError> {
        Ok(self.inner.store.job_by_share_token(token).await?)
    }
}
