//! Credits: reservations at submission, refunds exactly once, a ledger that
//! always sums to the balance, limits that hold under concurrent submissions.

#[macro_use]
mod common;

use common::*;
use genq_engine::account::NewAccount;
use genq_engine::db::{CancelMode, CancelRequest};
use genq_engine::db::{CancelOutcome, LeaseStatus};
use genq_engine::time::now_ms;
use genq_engine::LimitKind;
use genq_engine::{AccountId, EngineError, JobFailure, JobState};

backend_tests!(
    submission_reserves_and_failure_refunds_exactly_once,
    completed_jobs_keep_their_charge_and_cancelled_ones_are_refunded,
    a_running_job_can_be_cancelled_through_its_heartbeat,
    concurrent_submissions_never_overspend,
    the_account_concurrency_limit_holds_and_the_account_can_override_it,
    finished_jobs_free_their_place_under_the_concurrency_limit,
    credits_add_up,
    model_restrictions_combine_account_and_key,
);

fn funded(credits: i64) -> NewAccount {
    NewAccount {
        name: "funded".into(),
        credits_micro_cents: credits,
        ..Default::default()
    }
}

async fn submission_reserves_and_failure_refunds_exactly_once(backend: Backend) {
    let h = harness_with(backend, funded(1_000)).await;
    let account = h.principal.account_id;
    let job = h
        .engine
        .submit(&h.principal, priced_job(300, None))
        .await
        .unwrap();
    assert_eq!(balance_and_ledger(&h.engine, account).await, (700, 700));

    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = claim_one(db(&h), &kinds, now, 3).await.unwrap();
    let failure = JobFailure::new("GENERATION_FAILED", "boom");
    assert!(db(&h).fail(&lease, &failure, now).await.unwrap());
    assert!(!db(&h).fail(&lease, &failure, now).await.unwrap());
    assert!(!db(&h).record_cancelled(&lease, now).await.unwrap());
    assert_eq!(balance_and_ledger(&h.engine, account).await, (1_000, 1_000));
    let reasons: Vec<String> = h
        .engine
        .ledger(account)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, ["credit", "reserve", "refund"]);
    assert_eq!(
        h.engine.job(&h.principal, job.id).await.unwrap().state,
        JobState::Failed
    );
}

async fn completed_jobs_keep_their_charge_and_cancelled_ones_are_refunded(backend: Backend) {
    let h = harness_with(backend, funded(1_000)).await;
    let account = h.principal.account_id;
    h.engine
        .submit(&h.principal, priced_job(100, None))
        .await
        .unwrap();
    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = claim_one(db(&h), &kinds, now, 3).await.unwrap();
    assert!(db(&h).complete(&lease, &[], now + 1_000).await.unwrap());
    assert_eq!(
        h.engine.db().model_run_ms("genq/test").await.unwrap(),
        Some(1_000.0)
    );

    let pending = h
        .engine
        .submit(&h.principal, priced_job(200, None))
        .await
        .unwrap();
    h.engine
        .cancel(&h.principal, pending.id, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    assert_eq!(balance_and_ledger(&h.engine, account).await, (900, 900));
}

async fn a_running_job_can_be_cancelled_through_its_heartbeat(backend: Backend) {
    let h = harness_with(backend, funded(1_000)).await;
    let job = h
        .engine
        .submit(&h.principal, priced_job(400, None))
        .await
        .unwrap();
    let kinds = kinds();
    let now = now_ms();
    let (_, lease) = claim_one(db(&h), &kinds, now, 3).await.unwrap();
    assert_eq!(
        db(&h).heartbeat(&lease, now + 1_000).await.unwrap(),
        LeaseStatus::Held
    );

    // The seed-004 rule: only PENDING jobs cancel.
    assert!(matches!(
        h.engine
            .cancel(&h.principal, job.id, None, CancelMode::PendingOnly)
            .await,
        Err(EngineError::NotCancellable(JobState::Processing))
    ));
    let outcome = db(&h)
        .cancel(&CancelRequest {
            account: h.principal.account_id,
            job: job.id,
            dialect: None,
            mode: CancelMode::EvenIfRunning,
            now,
        })
        .await
        .unwrap();
    assert!(matches!(outcome, CancelOutcome::CancelRequested(_)));
    assert_eq!(
        db(&h).heartbeat(&lease, now + 1_000).await.unwrap(),
        LeaseStatus::CancelRequested
    );
    assert!(db(&h).record_cancelled(&lease, now).await.unwrap());
    assert_eq!(
        h.engine.job(&h.principal, job.id).await.unwrap().state,
        JobState::Cancelled
    );
    assert_eq!(
        balance_and_ledger(&h.engine, h.principal.account_id).await,
        (1_000, 1_000)
    );
}

async fn concurrent_submissions_never_overspend(backend: Backend) {
    let h = harness_with(backend, funded(1_000)).await;
    let attempts = (0..40).map(|_| h.engine.submit(&h.principal, priced_job(100, None)));
    let results = futures::future::join_all(attempts).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 10);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, EngineError::InsufficientBalance { cost: 100, .. })));
    assert_eq!(
        balance_and_ledger(&h.engine, h.principal.account_id).await,
        (0, 0)
    );
}

