//! Where the two backends once differed, or where a difference is kept for a
//! measured reason and written down here:
//!
//! - expired leases are reclaimed earliest-expired first (ties by id) on both;
//! - a new job's fair-queue round when nothing is pending is the newest
//!   job's on both (rounds only order pending jobs among themselves, so the
//!   claim order below is what a user sees);
//! - the per-account active count comes from a trigger-kept counter on
//!   SQLite and from a bounded count under the account's row lock on
//!   PostgreSQL (a counter row there would serialize every claim and
//!   completion of the account): the limits behave the same, as
//!   `billing.rs` checks through every kind of state change;
//! - `cancel_requested` is a boolean on both (0/1 in SQLite).
//!
//! Also what the dialects filter by: dialect, correlation id, change time;
//! and that one key's limit counts its own dialect's jobs only; projects,
//! each seen by its own account only.

#[macro_use]
mod common;

use common::*;
use genq_engine::db::{CancelMode, ClaimRequest};
use genq_engine::time::now_ms;
use genq_engine::{EngineError, JobQuery, LimitKind, NewJob, NewProject};

backend_tests!(
    idempotency_keys_are_claimed_kept_replayed_and_forgotten,
    a_kept_key_is_replayed_after_a_restart_and_kept_anew_once_expired,
    retention_marks_finished_jobs_and_a_marked_job_cannot_run_again,
    expired_leases_are_reclaimed_earliest_expired_first,
    accounts_take_turns_again_after_the_queue_drains,
    lists_filter_by_dialect_correlation_id_and_recency,
    a_keys_limit_counts_only_the_jobs_of_its_dialect,
    projects_are_kept_per_account,
);

async fn expired_leases_are_reclaimed_earliest_expired_first(backend: Backend) {
    let h = harness(backend).await;
    let older = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let newer = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    let t = now_ms();
    let claim = |now: i64, lease_until: i64| ClaimRequest {
        lease_until,
        ..claim_at(&kinds, now, 3)
    };
    // The older job's lease runs longer than the newer one's.
    let (first, _) = db(&h)
        .claim(&claim(t, t + 2_000))
        .await
        .unwrap()
        .claimed
        .remove(0);
    let (second, _) = db(&h)
        .claim(&claim(t, t + 1_000))
        .await
        .unwrap()
        .claimed
        .remove(0);
    assert_eq!((first.id, second.id), (older.id, newer.id));
    let later = t + 5_000;
    let (again, lease) = db(&h)
        .claim(&claim(later, later + 1_000))
        .await
        .unwrap()
        .claimed
        .remove(0);
    assert_eq!(
        again.id, newer.id,
        "the lease that expired first goes first"
    );
    assert_eq!((again.retries, lease.attempt), (1, 2));
    let (last, _) = db(&h)
        .claim(&claim(later, later + 1_000))
        .await
        .unwrap()
        .claimed
        .remove(0);
    assert_eq!(last.id, older.id);
}

async fn accounts_take_turns_again_after_the_queue_drains(backend: Backend) {
    let h = harness(backend).await;
    let other = principal_named(&h.engine, "other").await;
    let submit = |principal| {
        let engine = h.engine.clone();
        async move { engine.submit(&principal, new_job(None)).await.unwrap().id }
    };
    // A long backlog of one account, drained.
    for _ in 0..5 {
        submit(h.principal.clone()).await;
    }
    submit(other.clone()).await;
    while claim_and_complete(&h).await.is_some() {}

    // Then: two of one account, one of the other, one more of the first.
    let a1 = submit(h.principal.clone()).await;
    let a2 = submit(h.principal.clone()).await;
    let b1 = submit(other.clone()).await;
    let a3 = submit(h.principal.clone()).await;
    let mut order = Vec::new();
    while let Some(id) = claim_and_complete(&h).await {
        order.push(id);
    }
    assert_eq!(order, [a1, b1, a2, a3]);
}

