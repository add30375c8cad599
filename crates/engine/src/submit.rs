//! Submissions: one job, a batch of jobs (all or none), either of them
//! idempotent under a client's key (`crate::idempotency`).

use crate::account::{generate_token, Principal};
use crate::db::InsertOutcome;
use crate::engine::{Engine, NewJob};
use crate::error::EngineError;
use crate::idempotency::{KeptAnswer, KeptKey, KeyClaim, KeyedSubmission, CLAIM_LEASE};
use crate::ids::JobId;
use crate::job::{input_key, Job, JobState};
use crate::time::now_ms;

impl Engine {
    /// Stores the job's input files, records the job and enqueues it. Once
    /// this returns Ok, the job survives a crash of this process.
    pub async fn submit(&self, principal: &Principal, new: NewJob) -> Result<Job, EngineError> {
        let (mut jobs, _) = self.submit_all(principal, vec![new], None).await?;
        Ok(jobs.remove(0))
    }

    /// Records every job or none, in one transaction: the limits and the
    /// balance apply to them together (the first job's limits stand for
    /// all). With `keyed`, the key is kept with the answer in that same
    /// transaction, and the answer is returned.
    pub async fn submit_all(
        &self,
        principal: &Principal,
        news: Vec<NewJob>,
        keyed: Option<KeyedSubmission>,
    ) -> Result<(Vec<Job>, Option<KeptAnswer>), EngineError> {
        for (index, new) in news.iter().enumerate() {
            if let Some(check) = self.input_check(&new.kind) {
                check(&new.input)
                    .map_err(|message| EngineError::InvalidInput { index, message })?;
            }
        }
        let now = now_ms();
        let limits = news.first().map(|n| n.limits.clone()).unwrap_or_default();
        let mut jobs = Vec::with_capacity(news.len());
        for new in news {
            debug_assert!(new
                .correlation_id
                .as_ref()
                .is_none_or(|c| c.len() <= crate::job::MAX_CORRELATION_ID_BYTES));
            match self.prepare(principal, new, now).await {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    self.discard_inputs(&jobs).await;
                    return Err(e);
                }
            }
        }
        let kept = keyed.map(|keyed| {
            let answer = KeptAnswer {
                fingerprint: keyed.fingerprint,
                status: keyed.status,
                body: (keyed.answer)(&jobs),
            };
            KeptKey {
                account: principal.account_id,
                key: keyed.key,
                token: keyed.token,
                answer,
                job_id: jobs.first().map(|j| j.id.to_string()).unwrap_or_default(),
                created_at: now,
                expires_at: now.saturating_add(self.idempotency_retention_ms()),
            }
        });
        let outcome = self.db().insert_jobs(&jobs, &limits, kept.as_ref()).await;
        let refusal = match outcome {
            Ok(InsertOutcome::Inserted) => {
                for job in &jobs {
                    crate::metrics::job_submitted(job);
                    self.bus().publish_local(self.event_of(job));
                    tracing::info!(job = %job.id, kind = %job.kind, "job enqueued");
                }
                return Ok((jobs, kept.map(|k| k.answer)));
            }
            Ok(InsertOutcome::LimitReached(limit)) => EngineError::LimitReached(limit),
            Ok(InsertOutcome::InsufficientBalance { balance }) => {
                EngineError::InsufficientBalance {
                    balance,
                    cost: jobs.iter().map(|j| j.cost_micro_cents.max(0)).sum(),
                }
            }
            Ok(InsertOutcome::KeyTaken) => EngineError::IdempotencyKeyInUse,
            Err(e) => e.into(),
        };
        self.discard_inputs(&jobs).await;
        Err(refusal)
    }

    /// The job a submission describes, its input files stored.
    async fn prepare(
        &self,
        principal: &Principal,
        new: NewJob,
        now: i64,
    ) -> Result<Job, EngineError> {
        let id = JobId::new();
        let mut input_files = Vec::with_capacity(new.files.len());
        for file in &new.files {
            if let Err(e) = self
                .files()
                .put_file(&input_key(id, &file.name), &file.path)
                .await
            {
                self.discard_inputs_of(id).await;
                return Err(e.into());
            }
            input_files.push(file.name.clone());
        }
        Ok(Job {
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
            correlation_id: new.correlation_id,
            priority: new.priority,
            timeout_ms: new.timeout_seconds.map(|s| i64::from(s) * 1000),
            deadline_at: new.timeout_seconds.map(|s| now + i64::from(s) * 1000),
            inputs_deleted_at: None,
            outputs_deleted_at: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
        })
    }

    async fn discard_inputs(&self, jobs: &[Job]) {
        for job in jobs.iter().filter(|j| !j.input_files.is_empty()) {
            self.discard_inputs_of(job.id).await;
        }
    }

    async fn discard_inputs_of(&self, id: JobId) {
        if let Err(e) = self.files().delete_prefix(&format!("inputs/{id}")).await {
            tracing::warn!(job = %id, error = %e, "could not remove inputs of a rejected job");
        }
    }

    // ---- idempotency keys ----

    /// Claims `key` for the caller's request (see `crate::idempotency`).
    pub async fn claim_key(
        &self,
        principal: &Principal,
        key: &str,
    ) -> Result<KeyClaim, EngineError> {
        let now = now_ms();
        let until = now + CLAIM_LEASE.as_millis() as i64;
        Ok(self
            .db()
            .claim_key(principal.account_id, key, now, until)
            .await?)
    }

    /// Keeps a claim alive while its request runs.
    pub async fn renew_key(
        &self,
        principal: &Principal,
        key: &str,
        token: &str,
    ) -> Result<(), EngineError> {
        let until = now_ms() + CLAIM_LEASE.as_millis() as i64;
        Ok(self
            .db()
            .renew_key(principal.account_id, key, token, until)
            .await?)
    }

    /// Frees a claim that was not kept (the request was refused); a kept
    /// key stays.
    pub async fn release_key(
        &self,
        principal: &Principal,
        key: &str,
        token: &str,
    ) -> Result<(), EngineError> {
        Ok(self
            .db()
            .release_key(principal.account_id, key, token)
            .await?)
    }
}
