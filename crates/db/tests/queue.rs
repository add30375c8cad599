//! The job store as a queue, against each backend: claim order, fairness, leases,
//! retries, limits, cancellation, account scoping.

#[macro_use]
mod common;

use common::*;
use genq_engine::db::{CancelMode, CancelRequest};
use genq_engine::db::{CancelOutcome, ClaimRequest, LeaseStatus};
use genq_engine::time::now_ms;
use genq_engine::LimitKind;
use genq_engine::{EngineError, JobFailure, JobId, JobState, NewJob};
use std::collections::HashSet;

backend_tests!(
    claims_oldest_first_and_each_job_once,
    an_expired_lease_is_claimed_again_and_the_old_worker_is_locked_out,
    a_job_lost_too_often_fails_with_a_message_that_says_so,
    release_returns_a_job_to_the_queue_without_counting_a_retry,
    the_active_job_limit_holds_under_concurrent_submissions,
    concurrent_workers_never_claim_a_job_twice,
    cancel_and_lookups_are_scoped_to_the_account,
    revoked_keys_authenticate_no_one,
    a_backlog_does_not_starve_another_account,
    accounts_with_queued_work_take_turns,
    one_claim_fills_several_slots_in_queue_order,
    lists_an_accounts_jobs_newest_first_in_pages,
    priority_reorders_an_accounts_own_jobs_but_not_the_turns,
    a_pending_job_past_its_deadline_fails_refunded_and_runs_again_with_a_new_one,
);

async fn claims_oldest_first_and_each_job_once(backend: Backend) {
    let h = harness(backend).await;
    let a = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let b = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let now = now_ms();
    let first = claim_one(db(&h), &kinds, now, 3).await.unwrap();
    let second = claim_one(db(&h), &kinds, now, 3).await.unwrap();
    assert_eq!((first.0.id, second.0.id), (a.id, b.id));
    assert_eq!(first.0.state, JobState::Processing);
    assert!(claim_one(db(&h), &kinds, now, 3).await.is_none());
    // A worker that does not handle the kind gets nothing.
    let other = vec!["something_else".to_owned()];
    h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    assert!(claim_one(db(&h), &other, now, 3).await.is_none());
}

async fn an_expired_lease_is_claimed_again_and_the_old_worker_is_locked_out(backend: Backend) {
    let h = harness(backend).await;
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let t0 = now_ms();
    let (_, old_lease) = claim_one(db(&h), &kinds, t0, 3).await.unwrap();
    // Still leased: nobody else gets it.
    assert!(claim_one(db(&h), &kinds, t0 + 500, 3).await.is_none());

    let (again, new_lease) = claim_one(db(&h), &kinds, t0 + 1_001, 3).await.unwrap();
    assert_eq!(again.id, job.id);
    assert_eq!(again.retries, 1);
    assert_ne!(old_lease.attempt, new_lease.attempt);

    let failure = JobFailure::new("X", "x");
    assert_eq!(
        db(&h).heartbeat(&old_lease, t0 + 5_000).await.unwrap(),
        LeaseStatus::Lost
    );
    assert!(!db(&h).record_progress(&old_lease, 50, t0).await.unwrap());
    assert!(!db(&h).complete(&old_lease, &[], t0).await.unwrap());
    assert!(!db(&h).fail(&old_lease, &failure, t0).await.unwrap());
    assert!(db(&h).record_progress(&new_lease, 40, t0).await.unwrap());
    assert!(db(&h).complete(&new_lease, &[], t0).await.unwrap());
    let done = h.engine.job(&h.principal, job.id).await.unwrap();
    assert_eq!(
        (done.state, done.progress, done.retries),
        (JobState::Completed, 100, 1)
    );
    // Terminal states are final.
    assert!(!db(&h).release(&new_lease, t0).await.unwrap());
}

