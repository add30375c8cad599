//! The queue's depth for completion estimates, counted at most once a second.
//!
//! A submission's estimate needs the number of jobs ahead of it. Counting
//! them exactly is a scan of the pending queue, cheap while it is short and a
//! real cost per submission once it holds thousands; backends count exactly
//! up to [`EXACT_AHEAD`] and take this figure past that.

use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use genq_engine::db::DbResult;

/// Jobs ahead counted one by one before the queue depth stands in.
pub(crate) const EXACT_AHEAD: i64 = 100;

const MAX_AGE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct QueueDepth {
    last: Mutex<Option<(Instant, u64)>>,
}

impl QueueDepth {
    /// Jobs ahead of one: `exact` (a count that stopped at EXACT_AHEAD) when
    /// it stopped short, else the queue's depth from `count`.
    pub(crate) async fn ahead<F, Fut>(&self, exact: i64, count: F) -> DbResult<u64>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = DbResult<u64>>,
    {
        if exact < EXACT_AHEAD {
            return Ok(exact as u64);
        }
        Ok(self.get(count).await?.max(exact as u64))
    }

    /// The cached depth, or a fresh one from `count` when it is older than a
    /// second. Concurrent callers wait for one count instead of each running
    /// their own.
    pub(crate) async fn get<F, Fut>(&self, count: F) -> DbResult<u64>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = DbResult<u64>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, depth)) = *last {
            if at.elapsed() < MAX_AGE {
                return Ok(depth);
            }
        }
        let depth = count().await?;
        *last = Some((Instant::now(), depth));
        Ok(depth)
    }
}
