//! What only PostgreSQL has: claimers in separate processes (each "process"
//! here is a store with its own pool over the same database), and
//! LISTEN/NOTIFY wake-ups. Concurrent submissions on both backends are in
//! `concurrency.rs`.

mod common;

use common::*;
use futures::future::join_all;
use genq_engine::db::CancelMode;
use genq_engine::events::Subscription;
use genq_engine::time::now_ms;
use genq_engine::{Engine, JobFailure, JobId, NewJob};
use genq_engine::{Interest, JobEvent, JobState, Notice};
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
        stores.push(genq_db::open(&db.url).await.unwrap());
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
                let Some((job, lease)) = claim_one(&store, &kinds, now, 3).await else {
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
        balance_and_ledger(&engine, principal.account_id).await,
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
    claim_one(db_of(&engine), &kinds, t0, 0).await.unwrap();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(genq_db::open(&db.url).await.unwrap());
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
        .inspect(|o| assert!(o.claimed.is_empty()))
        .flat_map(|o| o.gave_up)
        .map(|job| job.id)
        .collect();
    assert_eq!(gave_up, [job.id]);
    assert_eq!(
        balance_and_ledger(&engine, principal.account_id).await,
        (1_000, 1_000)
    );
}

/// The next notice of `events`, within `within`.
async fn next_notice(events: &mut Subscription, within: Duration) -> Option<Notice> {
    tokio::time::timeout(within, events.recv())
        .await
        .ok()
        .flatten()
}

/// The next change `events` announce, within 5 s.
async fn next_change(events: &mut Subscription) -> JobEvent {
    match next_notice(events, Duration::from_secs(5)).await {
        Some(Notice::Changed(event)) => (*event).clone(),
        other => panic!("expected a change, got {other:?}"),
    }
}

#[tokio::test]
async fn another_process_hears_of_every_committed_change() {
    let Some(db) = database().await else { return };
    let engine = db.engine().await;
    let principal = principal_named(&engine, "announcer").await;
    // Another process: its own engine over the same database.
    let listener = db.engine().await;
    let mut events = listener
        .subscribe(Interest::Account(principal.account_id))
        .await;
    let quiet = Duration::from_millis(300);
    // Subscribing starts the listener; once it listens, whoever subscribed
    // before is told that changes may have been missed, and nothing else.
    assert!(matches!(
        next_notice(&mut events, Duration::from_secs(5)).await,
        Some(Notice::Missed)
    ));
    assert!(next_notice(&mut events, quiet).await.is_none());

    let job = engine.submit(&principal, new_job(Some(1))).await.unwrap();
    let created = next_change(&mut events).await;
    assert_eq!(
        (created.job_id, created.state, created.dialect.as_str()),
        (job.id, JobState::Pending, "test")
    );
    assert_eq!(created.at, job.updated_at);
    // A refused submission wrote nothing, and nothing is announced.
    assert!(engine.submit(&principal, new_job(Some(1))).await.is_err());
    assert!(next_notice(&mut events, quiet).await.is_none());

    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = claim_one(db_of(&engine), &kinds, now, 3).await.unwrap();
    let claimed = next_change(&mut events).await;
    assert_eq!(
        (claimed.state, claimed.progress, claimed.at),
        (JobState::Processing, 0, now)
    );
    // A heartbeat is no change anyone follows.
    db_of(&engine).heartbeat(&lease, now + 5_000).await.unwrap();
    assert!(db_of(&engine)
        .record_progress(&lease, 40, now + 1)
        .await
        .unwrap());
    let progress = next_change(&mut events).await;
    assert_eq!(
        (progress.state, progress.progress),
        (JobState::Processing, 40)
    );
    assert!(db_of(&engine).release(&lease, now + 2).await.unwrap());
    let released = next_change(&mut events).await;
    assert_eq!((released.state, released.progress), (JobState::Pending, 0));

    // Losing the listening connection is told (events may have been lost)…
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'genq-listener' AND datname = current_database()) t",
    )
    .fetch_one(&mut sqlx::PgConnection::connect(&db.url).await.unwrap())
    .await
    .unwrap();
    assert!(killed >= 1, "the listener's connection");
    assert!(matches!(
        next_notice(&mut events, Duration::from_secs(5)).await,
        Some(Notice::Missed)
    ));
    // … and changes are heard again.
    engine
        .cancel(&principal, job.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    let cancelled = loop {
        let change = next_change(&mut events).await;
        if change.state == JobState::Cancelled {
            break change;
        }
    };
    assert_eq!(cancelled.job_id, job.id);
}