async fn lists_filter_by_dialect_correlation_id_and_recency(backend: Backend) {
    let h = harness(backend).await;
    let job = |dialect: &str, session: Option<&str>| NewJob {
        dialect: dialect.into(),
        correlation_id: session.map(str::to_owned),
        ..new_job(None)
    };
    let video = h
        .engine
        .submit(&h.principal, job("video", Some("s1")))
        .await
        .unwrap();
    let gateway = h
        .engine
        .submit(&h.principal, job("v1", Some("s1")))
        .await
        .unwrap();
    let later = h
        .engine
        .submit(&h.principal, job("v1", Some("s2")))
        .await
        .unwrap();
    let list = |query: JobQuery| {
        let (engine, principal) = (h.engine.clone(), h.principal.clone());
        async move {
            let query = JobQuery { limit: 10, ..query };
            let jobs = engine.jobs(&principal, &query).await.unwrap();
            jobs.into_iter().map(|j| j.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(JobQuery {
            dialect: Some("v1".into()),
            ..Default::default()
        })
        .await,
        [later.id, gateway.id]
    );
    assert_eq!(
        list(JobQuery {
            correlation_id: Some("s1".into()),
            ..Default::default()
        })
        .await,
        [gateway.id, video.id]
    );
    // Recent: in flight, or finished since a time.
    let cancel = |id| {
        let (engine, principal) = (h.engine.clone(), h.principal.clone());
        async move {
            engine
                .cancel(&principal, id, None, CancelMode::PendingOnly)
                .await
                .unwrap()
        }
    };
    cancel(video.id).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let since = now_ms();
    let gateway_finished = cancel(gateway.id).await;
    assert!(gateway_finished.completed_at >= Some(since));
    assert_eq!(
        list(JobQuery {
            in_flight_or_finished_since: Some(since),
            ..Default::default()
        })
        .await,
        [later.id, gateway.id]
    );
    let read = h.engine.job(&h.principal, video.id).await.unwrap();
    assert_eq!(read.correlation_id.as_deref(), Some("s1"));
}

async fn a_keys_limit_counts_only_the_jobs_of_its_dialect(backend: Backend) {
    let h = harness(backend).await;
    let one_per_key = |dialect: &str| NewJob {
        dialect: dialect.into(),
        ..new_job(Some(1))
    };
    h.engine
        .submit(&h.principal, one_per_key("video"))
        .await
        .unwrap();
    assert!(matches!(
        h.engine.submit(&h.principal, one_per_key("video")).await,
        Err(EngineError::LimitReached(LimitKind::PerKey))
    ));
    // Another dialect's rule, another dialect's count.
    h.engine
        .submit(&h.principal, one_per_key("v1"))
        .await
        .unwrap();
}

async fn projects_are_kept_per_account(backend: Backend) {
    let h = harness(backend).await;
    let mine = h.principal.account_id;
    let theirs = principal_named(&h.engine, "other").await.account_id;
    // Key order and every character survive as written.
    let template = "{\"type\":\"image\",\"zeta\":1,\"alpha\":\"é ✓\"}";
    let new = |name: &str| NewProject {
        name: name.into(),
        kind: "image".into(),
        starts_at: Some(1_000),
        ends_at: None,
        template: template.into(),
    };
    let first = h.engine.create_project(mine, new("first")).await.unwrap();
    let second = h.engine.create_project(mine, new("second")).await.unwrap();
    h.engine
        .create_project(theirs, new("theirs"))
        .await
        .unwrap();

    let read = h.engine.project(mine, first.id).await.unwrap();
    assert_eq!(read, first);
    assert_eq!(read.template, template);
    let names: Vec<String> = h
        .engine
        .projects(mine)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        ["first", "second"],
        "oldest first, only the account's"
    );
    assert!(matches!(
        h.engine.project(theirs, first.id).await,
        Err(EngineError::ProjectNotFound)
    ));

    let mut edit = new("renamed");
    edit.ends_at = Some(2_000);
    let updated = h
        .engine
        .update_project(mine, second.id, edit.clone())
        .await
        .unwrap();
    assert_eq!(
        (updated.created_at, updated.ends_at),
        (second.created_at, Some(2_000))
    );
    assert_eq!(h.engine.project(mine, second.id).await.unwrap(), updated);
    assert!(matches!(
        h.engine.update_project(theirs, second.id, edit).await,
        Err(EngineError::ProjectNotFound)
    ));
    assert!(matches!(
        h.engine.delete_project(theirs, second.id).await,
        Err(EngineError::ProjectNotFound)
    ));
    h.engine.delete_project(mine, second.id).await.unwrap();
    assert!(matches!(
        h.engine.project(mine, second.id).await,
        Err(EngineError::ProjectNotFound)
    ));
    assert_eq!(h.engine.projects(mine).await.unwrap().len(), 1);
}

async fn idempotency_keys_are_claimed_kept_replayed_and_forgotten(backend: Backend) {
    use genq_engine::idempotency::{KeyClaim, KeyedSubmission};
    let h = harness(backend).await;
    let other = principal_named(&h.engine, "other").await;
    let KeyClaim::Claimed { token } = h.engine.claim_key(&h.principal, "k").await.unwrap() else {
        panic!("a new key is claimed")
    };
    assert_eq!(
        h.engine.claim_key(&h.principal, "k").await.unwrap(),
        KeyClaim::InProgress
    );
    // Another account's key of the same name is another key.
    assert!(matches!(
        h.engine.claim_key(&other, "k").await.unwrap(),
        KeyClaim::Claimed { .. }
    ));
    let keyed = KeyedSubmission {
        key: "k".into(),
        token: token.clone(),
        fingerprint: vec![1, 2, 3],
        status: 201,
        answer: Box::new(|jobs| format!("{{\"jobId\":\"{}\"}}", jobs[0].id).into_bytes()),
    };
    let (jobs, kept) = h
        .engine
        .submit_all(&h.principal, vec![new_job(None)], Some(keyed))
        .await
        .unwrap();
    let kept = kept.expect("kept");
    assert_eq!(
        kept.body,
        format!("{{\"jobId\":\"{}\"}}", jobs[0].id).into_bytes()
    );
    h.engine
        .release_key(&h.principal, "k", &token)
        .await
        .unwrap();
    assert_eq!(
        h.engine.claim_key(&h.principal, "k").await.unwrap(),
        KeyClaim::Kept(kept)
    );
    // Forgotten once expired (a day by default): the key is new again.
    let later = now_ms() + 25 * 3600 * 1000;
    assert!(db(&h).delete_expired_keys(later).await.unwrap() >= 1);
    assert!(matches!(
        h.engine.claim_key(&h.principal, "k").await.unwrap(),
        KeyClaim::Claimed { .. }
    ));
}

/// Submits one job under `key` through `engine`, answering `answer`.
async fn keep(
    engine: &genq_engine::Engine,
    principal: &genq_engine::Principal,
    key: &str,
    answer: &'static str,
) -> genq_engine::idempotency::KeptAnswer {
    use genq_engine::idempotency::{KeyClaim, KeyedSubmission};
    let KeyClaim::Claimed { token } = engine.claim_key(principal, key).await.unwrap() else {
        panic!("{key} is claimed")
    };
    let keyed = KeyedSubmission {
        key: key.into(),
        token: token.clone(),
        fingerprint: answer.as_bytes().to_vec(),
        status: 200,
        answer: Box::new(move |_| answer.as_bytes().to_vec()),
    };
    let (_, kept) = engine
        .submit_all(principal, vec![new_job(None)], Some(keyed))
        .await
        .unwrap();
    engine.release_key(principal, key, &token).await.unwrap();
    kept.expect("kept")
}

/// A restarted server (a new store on the same database: on SQLite its
/// index of kept keys is read from the table) replays what the last one
/// kept; once expired, the key is claimed and kept anew without a sweep,
/// and the new answer is the one replayed, also after another restart.
async fn a_kept_key_is_replayed_after_a_restart_and_kept_anew_once_expired(backend: Backend) {
    use genq_engine::idempotency::KeyClaim;
    let h = harness(backend).await;
    h.engine
        .set_idempotency_retention(std::time::Duration::from_millis(400));
    let first = keep(&h.engine, &h.principal, "r", "first").await;
    keep(&h.engine, &h.principal, "other", "other").await;

    let restarted = h.db.engine().await;
    assert_eq!(
        restarted.claim_key(&h.principal, "r").await.unwrap(),
        KeyClaim::Kept(first)
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = keep(&restarted, &h.principal, "r", "second").await;
    assert_eq!(
        restarted.claim_key(&h.principal, "r").await.unwrap(),
        KeyClaim::Kept(second.clone())
    );
    let again = h.db.engine().await;
    assert_eq!(
        again.claim_key(&h.principal, "r").await.unwrap(),
        KeyClaim::Kept(second)
    );
    assert!(matches!(
        again.claim_key(&h.principal, "other").await.unwrap(),
        KeyClaim::Claimed { .. }
    ));
}

async fn retention_marks_finished_jobs_and_a_marked_job_cannot_run_again(backend: Backend) {
    let h = harness(backend).await;
    let pending = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let done = h.engine.submit(&h.principal, new_job(None)).await.unwrap();
    let kinds = kinds();
    // The first claimed is `pending`: complete it, leave `done`'s twin queued.
    let (job, lease) = claim_one(db(&h), &kinds, now_ms(), 3).await.unwrap();
    assert_eq!(job.id, pending.id);
    assert!(db(&h).complete(&lease, &[], now_ms()).await.unwrap());
    let finished = pending;
    let later = now_ms() + 1_000;
    let with_inputs = db(&h).jobs_with_inputs(later, 10).await.unwrap();
    assert_eq!(
        with_inputs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [finished.id]
    );
    let with_outputs = db(&h).jobs_with_outputs(later, 10).await.unwrap();
    assert_eq!(
        with_outputs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [finished.id]
    );
    // A queued job is never swept.
    assert!(!db(&h)
        .mark_inputs_deleted(done.id, &serde_json::json!({}), later)
        .await
        .unwrap());
    let input = serde_json::json!({"image": "data:,deleted"});
    assert!(db(&h)
        .mark_inputs_deleted(finished.id, &input, later)
        .await
        .unwrap());
    assert!(!db(&h)
        .mark_inputs_deleted(finished.id, &input, later)
        .await
        .unwrap());
    assert!(db(&h)
        .mark_outputs_deleted(finished.id, later)
        .await
        .unwrap());
    assert!(db(&h).jobs_with_inputs(later, 10).await.unwrap().is_empty());
    assert!(db(&h)
        .jobs_with_outputs(later, 10)
        .await
        .unwrap()
        .is_empty());
    let read = h.engine.job(&h.principal, finished.id).await.unwrap();
    assert_eq!(read.input, input);
    assert_eq!(
        (read.inputs_deleted_at, read.outputs_deleted_at),
        (Some(later), Some(later))
    );
    let refused = h.engine.requeue(&h.principal, &[finished.id], None).await;
    assert!(
        matches!(refused, Err(EngineError::InputsDeleted(id)) if id == finished.id),
        "{refused:?}"
    );
    // One lease holder at a time.
    let now = now_ms();
    assert!(db(&h)
        .take_lease("retention", "a", now, now + 1_000)
        .await
        .unwrap());
    assert!(!db(&h)
        .take_lease("retention", "b", now, now + 1_000)
        .await
        .unwrap());
    assert!(db(&h)
        .take_lease("retention", "a", now, now + 2_000)
        .await
        .unwrap());
    assert!(db(&h)
        .take_lease("retention", "b", now + 2_001, now + 3_000)
        .await
        .unwrap());
}
