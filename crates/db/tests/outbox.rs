//! The webhook outbox, against each backend: one delivery per terminal job
//! that has a URL, recorded with the state change; claims under a lease;
//! attempts and their outcomes.

#[macro_use]
mod common;

use common::*;
use genq_engine::db::CancelMode;
use genq_engine::time::now_ms;
use genq_engine::webhook::{Attempt, DeliveryRecord, DeliveryState, NextStep};
use genq_engine::{JobFailure, JobId, NewJob};
use std::collections::HashSet;

backend_tests!(terminal_jobs_owe_one_webhook_each_and_record_their_attempts);

fn with_webhook() -> NewJob {
    NewJob {
        webhook_url: Some("https://receiver.example/hook".into()),
        ..new_job(None)
    }
}

fn attempt(at: i64, status: Option<u16>) -> Attempt {
    Attempt {
        attempted_at: at,
        status_code: status,
        latency_ms: 20,
        error: status.is_none().then(|| "connection refused".to_owned()),
    }
}

async fn terminal_jobs_owe_one_webhook_each_and_record_their_attempts(backend: Backend) {
    let h = harness(backend).await;
    let account = h.principal.account_id;
    let mut submit = Vec::new();
    for job in [
        with_webhook(),
        with_webhook(),
        with_webhook(),
        new_job(None),
    ] {
        submit.push(h.engine.submit(&h.principal, job).await.unwrap().id);
    }
    let [completed, failed, cancelled, silent]: [JobId; 4] = submit.try_into().unwrap();
    h.engine
        .cancel(&h.principal, cancelled, None, CancelMode::PendingOnly)
        .await
        .unwrap();
    let kinds = kinds();
    let now = now_ms();
    for _ in 0..3 {
        let (job, lease) = claim_one(db(&h), &kinds, now, 3).await.unwrap();
        if job.id == failed {
            let failure = JobFailure::new("X", "x");
            assert!(db(&h).fail(&lease, &failure, now).await.unwrap());
        } else {
            assert!(db(&h).complete(&lease, &[], now).await.unwrap());
        }
    }

    let mut ids = Vec::new();
    for (job, event) in [
        (completed, "job.completed"),
        (failed, "job.failed"),
        (cancelled, "job.cancelled"),
    ] {
        let records = deliveries(&h, job).await;
        assert_eq!(records.len(), 1, "{event}");
        assert_eq!(
            (records[0].event.as_str(), records[0].state),
            (event, DeliveryState::Pending)
        );
        assert!(records[0].attempts.is_empty());
        ids.push(records[0].id.clone());
    }
    assert!(deliveries(&h, silent).await.is_empty());
    let other = principal_named(&h.engine, "other").await;
    assert!(db(&h)
        .deliveries_for_job(other.account_id, completed)
        .await
        .unwrap()
        .is_empty());

    // Claimed under a lease: a second dispatcher gets none of them.
    let t = now_ms() + 1_000;
    let claimed = db(&h).claim_deliveries(t, t + 30_000, 10).await.unwrap();
    let claimed_ids: HashSet<String> = claimed.iter().map(|d| d.id.clone()).collect();
    assert_eq!(claimed_ids, ids.iter().cloned().collect());
    assert!(claimed
        .iter()
        .all(|d| d.attempts == 0 && d.account_id == account));
    assert!(db(&h)
        .claim_deliveries(t, t + 30_000, 10)
        .await
        .unwrap()
        .is_empty());

    // A failed attempt schedules a retry, which is not due before its time.
    db(&h)
        .finish_attempt(
            &ids[0],
            &attempt(t, Some(500)),
            NextStep::RetryAt(t + 5_000),
        )
        .await
        .unwrap();
    assert!(db(&h)
        .claim_deliveries(t + 1_000, t + 31_000, 10)
        .await
        .unwrap()
        .is_empty());
    let record = deliveries(&h, completed).await.remove(0);
    assert_eq!(record.next_attempt_at, Some(t + 5_000));
    assert_eq!(record.attempts, [attempt(t, Some(500))]);

    // Once due (and the others' leases expired), all come back; the retry
    // knows how many attempts came before.
    let later = t + 31_000;
    let again = db(&h)
        .claim_deliveries(later, later + 30_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    let retried = again.iter().find(|d| d.id == ids[0]).unwrap();
    assert_eq!(retried.attempts, 1);

    db(&h)
        .finish_attempt(&ids[0], &attempt(later, Some(204)), NextStep::Delivered)
        .await
        .unwrap();
    db(&h)
        .finish_attempt(&ids[1], &attempt(later, None), NextStep::GiveUp)
        .await
        .unwrap();
    let delivered = deliveries(&h, completed).await.remove(0);
    assert_eq!(
        (
            delivered.state,
            delivered.delivered_at,
            delivered.attempts.len()
        ),
        (DeliveryState::Delivered, Some(later), 2)
    );
    let given_up = deliveries(&h, failed).await.remove(0);
    assert_eq!(
        (given_up.state, given_up.attempts[0].error.as_deref()),
        (DeliveryState::Failed, Some("connection refused"))
    );
}

async fn deliveries(h: &Harness, job: JobId) -> Vec<DeliveryRecord> {
    db(h)
        .deliveries_for_job(h.principal.account_id, job)
        .await
        .unwrap()
}
