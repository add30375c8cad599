//! Job events from each backend: a process hears its own changes at once,
//! and another process's changes too — through PostgreSQL's announcements,
//! or, on SQLite, through the once-a-second look for other processes'
//! changes (`changed_jobs`). The PostgreSQL listener's reconnects are in
//! `postgres.rs`.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use genq_engine::db::CancelMode;
use genq_engine::events::Subscription;
use genq_engine::{Interest, JobEvent, JobState, Notice};

backend_tests!(
    a_process_hears_its_own_changes_at_once,
    another_process_hears_of_changes_within_seconds,
);

/// The next change `events` announce, within `within`. (A PostgreSQL
/// listener that starts after the subscription says changes may have been
/// missed before it listened: passed over here.)
async fn next_change(events: &mut Subscription, within: Duration) -> JobEvent {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Notice::Changed(event))) => return (*event).clone(),
            Ok(Some(Notice::Missed)) => continue,
            other => panic!("expected a change within {within:?}, got {other:?}"),
        }
    }
}

async fn a_process_hears_its_own_changes_at_once(backend: Backend) {
    let h = harness(backend).await;
    let mut account = h
        .engine
        .subscribe(Interest::Account(h.principal.account_id))
        .await;
    // Let a PostgreSQL listener connect before the first change.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let mut one = h
        .engine
        .subscribe(Interest::Job(h.principal.account_id, job.id))
        .await;
    let created = next_change(&mut account, Duration::from_secs(1)).await;
    assert_eq!((created.job_id, created.state), (job.id, JobState::Pending));
    assert!(started.elapsed() < Duration::from_secs(1));

    h.engine
        .cancel(&h.principal, job.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    let cancelled = next_change(&mut account, Duration::from_secs(1)).await;
    assert_eq!(
        (cancelled.job_id, cancelled.state),
        (job.id, JobState::Cancelled)
    );
    // Subscribed after the submission: PostgreSQL's announcement of it may
    // still arrive (after the commit, as every announcement does).
    let mut seen = next_change(&mut one, Duration::from_secs(1)).await;
    if seen.state == JobState::Pending {
        seen = next_change(&mut one, Duration::from_secs(1)).await;
    }
    assert_eq!((seen.job_id, seen.state), (job.id, JobState::Cancelled));
}

async fn another_process_hears_of_changes_within_seconds(backend: Backend) {
    let h = harness(backend).await;
    // Another process on the same database (on SQLite: the same file).
    let other = h.db.engine().await;
    let mut events = other
        .subscribe(Interest::Account(h.principal.account_id))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let started = Instant::now();
    let created = next_change(&mut events, Duration::from_secs(5)).await;
    assert_eq!((created.job_id, created.state), (job.id, JobState::Pending));
    assert_eq!(created.at, job.updated_at);
    let heard = started.elapsed();
    let kinds = kinds();
    let now = genq_engine::time::now_ms();
    let (_, lease) = claim_one(db(&h), &kinds, now, 3).await.unwrap();
    assert!(db(&h).record_progress(&lease, 50, now + 1).await.unwrap());
    // A poll may find the claim and the progress together: the newest state
    // is what it reports.
    let mut last = next_change(&mut events, Duration::from_secs(5)).await;
    if last.progress != 50 {
        last = next_change(&mut events, Duration::from_secs(5)).await;
    }
    assert_eq!((last.state, last.progress), (JobState::Processing, 50));
    eprintln!("{backend:?}: another process heard of a new job after {heard:?}");
    let within = match backend {
        Backend::Postgres => Duration::from_millis(500),
        // The look for other processes' changes runs once a second.
        Backend::Sqlite => Duration::from_millis(2_500),
    };
    assert!(heard < within, "{heard:?}");
}
