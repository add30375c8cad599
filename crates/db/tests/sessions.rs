//! What the web console keeps, against each backend: sessions that act as
//! their key (and end with it, at sign-out or expiry), an account's keys
//! listed and revoked only by that account, and webhook redeliveries.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use genq_engine::account::NewAccount;
use genq_engine::time::now_ms;
use genq_engine::webhook::{Attempt, NextStep};
use genq_engine::{EngineError, JobFailure, NewJob};

backend_tests!(
    a_session_acts_as_its_key_until_signed_out_expired_or_revoked,
    keys_are_listed_and_revoked_only_by_their_own_account,
    a_redelivery_makes_the_webhook_due_again_under_the_same_id
);

async fn account_with_key(h: &Harness, name: &str) -> (genq_engine::Principal, String) {
    let new = NewAccount {
        name: name.into(),
        ..Default::default()
    };
    let scopes = vec!["check_status".to_owned(), "submit_job".to_owned()];
    let (_, _, raw) = h.engine.create_account(&new, scopes).await.unwrap();
    let principal = h.engine.authenticate(&raw).await.unwrap().unwrap();
    (principal, raw)
}

async fn a_session_acts_as_its_key_until_signed_out_expired_or_revoked(backend: Backend) {
    let h = harness(backend).await;
    let (principal, key) = account_with_key(&h, "console").await;
    let engine = &h.engine;
    assert!(engine
        .start_session("genq_not-a-key", Duration::from_secs(60))
        .await
        .unwrap()
        .is_none());

    let (token, as_whom) = engine
        .start_session(&key, Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(as_whom, principal);
    assert_ne!(token, key);
    assert_eq!(
        engine.session_principal(&token).await.unwrap(),
        Some(principal.clone())
    );
    assert_eq!(engine.session_principal("made-up").await.unwrap(), None);

    // Signing out ends it at once; another session of the same key lives on.
    let (other, _) = engine
        .start_session(&key, Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    engine.end_session(&token).await.unwrap();
    assert_eq!(engine.session_principal(&token).await.unwrap(), None);
    assert!(engine.session_principal(&other).await.unwrap().is_some());

    // An expired session is not accepted (and is cleared by the next sign-in).
    let (short, _) = engine
        .start_session(&key, Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(engine.session_principal(&short).await.unwrap(), None);

    // Revoking the key ends every session it opened.
    engine
        .revoke_own_key(&principal, principal.key_id)
        .await
        .unwrap();
    assert_eq!(engine.session_principal(&other).await.unwrap(), None);
}

async fn keys_are_listed_and_revoked_only_by_their_own_account(backend: Backend) {
    let h = harness(backend).await;
    let (mine, _) = account_with_key(&h, "mine").await;
    let (theirs, _) = account_with_key(&h, "theirs").await;
    let (second, raw) = h
        .engine
        .create_key(
            mine.account_id,
            vec!["check_status".into()],
            Some(vec!["genq/*".into()]),
        )
        .await
        .unwrap();
    let keys = h.engine.api_keys(&mine).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].id, second, "newest first");
    assert_eq!(keys[0].scopes, ["check_status"]);
    assert_eq!(
        keys[0].model_patterns.as_deref(),
        Some(&["genq/*".to_owned()][..])
    );
    assert!(keys.iter().all(|k| k.revoked_at.is_none()));
    assert!(!h
        .engine
        .api_keys(&theirs)
        .await
        .unwrap()
        .iter()
        .any(|k| k.id == second));

    // Another account cannot revoke it: it is not found.
    assert!(matches!(
        h.engine.revoke_own_key(&theirs, second).await,
        Err(EngineError::NotFound)
    ));
    assert!(h.engine.authenticate(&raw).await.unwrap().is_some());
    h.engine.revoke_own_key(&mine, second).await.unwrap();
    assert!(h.engine.authenticate(&raw).await.unwrap().is_none());
    let keys = h.engine.api_keys(&mine).await.unwrap();
    assert!(keys
        .iter()
        .find(|k| k.id == second)
        .unwrap()
        .revoked_at
        .is_some());
    assert!(matches!(
        h.engine.revoke_own_key(&mine, second).await,
        Err(EngineError::NotFound)
    ));
}

async fn a_redelivery_makes_the_webhook_due_again_under_the_same_id(backend: Backend) {
    let h = harness(backend).await;
    let job = NewJob {
        webhook_url: Some("https://receiver.example/hook".into()),
        ..new_job(None)
    };
    let id = h.engine.submit(&h.principal, job).await.unwrap().id;
    // No delivery yet: nothing to redeliver.
    assert_eq!(
        h.engine.redeliver_webhook(&h.principal, id).await.unwrap(),
        0
    );
    let now = now_ms();
    let (_, lease) = claim_one(db(&h), &kinds(), now, 3).await.unwrap();
    assert!(db(&h)
        .fail(&lease, &JobFailure::new("X", "x"), now)
        .await
        .unwrap());

    // Delivered once, given up on after a failure.
    let claimed = db(&h)
        .claim_deliveries(now, now + 30_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let failed = Attempt {
        attempted_at: now,
        status_code: Some(500),
        latency_ms: 5,
        error: Some("HTTP 500".into()),
    };
    db(&h)
        .finish_attempt(&claimed[0].id, &failed, NextStep::GiveUp)
        .await
        .unwrap();
    assert!(db(&h)
        .claim_deliveries(now + 1, now + 30_000, 10)
        .await
        .unwrap()
        .is_empty());

    // Another account's job is not found; the owner's is due again now.
    let other = principal_named(&h.engine, "other").await;
    assert!(matches!(
        h.engine.redeliver_webhook(&other, id).await,
        Err(EngineError::NotFound)
    ));
    assert_eq!(
        h.engine.redeliver_webhook(&h.principal, id).await.unwrap(),
        1
    );
    let again = db(&h)
        .claim_deliveries(now_ms(), now_ms() + 30_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, claimed[0].id, "the same webhook id");
    assert_eq!(again[0].attempts, 1, "the earlier attempt still counts");
    // While a dispatcher holds it, a redelivery leaves it alone.
    assert_eq!(
        h.engine.redeliver_webhook(&h.principal, id).await.unwrap(),
        0
    );
}
