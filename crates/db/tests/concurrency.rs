//! Concurrent submissions on each backend: several engines over one
//! database stand for several processes (on SQLite, each has its own group
//! commit writer; on PostgreSQL, its own pool). Limits and balances must hold
//! whichever transaction a submission lands in.

mod common;

use common::*;
use futures::future::join_all;
use genq_engine::LimitKind;
use genq_engine::{Engine, EngineError, JobId, NewJob, Principal};
use std::sync::Arc;
use tokio::sync::Barrier;

macro_rules! concurrent_backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if crate::common::pg::base_url().is_none() {
                        eprintln!("skipped: GENQ_TEST_POSTGRES_URL=off");
                        return;
                    }
                    super::$name(crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

concurrent_backend_tests!(
    fifty_concurrent_submissions_for_one_key_accept_exactly_one,
    concurrent_priced_submissions_spend_exactly_the_balance,
);

async fn fifty_concurrent_submissions_for_one_key_accept_exactly_one(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engines = [db.engine().await, db.engine().await];
    let principal = principal_named(&engines[0], "one-key").await;
    let jobs = (0..50)
        .map(|_| (principal.clone(), new_job(Some(1))))
        .collect();
    let results = submit_all(&engines, jobs).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, EngineError::LimitReached(LimitKind::PerKey))));
    assert_eq!(
        engines[1].active_jobs(principal.account_id).await.unwrap(),
        1
    );
}

async fn concurrent_priced_submissions_spend_exactly_the_balance(backend: Backend) {
    let db = TestDb::new(backend).await;
    let engines = [db.engine().await, db.engine().await];
    let rich = funded(&engines[0], "rich", 1_000).await;
    // A second account submitting at the same time must neither wait on the
    // first's lock for long nor disturb its count.
    let other = funded(&engines[0], "other", 500).await;
    let jobs = (0..40)
        .map(|_| (rich.clone(), priced_job(100, None)))
        .chain((0..20).map(|_| (other.clone(), priced_job(100, None))))
        .collect();
    let results = submit_all(&engines, jobs).await;
    let accepted =
        |range: std::ops::Range<usize>| results[range].iter().filter(|r| r.is_ok()).count();
    assert_eq!((accepted(0..40), accepted(40..60)), (10, 5));
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, EngineError::InsufficientBalance { cost: 100, .. })));
    assert_eq!(
        balance_and_ledger(&engines[1], rich.account_id).await,
        (0, 0)
    );
    assert_eq!(
        balance_and_ledger(&engines[1], other.account_id).await,
        (0, 0)
    );
    let reserves = engines[1].ledger(rich.account_id).await.unwrap();
    assert_eq!(
        reserves.iter().filter(|e| e.reason == "reserve").count(),
        10
    );
}

/// Submits every job at once from its own task, spread over `engines`.
async fn submit_all(
    engines: &[Engine],
    jobs: Vec<(Principal, NewJob)>,
) -> Vec<Result<JobId, EngineError>> {
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let tasks = jobs.into_iter().enumerate().map(|(i, (principal, job))| {
        let engine = engines[i % engines.len()].clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            engine.submit(&principal, job).await.map(|j| j.id)
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}
