//! Shared set-up: an engine over a real SQLite file in a temporary directory.
#![allow(dead_code)]

use genq_engine::account::NewAccount;
use genq_engine::job::kinds::IMAGE_AUDIO_VIDEO;
use genq_engine::store::ClaimRequest;
use genq_engine::{Engine, LocalStorage, NewJob, Principal, Store, SubmitLimits};
use std::sync::Arc;

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub engine: Engine,
    pub principal: Principal,
}

pub async fn harness() -> Harness {
    harness_with(NewAccount {
        name: "test".into(),
        ..Default::default()
    })
    .await
}

pub async fn harness_with(account: NewAccount) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("genq.db").display());
    let store = genq_store::open(&url).await.unwrap();
    let storage = Arc::new(LocalStorage::new(dir.path().join("files")).unwrap());
    let engine = Engine::new(store, storage, dir.path().join("staging")).unwrap();
    let principal = principal_of(&engine, &account).await;
    Harness {
        _dir: dir,
        engine,
        principal,
    }
}

pub async fn principal_of(engine: &Engine, account: &NewAccount) -> Principal {
    let (_, _, key) = engine.create_account(account).await.unwrap();
    engine.authenticate(&key).await.unwrap().unwrap()
}

pub async fn principal_named(engine: &Engine, name: &str) -> Principal {
    principal_of(
        engine,
        &NewAccount {
            name: name.into(),
            ..Default::default()
        },
    )
    .await
}

pub fn new_job(limit: Option<u32>) -> NewJob {
    NewJob {
        kind: IMAGE_AUDIO_VIDEO.into(),
        dialect: "test".into(),
        input: serde_json::json!({}),
        files: vec![],
        webhook_url: None,
        model: None,
        cost_micro_cents: 0,
        limits: SubmitLimits {
            max_active_per_key: limit,
            max_active_per_account: None,
        },
    }
}

/// A model-gateway job costing `cost`, under an account concurrency limit.
pub fn priced_job(cost: i64, max_active_per_account: Option<u32>) -> NewJob {
    NewJob {
        model: Some(("genq/test".into(), "1".into())),
        cost_micro_cents: cost,
        limits: SubmitLimits {
            max_active_per_key: None,
            max_active_per_account,
        },
        ..new_job(None)
    }
}

pub fn kinds() -> Vec<String> {
    vec![IMAGE_AUDIO_VIDEO.to_owned()]
}

pub fn claim_at(kinds: &[String], now: i64, max_retries: u32) -> ClaimRequest<'_> {
    ClaimRequest {
        owner: "test-worker",
        kinds,
        now,
        lease_until: now + 1_000,
        max_retries,
    }
}

pub fn store(h: &Harness) -> &Arc<dyn Store> {
    h.engine.store()
}
