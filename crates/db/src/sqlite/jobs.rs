//! Jobs as their owners see them: submitting, reading, cancelling (what
//! both backends share is in `crate::shared`).

use genq_engine::db::{DbResult, InsertOutcome};
use genq_engine::idempotency::KeptKey;
use genq_engine::{AccountId, Job, JobId, SubmitLimits};

use super::accounts::post_ledger;
use super::queue::settle;
use super::SqliteDb;
use crate::shared::job_db;

job_db! { SqliteDb;
    /// Group committed: see `group_commit.rs`.
    async fn insert_jobs(
        &self,
        jobs: &[Job],
        limits: &SubmitLimits,
        key: Option<&KeptKey>,
    ) -> DbResult<InsertOutcome> {
        self.submissions.insert(jobs, limits, key).await
    }

    /// Inline: see `inline_read.rs`.
    async fn get_job(&self, account: AccountId, id: JobId) -> DbResult<Option<Job>> {
        self.inline.job(account, id)
    }
}
