//! Whether this node can do its work (`GET /ready`, `genq check`).

use std::time::Duration;

use crate::Engine;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// One readiness check's name and, when it failed, why.
pub type Check = (&'static str, Result<(), String>);

impl Engine {
    /// Whether this node can serve: the database answers and the file
    /// storage accepts a write (a small object written and removed).
    pub async fn readiness(&self) -> Vec<Check> {
        // A database that is down can make a query wait for a connection
        // far longer than a probe should.
        let database = bounded(async {
            self.db()
                .account_count()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
        let storage = bounded(self.storage_writable()).await;
        vec![("database", database), ("storage", storage)]
    }

    async fn storage_writable(&self) -> Result<(), String> {
        let probe = self
            .staging_dir()
            .join(format!("ready-{}", crate::account::generate_token()));
        tokio::fs::write(&probe, b"ready")
            .await
            .map_err(|e| format!("the staging directory: {e}"))?;
        // A prefix of its own, which is what deleting removes.
        let prefix = format!("readiness/{}", crate::ids::JobId::new());
        let key = format!("{prefix}/probe");
        let stored = self.files().put_file(&key, &probe).await;
        let _ = tokio::fs::remove_file(&probe).await;
        stored.map_err(|e| e.to_string())?;
        self.files()
            .delete_prefix(&prefix)
            .await
            .map_err(|e| e.to_string())
    }
}

async fn bounded(
    check: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
}
