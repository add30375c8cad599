//! Finished jobs run again (the Provider dialect's trigger-job): each run
//! is charged once and refunded at most once, all or nothing.

#[macro_use]
mod common;

use common::*;
use genq_engine::account::NewAccount;
use genq_engine::time::now_ms;
use genq_engine::{EngineError, JobFailure, JobId, JobState};

backend_tests!(
    a_finished_job_runs_again_and_each_run_is_charged_and_refunded_once,
    a_requeue_is_all_or_nothing,
);

fn funded(credits: i64) -> NewAccount {
    NewAccount {
        name: "funded".into(),
        credits_micro_cents: credits,
        ..Default::default()
    }
}

async fn fail_next(h: &Harness) -> JobId {
    let now = now_ms();
    let (job, lease) = claim_one(db(h), &kinds(), now, 3).await.unwrap();
    let failure = JobFailure::new("GENERATION_FAILED", "boom");
    assert!(db(h).fail(&lease, &failure, now).await.unwrap());
    job.id
}

async fn a_finished_job_runs_again_and_each_run_is_charged_and_refunded_once(backend: Backend) {
    let h = harness_with(backend, funded(1_000)).await;
    let account = h.principal.account_id;
    let done = h
        .engine
        .submit(&h.principal, priced_job(100, None))
        .await
        .unwrap();
    assert_eq!(claim_and_complete(&h).await, Some(done.id));
    let failed = h
        .engine
        .submit(&h.principal, priced_job(300, None))
        .await
        .unwrap();
    assert_eq!(fail_next(&h).await, failed.id);
    let waiting = h
        .engine
        .submit(&h.principal, priced_job(50, None))
        .await
        .unwrap();
    // 1,000 − 100 (kept) − 50 (queued); the failure was refunded.
    assert_eq!(balance_and_ledger(&h.engine, account).await, (850, 850));

    let again = h
        .engine
        .requeue(&h.principal, &[done.id, failed.id, waiting.id], None)
        .await
        .unwrap();
    assert_eq!(again, [done.id, failed.id], "the queued job is left alone");
    assert_eq!(balance_and_ledger(&h.engine, account).await, (450, 450));
    for id in [done.id, failed.id] {
        let job = h.engine.job(&h.principal, id).await.unwrap();
        assert_eq!((job.state, job.progress), (JobState::Pending, 0));
        assert!(job.outputs.is_empty() && job.failure.is_none() && job.completed_at.is_none());
    }

    // Every queued run fails and is refunded, re-runs too: what stays
    // charged is the first run of the job that completed.
    for _ in 0..3 {
        fail_next(&h).await;
    }
    assert_eq!(balance_and_ledger(&h.engine, account).await, (900, 900));
    // A third run is charged and refunded once more.
    h.engine
        .requeue(&h.principal, &[failed.id], None)
        .await
        .unwrap();
    assert_eq!(balance_and_ledger(&h.engine, account).await, (600, 600));
    assert_eq!(fail_next(&h).await, failed.id);
    assert_eq!(balance_and_ledger(&h.engine, account).await, (900, 900));
    let refunds = h
        .engine
        .ledger(account)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.reason == "refund" && e.job_id == Some(failed.id))
        .count();
    assert_eq!(refunds, 3, "one refund per failed run");
}

async fn a_requeue_is_all_or_nothing(backend: Backend) {
    let h = harness_with(backend, funded(500)).await;
    let account = h.principal.account_id;
    let first = h
        .engine
        .submit(&h.principal, priced_job(200, None))
        .await
        .unwrap();
    let second = h
        .engine
        .submit(&h.principal, priced_job(200, None))
        .await
        .unwrap();
    claim_and_complete(&h).await.unwrap();
    claim_and_complete(&h).await.unwrap();
    assert_eq!(balance_and_ledger(&h.engine, account).await, (100, 100));

    // Another account's job among them: nothing is queued again.
    let stranger = funded_principal(&h, "stranger").await;
    let theirs = h
        .engine
        .submit(&stranger, priced_job(0, None))
        .await
        .unwrap();
    let refused = h
        .engine
        .requeue(&h.principal, &[first.id, theirs.id], None)
        .await;
    assert!(matches!(refused, Err(EngineError::NotFound)), "{refused:?}");
    // Another dialect's job, seen through a dialect: the same.
    let refused = h
        .engine
        .requeue(&h.principal, &[first.id], Some("another-dialect"))
        .await;
    assert!(matches!(refused, Err(EngineError::NotFound)));
    // Credits for one re-run but not two: nothing is charged or queued.
    let refused = h
        .engine
        .requeue(&h.principal, &[first.id, second.id], None)
        .await;
    assert!(
        matches!(
            refused,
            Err(EngineError::InsufficientBalance {
                balance: 100,
                cost: 400
            })
        ),
        "{refused:?}"
    );
    assert_eq!(balance_and_ledger(&h.engine, account).await, (100, 100));
    for id in [first.id, second.id] {
        let job = h.engine.job(&h.principal, id).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
    }
}

async fn funded_principal(h: &Harness, name: &str) -> genq_engine::Principal {
    principal_named(&h.engine, name).await
}
