//! SQLite cannot announce a change to other processes: the process that
//! commits one publishes it itself (`EventBus::publish_local`), and the
//! engine asks here, once a second while anyone follows anything, what other
//! processes on the same file changed.

use async_trait::async_trait;

use genq_engine::db::{DbResult, EventFeed};
use genq_engine::events::EventBus;
use genq_engine::time::Millis;
use genq_engine::{AccountId, JobEvent, JobId};

use super::SqliteDb;
use crate::codec::{db_err, event_from_row, EVENT_COLUMNS};

/// Ids asked about in one statement (SQLite allows 32,766 parameters).
const IDS_PER_QUERY: usize = 500;

#[async_trait]
impl EventFeed for SqliteDb {
    fn announces_changes(&self) -> bool {
        false
    }

    async fn follow_changes(&self, _bus: EventBus) {}

    async fn follow_account(&self, _bus: &EventBus, _account: AccountId) {}

    async fn changed_jobs(
        &self,
        jobs: &[JobId],
        accounts: &[AccountId],
        since: Millis,
    ) -> DbResult<Vec<JobEvent>> {
        let mut events = Vec::new();
        for chunk in jobs.chunks(IDS_PER_QUERY) {
            let ids = (2..chunk.len() + 2)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM jobs WHERE updated_at >= $1 AND id IN ({ids})"
            );
            let mut query = sqlx::query(&sql).bind(since);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let rows = query
                .fetch_all(&self.reader)
                .await
                .map_err(db_err("looking for changed jobs"))?;
            for row in &rows {
                events.push(event_from_row(row)?);
            }
        }
        for account in accounts {
            let rows = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM jobs WHERE account_id = $1 AND updated_at >= $2 \
                 ORDER BY updated_at"
            ))
            .bind(account.to_string())
            .bind(since)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("looking for changed jobs"))?;
            for row in &rows {
                events.push(event_from_row(row)?);
            }
        }
        events.sort_by_key(|e| e.at);
        Ok(events)
    }
}