async fn a_job_lost_too_often_fails_with_a_message_that_says_so(backend: Backend) {
    let h = harness(backend).await;
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let mut now = now_ms();
    for expected_retries in 0..=2 {
        let (claimed, _) = claim_one(db(&h), &kinds, now, 2).await.unwrap();
        assert_eq!(claimed.retries, expected_retries);
        now += 1_001;
    }
    let outcome = db(&h).claim(&claim_at(&kinds, now, 2)).await.unwrap();
    assert!(outcome.claimed.is_empty());
    let gave_up: Vec<_> = outcome.gave_up.iter().map(|j| (j.id, j.state)).collect();
    assert_eq!(gave_up, vec![(job.id, JobState::Failed)]);
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

async fn release_returns_a_job_to_the_queue_without_counting_a_retry(backend: Backend) {
    let h = harness(backend).await;
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = claim_one(db(&h), &kinds, now, 3).await.unwrap();
    assert!(db(&h).release(&lease, now).await.unwrap());
    let (again, _) = claim_one(db(&h), &kinds, now, 3).await.unwrap();
    assert_eq!((again.id, again.retries), (job.id, 0));
}

async fn the_active_job_limit_holds_under_concurrent_submissions(backend: Backend) {
    let h = harness(backend).await;
    let attempts = (0..20).map(|_| h.engine.submit(&h.principal, new_job(Some(1))));
    let results = futures::future::join_all(attempts).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, EngineError::LimitReached(LimitKind::PerKey))));

    // Finished jobs free the slot.
    let active = results.into_iter().find_map(Result::ok).unwrap();
    h.engine
        .cancel(&h.principal, active.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    h.engine
        .submit(&h.principal, new_job(Some(1)))
        .await
        .unwrap();
}

