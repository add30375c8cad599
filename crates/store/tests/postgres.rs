//! What only PostgreSQL has: real concurrency between connections and
//! processes (each "process" here is a store with its own pool over the same
//! database), and LISTEN/NOTIFY wake-ups.

mod common;

use common::*;
use futures::future::join_all;
use genq_engine::account::NewAccount;
use genq_engine::time::now_ms;
use genq_engine::{Engine, EngineError, JobFailure, JobId, NewJob, Principal};
use sqlx::Connection as _;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// A fresh PostgreSQL database, or None when those tests are off.
async fn database() -> Option<TestDb> {
    if pg::base_url().is_none() {
        eprintln!("skipped: GENQ_TEST_POSTGRES_URL=off");
        return None;
    }
    Some(TestDb::new(Backend::Postgres).await)
}

async fn funded(engine: &Engine, name: &str, credits: i64) -> Principal {
    principal_of(
        engine,
        &NewAccount {
            name: name.into(),
            credits_micro_cents: credits,
            ..Default::default()
        },
    )
    .await
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

async fn balance_and_ledger(engine: &Engine, principal: &Principal) -> (i64, i64) {
    let account = principal.account_id;
    let balance = engine.account(account).await.unwrap().balance_micro_cents;
    let ledger = engine.ledger(account).await.unwrap();
    (balance, ledger.iter().map(|e| e.amount_micro_cents).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_submissions_for_one_key_accept_exactly_one() {
    let Some(db) = database().await else { return };
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
        .all(|e| matches!(e, EngineError::ActiveLimit)));
    assert_eq!(
        engines[1].active_jobs(principal.account_id).await.unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_priced_submissions_spend_exactly_the_balance() {
    let Some(db) = database().await else { return };
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
    assert_eq!(balance_and_ledger(&engines[1], &rich).await, (0, 0));
    assert_eq!(balance_and_ledger(&engines[1], &other).await, (0, 0));
    let reserves = engines[1].ledger(rich.account_id).await.unwrap();
    assert_eq!(
        reserves.iter().filter(|e| e.reason == "reserve").count(),
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_claimers_in_separate_processes_take_each_job_once() {
    let Some(db) = database().await else { return };
    let engine = db.engine().await;
    let principal = funded(&engine, "busy", 300).await;
    let mut submitted = HashSet::new();
    for _ in 0..30 {
        let job = engine
            .submit(&principal, priced_job(10, None))
            .await
            .unwrap();
        submitted.insert(job.id);
    }
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(genq_store::open(&db.url).await.unwrap());
    }
    let barrier = Arc::new(Barrier::new(stores.len()));
    // Half the jobs fail, so refunds settle concurrently on one account row.
    let workers = stores.into_iter().map(|store| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let kinds = kinds();
            let mut mine = Vec::new();
            loop {
                let now = now_ms();
                let Some((job, lease)) = store
                    .claim(&claim_at(&kinds, now, 3))
                    .await
                    .unwrap()
                    .claimed
                else {
                    return mine;
                };
                let failed = mine.len() % 2 == 0;
                let moved = if failed {
                    store.fail(&lease, &JobFailure::new("X", "x"), now).await
                } else {
                    store.complete(&lease, &[], now).await
                };
                assert!(moved.unwrap());
                mine.push((job.id, failed));
            }
        })
    });
    let claimed: Vec<(JobId, bool)> = join_all(workers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    assert_eq!(claimed.len(), 30);
    let ids: HashSet<JobId> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, submitted);
    let failed = claimed.iter().filter(|(_, failed)| *failed).count() as i64;
    let expected = 300 - 10 * (30 - failed);
    assert_eq!(
        balance_and_ledger(&engine, &principal).await,
        (expected, expected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_lost_too_often_is_given_up_and_refunded_once_among_claimers() {
    let Some(db) = database().await else { return };
    let engine = db.engine().await;
    let principal = funded(&engine, "unlucky", 1_000).await;
    let job = engine
        .submit(&principal, priced_job(250, None))
        .await
        .unwrap();
    let kinds = kinds();
    let t0 = now_ms();
    store_of(&engine)
        .claim(&claim_at(&kinds, t0, 0))
        .await
        .unwrap()
        .claimed
        .unwrap();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(genq_store::open(&db.url).await.unwrap());
    }
    let outcomes = join_all(stores.into_iter().map(|store| {
        tokio::spawn(async move {
            let kinds = common::kinds();
            store.claim(&claim_at(&kinds, t0 + 1_001, 0)).await.unwrap()
        })
    }))
    .await;
    let gave_up: Vec<JobId> = outcomes
        .into_iter()
        .map(Result::unwrap)
        .inspect(|o| assert!(o.claimed.is_none()))
        .flat_map(|o| o.gave_up)
        .collect();
    assert_eq!(gave_up, [job.id]);
    assert_eq!(
        balance_and_ledger(&engine, &principal).await,
        (1_000, 1_000)
    );
}

#[tokio::test]
async fn another_process_hears_of_new_and_released_jobs() {
    let Some(db) = database().await else { return };
    let waiter = genq_store::open(&db.url).await.unwrap();
    let engine = db.engine().await;
    let principal = principal_named(&engine, "announcer").await;
    let quiet = Duration::from_millis(300);
    let soon = Duration::from_secs(5);

    // The first wait starts listening; nothing has happened yet.
    assert!(tokio::time::timeout(quiet, waiter.wait_for_jobs())
        .await
        .is_err());
    engine.submit(&principal, new_job(None)).await.unwrap();
    tokio::time::timeout(soon, waiter.wait_for_jobs())
        .await
        .expect("a new job wakes another process");

    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = store_of(&engine)
        .claim(&claim_at(&kinds, now, 3))
        .await
        .unwrap()
        .claimed
        .unwrap();
    assert!(tokio::time::timeout(quiet, waiter.wait_for_jobs())
        .await
        .is_err());
    assert!(store_of(&engine).release(&lease, now).await.unwrap());
    tokio::time::timeout(soon, waiter.wait_for_jobs())
        .await
        .expect("a released job wakes another process");

    // Losing the listening connection costs a wake-up at most.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'genq-listener' AND datname = current_database()) t",
    )
    .fetch_one(&mut sqlx::PgConnection::connect(&db.url).await.unwrap())
    .await
    .unwrap();
    assert_eq!(killed, 1);
    // Reconnecting wakes the waiter once (it may have missed something) …
    tokio::time::timeout(soon, waiter.wait_for_jobs())
        .await
        .expect("a reconnect wakes the waiter");
    let _ = tokio::time::timeout(quiet, waiter.wait_for_jobs()).await;
    // … and then it hears new jobs again.
    engine.submit(&principal, new_job(None)).await.unwrap();
    tokio::time::timeout(soon, waiter.wait_for_jobs())
        .await
        .expect("a new job wakes another process after a reconnect");
}

#[tokio::test]
async fn a_failure_message_with_a_nul_still_fails_the_job() {
    let Some(db) = database().await else { return };
    let engine = db.engine().await;
    let principal = principal_named(&engine, "nul").await;
    let job = engine.submit(&principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = store_of(&engine)
        .claim(&claim_at(&kinds, now, 3))
        .await
        .unwrap()
        .claimed
        .unwrap();
    // PostgreSQL text cannot hold NUL (SQLite's can); a renderer's stderr might.
    let failure = JobFailure::new("RENDER_FAILED", "bad\0byte");
    assert!(store_of(&engine).fail(&lease, &failure, now).await.unwrap());
    let failed = engine.job(&principal, job.id).await.unwrap();
    assert_eq!(failed.failure.unwrap().message, "bad\u{FFFD}byte");
}

fn store_of(engine: &Engine) -> &Arc<dyn genq_engine::Store> {
    engine.store()
}