type Heard = tokio::sync::mpsc::UnboundedReceiver<(JobState, u8, bool)>;

/// What a hook heard next (state, progress, cancel asked for), within 5 s.
async fn next_heard(heard: &mut Heard) -> Option<(JobState, u8, bool)> {
    tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .ok()
        .flatten()
}

/// Whether a hook heard nothing for 300 ms.
async fn heard_nothing(heard: &mut Heard) -> bool {
    tokio::time::timeout(Duration::from_millis(300), heard.recv())
        .await
        .is_err()
}

#[tokio::test]
async fn only_what_someone_acts_on_or_follows_is_announced() {
    let Some(db) = database().await else { return };
    let engine = db.engine().await;
    let principal = principal_named(&engine, "unfollowed").await;
    // Another process, with a hook (as its idle workers and dispatcher have)
    // and, later, a subscriber.
    let other = db.engine().await;
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let _hook = other.on_event(move |signal| {
        if let genq_engine::events::Signal::Changed(event) = signal {
            let _ = heard_tx.send((event.state, event.progress, event.cancel_requested));
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Queued (workers wake): announced. Claimed, progress: nobody follows.
    let job = engine.submit(&principal, new_job(None)).await.unwrap();
    assert_eq!(
        next_heard(&mut heard).await,
        Some((JobState::Pending, 0, false))
    );
    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = claim_one(db_of(&engine), &kinds, now, 3).await.unwrap();
    assert!(db_of(&engine)
        .record_progress(&lease, 30, now + 1)
        .await
        .unwrap());
    assert!(
        heard_nothing(&mut heard).await,
        "a claim and progress nobody follows"
    );
    // A cancel asked for (the worker stops): announced.
    engine
        .cancel(&principal, job.id, None, CancelMode::EvenIfRunning)
        .await
        .unwrap();
    assert_eq!(
        next_heard(&mut heard).await,
        Some((JobState::Processing, 30, true))
    );

    // A job with a webhook reaching its end (a dispatcher delivers): announced.
    let hooked = engine
        .submit(
            &principal,
            NewJob {
                webhook_url: Some("https://example.com/hook".into()),
                ..new_job(None)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        next_heard(&mut heard).await,
        Some((JobState::Pending, 0, false))
    );
    engine
        .cancel(&principal, hooked.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    assert_eq!(
        next_heard(&mut heard).await,
        Some((JobState::Cancelled, 0, false))
    );

    // Followed from the other process: every change, that one's hook included.
    let mut events = other
        .subscribe(Interest::Job(principal.account_id, job.id))
        .await;
    assert!(db_of(&engine)
        .record_progress(&lease, 60, now + 2)
        .await
        .unwrap());
    assert_eq!(
        next_heard(&mut heard).await,
        Some((JobState::Processing, 60, true))
    );
    let change = loop {
        match next_notice(&mut events, Duration::from_secs(5)).await {
            Some(Notice::Missed) => continue,
            Some(Notice::Changed(change)) => break change,
            None => panic!("the followed job's progress was not heard"),
        }
    };
    assert_eq!((change.job_id, change.progress), (job.id, 60));
}

#[tokio::test]
async fn a_failure_message_with_a_nul_still_fails_the_job() {
    let Some(db) = database().await else { return };
    let engine = db.engine().await;
    let principal = principal_named(&engine, "nul").await;
    let job = engine.submit(&principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = claim_one(db_of(&engine), &kinds, now, 3).await.unwrap();
    // PostgreSQL text cannot hold NUL (SQLite's can); a renderer's stderr might.
    let failure = JobFailure::new("RENDER_FAILED", "bad\0byte");
    assert!(db_of(&engine).fail(&lease, &failure, now).await.unwrap());
    let failed = engine.job(&principal, job.id).await.unwrap();
    assert_eq!(failed.failure.unwrap().message, "bad\u{FFFD}byte");
}

/// Outcomes recorded at the same moment go to the database together; each
/// is still settled once, a stale lease still moves nothing, and one that
/// cannot be recorded fails alone.
#[tokio::test]
async fn outcomes_recorded_together_are_each_settled_once() {
    let Some(db) = database().await else { return };
    let engine = db.engine().await;
    let principal = funded(&engine, "batch", 400).await;
    for _ in 0..40 {
        engine
            .submit(&principal, priced_job(10, None))
            .await
            .unwrap();
    }
    let kinds = kinds();
    let now = now_ms();
    let request = genq_engine::db::ClaimRequest {
        limit: 40,
        ..claim_at(&kinds, now, 3)
    };
    let claimed = db_of(&engine).claim(&request).await.unwrap().claimed;
    assert_eq!(claimed.len(), 40, "one claim takes the whole batch");

    let store = db_of(&engine);
    let failure = JobFailure::new("X", "x");
    // Even jobs fail (and are refunded), odd ones complete.
    let record = |batch: std::ops::Range<usize>| {
        let (claimed, failure) = (&claimed, &failure);
        join_all(batch.map(move |i| async move {
            let lease = &claimed[i].1;
            if i % 2 == 0 {
                store.fail(lease, failure, now).await
            } else {
                store.complete(lease, &[], now).await
            }
        }))
    };
    for moved in record(0..20).await {
        assert!(moved.unwrap());
    }

    // A refund already on the ledger makes job 20's failure unrecordable
    // (the ledger allows one refund per job); stale leases move nothing.
    let poisoned = claimed[20].0.id;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at) \
         VALUES ($1, $2, 0, 'refund', 0)",
    )
    .bind(principal.account_id.to_string())
    .bind(poisoned.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    let stale = claimed.iter().take(5).map(|(_, lease)| {
        let stale = genq_engine::job::Lease {
            attempt: lease.attempt + 1,
            ..lease.clone()
        };
        async move { store.complete(&stale, &[], now).await }
    });
    let (recorded, stale) = tokio::join!(record(20..40), join_all(stale));
    assert!(recorded[0].is_err(), "{:?}", recorded[0]);
    for (i, moved) in recorded.iter().enumerate().skip(1) {
        assert!(
            moved.as_ref().unwrap(),
            "outcome {} was not recorded",
            20 + i
        );
    }
    for moved in stale {
        assert!(!moved.unwrap(), "a stale lease moved a job");
    }

    // The poisoned job stays PROCESSING (its lease will run out); 19 failed
    // and were refunded, 20 completed and stay charged.
    let poisoned = engine.job(&principal, poisoned).await.unwrap();
    assert_eq!(poisoned.state, genq_engine::JobState::Processing);
    let expected = 400 - 10 * 21;
    assert_eq!(
        balance_and_ledger(&engine, principal.account_id).await,
        (expected, expected)
    );
    assert!(store.model_run_ms("genq/test").await.unwrap().is_some());
}

/// `jobs` keeps no foreign keys to its account and key (migration 0010: a
/// batch checks them once); a submission naming a key of another account,
/// or an account that does not exist, is refused and writes nothing.
#[tokio::test]
async fn a_submission_under_a_key_of_another_account_writes_nothing() {
    let Some(db) = database().await else { return };
    let engine = db.engine().await;
    let owner = funded(&engine, "owner", 100).await;
    let other = principal_named(&engine, "other").await;
    let mixed = genq_engine::Principal {
        key_id: other.key_id,
        ..owner.clone()
    };
    let stranger = genq_engine::Principal {
        account_id: genq_engine::AccountId::new(),
        ..owner.clone()
    };
    for caller in [&mixed, &stranger] {
        let one = engine.submit(caller, priced_job(10, None)).await;
        assert!(one.is_err(), "one job was accepted: {one:?}");
        let batch = vec![priced_job(10, None), priced_job(10, None)];
        let many = engine.submit_all(caller, batch, None).await;
        assert!(
            many.is_err(),
            "a batch was accepted: {:?}",
            many.map(|m| m.0)
        );
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (jobs,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    assert_eq!(
        balance_and_ledger(&engine, owner.account_id).await,
        (100, 100)
    );
    // The owner's own key still submits, and a batch's rows carry it.
    let (batch, _) = engine
        .submit_all(
            &owner,
            vec![priced_job(10, None), priced_job(10, None)],
            None,
        )
        .await
        .unwrap();
    for job in batch {
        let row: (String, String) =
            sqlx::query_as("SELECT account_id, api_key_id FROM jobs WHERE id = $1")
                .bind(job.id.to_string())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(
            row,
            (owner.account_id.to_string(), owner.key_id.to_string())
        );
    }
    assert_eq!(
        balance_and_ledger(&engine, owner.account_id).await,
        (80, 80)
    );
}

fn db_of(engine: &Engine) -> &Arc<dyn genq_engine::Database> {
    engine.db()
}