async fn concurrent_workers_never_claim_a_job_twice(backend: Backend) {
    let h = harness(backend).await;
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
        let store = db(&h).clone();
        tokio::spawn(async move {
            let kinds = kinds();
            let mut mine = Vec::new();
            while let Some((job, _)) = claim_one(&store, &kinds, now_ms(), 3).await {
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

async fn cancel_and_lookups_are_scoped_to_the_account(backend: Backend) {
    let h = harness(backend).await;
    let other = principal_named(&h.engine, "other").await;
    let job = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    assert!(matches!(
        h.engine.job(&other, job.id).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        h.engine
            .cancel(&other, job.id, None, CancelMode::PendingOnly)
            .await,
        Err(EngineError::NotFound)
    ));
    let query = genq_engine::JobQuery {
        model: None,
        before: None,
        state: None,
        limit: 10,
        ..Default::default()
    };
    assert!(h.engine.jobs(&other, &query).await.unwrap().is_empty());

    let kinds = kinds();
    db(&h).claim(&claim_at(&kinds, now_ms(), 3)).await.unwrap();
    let outcome = db(&h)
        .cancel(&CancelRequest {
            account: h.principal.account_id,
            job: job.id,
            dialect: None,
            mode: CancelMode::PendingOnly,
            now: now_ms(),
        })
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::NotCancellable(JobState::Processing));
}

async fn revoked_keys_authenticate_no_one(backend: Backend) {
    let h = harness(backend).await;
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

/// One worker slot: claims a job and completes it at once.
async fn submit_many(h: &Harness, principal: &genq_engine::Principal, n: usize) -> Vec<JobId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(h.engine.submit(principal, new_job(None)).await.unwrap().id);
    }
    ids
}

async fn a_backlog_does_not_starve_another_account(backend: Backend) {
    let h = harness(backend).await;
    let other = principal_named(&h.engine, "other").await;
    let backlog = submit_many(&h, &h.principal, 200).await;
    let single = h.engine.submit(&other, new_job(None)).await.unwrap();
    assert_eq!(db(&h).jobs_ahead(single.id).await.unwrap(), 1);
    let mut claimed = Vec::new();
    for _ in 0..3 {
        claimed.push(claim_and_complete(&h).await.unwrap());
    }
    assert_eq!(claimed, [backlog[0], single.id, backlog[1]]);

    // A newcomer part-way through the backlog waits for one job, not 148.
    for expected in &backlog[2..52] {
        assert_eq!(claim_and_complete(&h).await, Some(*expected));
    }
    let late = principal_named(&h.engine, "late").await;
    let late = h.engine.submit(&late, new_job(None)).await.unwrap();
    assert_eq!(db(&h).jobs_ahead(late.id).await.unwrap(), 1);
    assert_eq!(claim_and_complete(&h).await, Some(backlog[52]));
    assert_eq!(claim_and_complete(&h).await, Some(late.id));
    assert_eq!(claim_and_complete(&h).await, Some(backlog[53]));
}

async fn accounts_with_queued_work_take_turns(backend: Backend) {
    let h = harness(backend).await;
    let other = principal_named(&h.engine, "other").await;
    let a = submit_many(&h, &h.principal, 20).await;
    let b = submit_many(&h, &other, 3).await;
    let mut claimed = Vec::new();
    for _ in 0..8 {
        claimed.push(claim_and_complete(&h).await.unwrap());
    }
    assert_eq!(claimed, [a[0], b[0], a[1], b[1], a[2], b[2], a[3], a[4]]);
}

async fn one_claim_fills_several_slots_in_queue_order(backend: Backend) {
    let h = harness(backend).await;
    let other = principal_named(&h.engine, "other").await;
    let a = submit_many(&h, &h.principal, 4).await;
    let b = submit_many(&h, &other, 1).await;
    let kinds = kinds();
    let now = now_ms();
    let claim = |limit: u32| {
        let request = ClaimRequest {
            limit,
            ..claim_at(&kinds, now, 3)
        };
        let store = db(&h).clone();
        async move {
            let claimed = store.claim(&request).await.unwrap().claimed;
            let ids: HashSet<JobId> = claimed.iter().map(|(job, _)| job.id).collect();
            assert_eq!(ids.len(), claimed.len(), "a job twice in one batch");
            for (job, lease) in &claimed {
                assert_eq!(job.state, JobState::Processing);
                assert_eq!(lease.job_id, job.id);
                assert_eq!(lease.attempt, 1);
            }
            ids
        }
    };
    // The first three of the fair order (a0, b0, a1), then what is left.
    assert_eq!(claim(3).await, HashSet::from([a[0], b[0], a[1]]));
    assert_eq!(claim(10).await, HashSet::from([a[2], a[3]]));
    assert!(claim(10).await.is_empty());
}

async fn lists_an_accounts_jobs_newest_first_in_pages(backend: Backend) {
    let h = harness(backend).await;
    let other = principal_named(&h.engine, "other").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let job = if i % 2 == 0 {
            priced_job(0, None)
        } else {
            new_job(None)
        };
        ids.push(h.engine.submit(&h.principal, job).await.unwrap().id);
    }
    h.engine.submit(&other, new_job(None)).await.unwrap();
    h.engine
        .cancel(&h.principal, ids[0], None, CancelMode::PendingOnly)
        .await
        .unwrap();
    let list = |before: Option<JobId>, state: Option<JobState>, model: Option<&str>| {
        let query = genq_engine::JobQuery {
            before,
            state,
            model: model.map(str::to_owned),
            limit: 2,
            ..Default::default()
        };
        let engine = h.engine.clone();
        let principal = h.principal.clone();
        async move {
            let jobs = engine.jobs(&principal, &query).await.unwrap();
            jobs.into_iter().map(|j| j.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, None, None).await, [ids[4], ids[3]]);
    assert_eq!(list(Some(ids[3]), None, None).await, [ids[2], ids[1]]);
    assert_eq!(list(Some(ids[1]), None, None).await, [ids[0]]);
    assert_eq!(list(None, Some(JobState::Cancelled), None).await, [ids[0]]);
    assert_eq!(
        list(Some(ids[4]), None, Some("genq/test")).await,
        [ids[2], ids[0]]
    );
    assert!(list(None, None, Some("genq/other")).await.is_empty());
}

async fn submit_with_priority(
    h: &Harness,
    principal: &genq_engine::Principal,
    priority: i32,
) -> JobId {
    let job = NewJob {
        priority,
        ..new_job(None)
    };
    h.engine.submit(principal, job).await.unwrap().id
}

async fn priority_reorders_an_accounts_own_jobs_but_not_the_turns(backend: Backend) {
    let h = harness(backend).await;
    let other = principal_named(&h.engine, "other").await;
    let a = submit_many(&h, &h.principal, 3).await;
    let b = submit_many(&h, &other, 2).await;
    let a_urgent = submit_with_priority(&h, &h.principal, 5).await;
    let b_urgent = submit_with_priority(&h, &other, 3).await;
    let a_late = submit_with_priority(&h, &h.principal, -2).await;
    let kinds = kinds();
    let now = now_ms();
    // One claim of three slots: each account's turns as before (a, b, a),
    // each filled with the account's best job.
    let request = ClaimRequest {
        limit: 3,
        ..claim_at(&kinds, now, 3)
    };
    let first: Vec<JobId> = db(&h)
        .claim(&request)
        .await
        .unwrap()
        .claimed
        .iter()
        .map(|(job, _)| job.id)
        .collect();
    assert_eq!(
        HashSet::<JobId>::from_iter(first),
        HashSet::from([a_urgent, b_urgent, a[1]])
    );
    // Each job passed over took the place in line of the one that ran
    // before it: a[0] that of a_urgent, b[0] that of b_urgent.
    let mut rest = Vec::new();
    while let Some(id) = claim_and_complete(&h).await {
        rest.push(id);
    }
    assert_eq!(rest, [b[1], a[2], b[0], a[0], a_late]);
}

async fn a_pending_job_past_its_deadline_fails_refunded_and_runs_again_with_a_new_one(
    backend: Backend,
) {
    let h = harness(backend).await;
    let payer = funded(&h.engine, "payer", 1_000).await;
    let job = NewJob {
        timeout_seconds: Some(2),
        ..priced_job(400, None)
    };
    let job = h.engine.submit(&payer, job).await.unwrap();
    let deadline = job.deadline_at.expect("a deadline");
    assert_eq!(deadline - job.created_at, 2_000);
    let untimed = h
        .engine
        .submit(&payer, priced_job(100, None))
        .await
        .unwrap();
    assert!(db(&h).fail_overdue(deadline - 1).await.unwrap().is_empty());

    let failed = db(&h).fail_overdue(deadline).await.unwrap();
    assert_eq!(failed.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
    let read = h.engine.job(&payer, job.id).await.unwrap();
    assert_eq!(read.state, JobState::Failed);
    let failure = read.failure.expect("a failure");
    assert_eq!(failure.code, "DEADLINE_EXCEEDED");
    assert!(failure.message.contains("2 seconds"), "{}", failure.message);
    // Refunded once; the job without a deadline is still queued and paid.
    assert_eq!(
        balance_and_ledger(&h.engine, payer.account_id).await,
        (900, 900)
    );
    assert!(db(&h)
        .fail_overdue(deadline + 60_000)
        .await
        .unwrap()
        .is_empty());
    let kinds = kinds();
    let (claimed, _) = claim_one(db(&h), &kinds, deadline, 3).await.unwrap();
    assert_eq!(claimed.id, untimed.id);

    // A new run gets its own deadline, counted from when it is queued again.
    let requeued_at = now_ms();
    let again = db(&h)
        .requeue(&genq_engine::db::RequeueRequest {
            account: payer.account_id,
            jobs: &[job.id],
            dialect: None,
            now: requeued_at,
        })
        .await
        .unwrap();
    assert_eq!(
        again,
        genq_engine::db::RequeueOutcome::Requeued(vec![job.id])
    );
    let read = h.engine.job(&payer, job.id).await.unwrap();
    assert_eq!(read.deadline_at, Some(requeued_at + 2_000));
}

/// The disk under a SQLite store fills up: a commit fails (and SQLite rolls
/// it back by itself), and once space is back the very same store writes
/// again — no connection is left believing it is inside a transaction
/// (sqlx's ROLLBACK after SQLite's own fails, and its connection then
/// refused every later BEGIN). Needs root, to mount a small tmpfs.
#[tokio::test]
async fn sqlite_writes_resume_once_a_full_disk_has_room_again() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status();
        }
    }
    let _unmount = Unmount(&disk);
    let url = format!("sqlite://{}", disk.join("genq.db").display());
    let store = genq_db::open(&url).await.unwrap();
    let files =
        std::sync::Arc::new(genq_engine::LocalFiles::new(dir.path().join("files")).unwrap());
    let engine = genq_engine::Engine::new(store, files, dir.path().join("staging")).unwrap();
    let principal = principal_named(&engine, "disk").await;
    for i in 0..4 {
        let job = NewJob {
            input: serde_json::json!({ "pad": "x".repeat(32 * 1024), "i": i }),
            ..new_job(None)
        };
        engine.submit(&principal, job).await.unwrap();
    }
    // Another file takes every byte left.
    let filler = disk.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 16 * 1024];
        while file.write_all(&block).is_ok() {}
        while file.write_all(&block[..512]).is_ok() {}
    }
    // A claim rewrites its job's row (and its 32 KB input): no room.
    let kinds = kinds();
    let request = claim_at(&kinds, now_ms(), 3);
    let Err(full) = engine.db().claim(&request).await else {
        panic!("the claim had room");
    };
    assert!(full.to_string().contains("full"), "{full}");

    std::fs::remove_file(&filler).unwrap();
    let claimed = engine.db().claim(&request).await;
    match claimed {
        Ok(outcome) => assert_eq!(outcome.claimed.len(), 1),
        Err(e) => panic!("still failing with room again: {e}"),
    }
    let more = engine.submit(&principal, new_job(None)).await;
    assert!(more.is_ok(), "{}", more.unwrap_err());
}