async fn the_account_concurrency_limit_holds_and_the_account_can_override_it(backend: Backend) {
    let h = harness(backend).await;
    let attempts = (0..12).map(|_| h.engine.submit(&h.principal, priced_job(0, Some(3))));
    let results = futures::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, EngineError::LimitReached(LimitKind::PerAccount))));

    let roomy = principal_of(
        &h.engine,
        &NewAccount {
            name: "roomy".into(),
            max_concurrent_jobs: Some(5),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..5 {
        h.engine
            .submit(&roomy, priced_job(0, Some(3)))
            .await
            .unwrap();
    }
    assert!(matches!(
        h.engine.submit(&roomy, priced_job(0, Some(3))).await,
        Err(EngineError::LimitReached(LimitKind::PerAccount))
    ));
    assert_eq!(h.engine.active_jobs(roomy.account_id).await.unwrap(), 5);
}

async fn credits_add_up(backend: Backend) {
    let h = harness(backend).await;
    let account = h.principal.account_id;
    assert_eq!(h.engine.credit(account, 5_000).await.unwrap(), 5_000);
    assert_eq!(h.engine.credit(account, -1_000).await.unwrap(), 4_000);
    assert_eq!(balance_and_ledger(&h.engine, account).await, (4_000, 4_000));
    assert!(matches!(
        h.engine.credit(AccountId::new(), 1).await,
        Err(EngineError::AccountNotFound)
    ));
}

trait MayUse {
    fn may_use_model(&self, slug: &str) -> bool;
}

impl MayUse for genq_engine::Principal {
    fn may_use_model(&self, slug: &str) -> bool {
        genq_catalog::may_use(self, slug)
    }
}

async fn model_restrictions_combine_account_and_key(backend: Backend) {
    let h = harness_with(
        backend,
        NewAccount {
            name: "restricted".into(),
            model_patterns: Some(vec!["genq/*".into()]),
            ..Default::default()
        },
    )
    .await;
    assert!(h.principal.may_use_model("genq/text-to-speech"));
    assert!(!h.principal.may_use_model("google/veo/text-to-video"));
    let (_, key) = h
        .engine
        .create_key(
            h.principal.account_id,
            vec!["submit_job".into()],
            Some(vec!["genq/title-card/*".into()]),
        )
        .await
        .unwrap();
    let narrow = h.engine.authenticate(&key).await.unwrap().unwrap();
    assert!(narrow.may_use_model("genq/title-card/text-to-video"));
    assert!(!narrow.may_use_model("genq/text-to-speech"));
}

async fn finished_jobs_free_their_place_under_the_concurrency_limit(backend: Backend) {
    let h = harness(backend).await;
    let submit = || h.engine.submit(&h.principal, priced_job(0, Some(3)));
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(submit().await.unwrap().id);
    }
    assert!(matches!(
        submit().await,
        Err(EngineError::LimitReached(LimitKind::PerAccount))
    ));

    // One completes, one fails, one is cancelled while PENDING; a claimed job
    // that is released stays active.
    let kinds = kinds();
    let store = db(&h);
    let now = now_ms();
    let (_, done) = claim_one(store, &kinds, now, 3).await.unwrap();
    assert!(store.complete(&done, &[], now).await.unwrap());
    let (_, failed) = claim_one(store, &kinds, now, 3).await.unwrap();
    assert!(store
        .fail(&failed, &JobFailure::new("X", "x"), now)
        .await
        .unwrap());
    let last = pending[2];
    h.engine
        .cancel(&h.principal, last, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    assert_eq!(
        h.engine.active_jobs(h.principal.account_id).await.unwrap(),
        0
    );

    let first = submit().await.unwrap();
    let (_, released) = claim_one(store, &kinds, now, 3).await.unwrap();
    assert_eq!(released.job_id, first.id);
    assert!(store.release(&released, now).await.unwrap());
    submit().await.unwrap();
    submit().await.unwrap();
    assert!(matches!(
        submit().await,
        Err(EngineError::LimitReached(LimitKind::PerAccount))
    ));
    assert_eq!(
        h.engine.active_jobs(h.principal.account_id).await.unwrap(),
        3
    );
}
