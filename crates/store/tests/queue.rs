//! The job store as a queue, against a real SQLite file: claim order, leases,
//! retries, limits, cancellation, account scoping.

mod common;

use common::*;
use genq_engine::store::{CancelOutcome, LeaseStatus};
use genq_engine::time::now_ms;
use genq_engine::{EngineError, JobFailure, JobId, JobState};
use std::collections::HashSet;

#[tokio::test]
async fn claims_oldest_first_and_each_job_once() {
    let h = harness().await;
    let a = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let b = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let now = now_ms();
    let first = store(&h)
        .claim(&claim_at(&kinds, now, 3))
        .await
        .unwrap()
        .claimed
        .unwrap();
    let second = store(&h)
        .claim(&claim_at(&kinds, now, 3))
        .await
        .unwrap()
        .claimed
        .unwrap();
    assert_eq!((first.0.id, second.0.id), (a.id, b.id));
    assert_eq!(first.0.state, JobState::Processing);
    assert!(store(&h)
        .claim(&claim_at(&kinds, now, 3))
        .await
        .unwrap()
        .claimed
        .is_none());
    // A worker that does not handle the kind gets nothing.
    let other = vec!["something_else".to_owned()];
    h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    assert!(store(&h)
        .claim(&claim_at(&other, now, 3))
        .await
        .unwrap()
        .claimed
        .is_none());
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again_and_the_old_worker_is_locked_out() {
    let h = harness().await;
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let t0 = now_ms();
    let (_, old_lease) = store(&h)
        .claim(&claim_at(&kinds, t0, 3))
        .await
        .unwrap()
        .claimed
        .unwrap();
    // Still leased: nobody else gets it.
    assert!(store(&h)
        .claim(&claim_at(&kinds, t0 + 500, 3))
        .await
        .unwrap()
        .claimed
        .is_none());

    let (again, new_lease) = store(&h)
        .claim(&claim_at(&kinds, t0 + 1_001, 3))
        .await
        .unwrap()
        .claimed
        .unwrap();
    assert_eq!(again.id, job.id);
    assert_eq!(again.retries, 1);
    assert_ne!(old_lease.attempt, new_lease.attempt);

    let failure = JobFailure::new("X", "x");
    assert_eq!(
        store(&h).heartbeat(&old_lease, t0 + 5_000).await.unwrap(),
        LeaseStatus::Lost
    );
    assert!(!store(&h).record_progress(&old_lease, 50, t0).await.unwrap());
    assert!(!store(&h).complete(&old_lease, &[], t0).await.unwrap());
    assert!(!store(&h).fail(&old_lease, &failure, t0).await.unwrap());
    assert!(store(&h).record_progress(&new_lease, 40, t0).await.unwrap());
    assert!(store(&h).complete(&new_lease, &[], t0).await.unwrap());
    let done = h.engine.job(&h.principal, job.id).await.unwrap();
    assert_eq!(
        (done.state, done.progress, done.retries),
        (JobState::Completed, 100, 1)
    );
    // Terminal states are final.
    assert!(!store(&h).release(&new_lease, t0).await.unwrap());
}

#[tokio::test]
async fn a_job_lost_too_often_fails_with_a_message_that_says_so() {
    let h = harness().await;
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let mut now = now_ms();
    for expected_retries in 0..=2 {
        let (claimed, _) = store(&h)
            .claim(&claim_at(&kinds, now, 2))
            .await
            .unwrap()
            .claimed
            .unwrap();
        assert_eq!(claimed.retries, expected_retries);
        now += 1_001;
    }
    let outcome = store(&h).claim(&claim_at(&kinds, now, 2)).await.unwrap();
    assert!(outcome.claimed.is_none());
    assert_eq!(outcome.gave_up, vec![job.id]);
    let failed = h.engine.job(&h.principal, job.id).await.unwrap();
    assert_eq!(failed.state, JobState::Failed);
    let failure = failed.failure.unwrap();
    assert_eq!(failure.code, "WORKER_LOST");
    assert!(
        failure.message.contains("interrupted 3 times"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn release_returns_a_job_to_the_queue_without_counting_a_retry() {
    let h = harness().await;
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = store(&h)
        .claim(&claim_at(&kinds, now, 3))
        .await
        .unwrap()
        .claimed
        .unwrap();
    assert!(store(&h).release(&lease, now).await.unwrap());
    let (again, _) = store(&h)
        .claim(&claim_at(&kinds, now, 3))
        .await
        .unwrap()
        .claimed
        .unwrap();
    assert_eq!((again.id, again.retries), (job.id, 0));
}

#[tokio::test]
async fn the_active_job_limit_holds_under_concurrent_submissions() {
    let h = harness().await;
    let attempts = (0..20).map(|_| h.engine.submit(&h.principal, new_job(Some(1))));
    let results = futures::future::join_all(attempts).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, EngineError::ActiveLimit)));

    // Finished jobs free the slot.
    let active = results.into_iter().find_map(Result::ok).unwrap();
    h.engine.cancel(&h.principal, active.id).await.unwrap();
    h.engine
        .submit(&h.principal, new_job(Some(1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_workers_never_claim_a_job_twice() {
    let h = harness().await;
    let mut submitted = HashSet::new();
    for _ in 0..30 {
        submitted.insert(
            h.engine
                .submit(&h.principal, new_job(None))
                .await
                .unwrap()
                .id,
        );
    }
    let workers = (0..4).map(|_| {
        let store = store(&h).clone();
        tokio::spawn(async move {
            let kinds = kinds();
            let mut mine = Vec::new();
            while let Some((job, _)) = store
                .claim(&claim_at(&kinds, now_ms(), 3))
                .await
                .unwrap()
                .claimed
            {
                mine.push(job.id);
            }
            mine
        })
    });
    let claimed: Vec<JobId> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    assert_eq!(claimed.len(), 30);
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), submitted);
}

#[tokio::test]
async fn cancel_and_lookups_are_scoped_to_the_account() {
    let h = harness().await;
    let other = principal_named(&h.engine, "other").await;
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    assert!(matches!(
        h.engine.job(&other, job.id).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        h.engine.cancel(&other, job.id).await,
        Err(EngineError::NotFound)
    ));
    let query = genq_engine::JobQuery {
        model: None,
        before: None,
        state: None,
        limit: 10,
    };
    assert!(h.engine.jobs(&other, &query).await.unwrap().is_empty());

    let kinds = kinds();
    store(&h)
        .claim(&claim_at(&kinds, now_ms(), 3))
        .await
        .unwrap();
    let outcome = store(&h)
        .cancel(h.principal.account_id, job.id, false, now_ms())
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::NotCancellable(JobState::Processing));
}

#[tokio::test]
async fn revoked_keys_authenticate_no_one() {
    let h = harness().await;
    let (key_id, raw) = h
        .engine
        .create_key(h.principal.account_id, vec!["check_status".into()], None)
        .await
        .unwrap();
    let principal = h.engine.authenticate(&raw).await.unwrap().unwrap();
    assert_eq!(principal.scopes, vec!["check_status".to_owned()]);
    assert!(h.engine.revoke_key(key_id).await.unwrap());
    assert!(h.engine.authenticate(&raw).await.unwrap().is_none());
    assert!(!h.engine.revoke_key(key_id).await.unwrap());
    assert!(h
        .engine
        .authenticate("genq_unknown")
        .await
        .unwrap()
        .is_none());
}
