//! Shared set-up: an engine over a real store of either backend — a SQLite
//! file in a temporary directory, or a throwaway PostgreSQL database — so
//! one suite judges both.
#![allow(dead_code)]

pub mod pg;
pub mod pg_url;

use genq_engine::account::NewAccount;
const IMAGE_AUDIO_VIDEO: &str = "image_audio_video";
use genq_engine::db::ClaimRequest;
use genq_engine::job::Lease;
use genq_engine::{
    AccountId, Database, Engine, Job, LocalFiles, ModelRef, NewJob, Principal, SubmitLimits,
};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates, for each `async fn name(backend: Backend)` listed, a test
/// `sqlite::name` and a test `postgres::name` running it on that backend.
#[allow(unused_macros)]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if crate::common::pg::base_url().is_none() {
                        eprintln!("skipped: GENQ_TEST_POSTGRES_URL=off");
                        return;
                    }
                    super::$name(crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Where a test's data lives; dropping it removes it.
pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub url: String,
    _pg: Option<pg::Database>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("genq.db").display()),
                dir,
                _pg: None,
            },
            Backend::Postgres => {
                let base = pg::base_url().expect("PostgreSQL tests are off");
                let db = pg::Database::create(&base).await;
                TestDb {
                    url: db.url.clone(),
                    dir,
                    _pg: Some(db),
                }
            }
        }
    }

    /// Another engine over the same database, as a second process would have.
    pub async fn engine(&self) -> Engine {
        let store = genq_db::open(&self.url).await.unwrap();
        let storage = Arc::new(LocalFiles::new(self.dir.path().join("files")).unwrap());
        Engine::new(store, storage, self.dir.path().join("staging")).unwrap()
    }
}

pub struct Harness {
    // Dropped last: the engine's connections go before the database does.
    pub engine: Engine,
    pub principal: Principal,
    pub db: TestDb,
}

pub async fn harness(backend: Backend) -> Harness {
    harness_with(
        backend,
        NewAccount {
            name: "test".into(),
            ..Default::default()
        },
    )
    .await
}

pub async fn harness_with(backend: Backend, account: NewAccount) -> Harness {
    let db = TestDb::new(backend).await;
    let engine = db.engine().await;
    let principal = principal_of(&engine, &account).await;
    Harness {
        engine,
        principal,
        db,
    }
}

pub async fn principal_of(engine: &Engine, account: &NewAccount) -> Principal {
    let (_, _, key) = engine
        .create_account(account, vec!["submit_job".into(), "check_status".into()])
        .await
        .unwrap();
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
        limits: SubmitLimits {
            max_active_per_key: limit,
            max_active_per_account: None,
        },
        ..NewJob::default()
    }
}

/// A model-gateway job costing `cost`, under an account concurrency limit.
pub fn priced_job(cost: i64, max_active_per_account: Option<u32>) -> NewJob {
    NewJob {
        model: Some(ModelRef {
            slug: "genq/test".into(),
            version: "1".into(),
        }),
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

/// A one-slot claim: the next job and its lease, if any.
pub async fn claim_one(
    db: &Arc<dyn Database>,
    kinds: &[String],
    now: i64,
    max_retries: u32,
) -> Option<(Job, Lease)> {
    let request = claim_at(kinds, now, max_retries);
    db.claim(&request).await.unwrap().claimed.into_iter().next()
}

/// Claims the next job and completes it: its id, or None when none is queued.
pub async fn claim_and_complete(h: &Harness) -> Option<genq_engine::JobId> {
    let kinds = kinds();
    let now = genq_engine::time::now_ms();
    let (job, lease) = claim_one(db(h), &kinds, now, 3).await?;
    assert!(db(h).complete(&lease, &[], now).await.unwrap());
    Some(job.id)
}

pub fn claim_at(kinds: &[String], now: i64, max_retries: u32) -> ClaimRequest<'_> {
    ClaimRequest {
        owner: "test-worker",
        kinds,
        now,
        lease_until: now + 1_000,
        max_retries,
        limit: 1,
    }
}

pub fn db(h: &Harness) -> &Arc<dyn Database> {
    h.engine.db()
}

pub async fn funded(engine: &Engine, name: &str, credits: i64) -> Principal {
    principal_of(
        engine,
        &NewAccount {
            name: name.into(),
            credits_micro_cents: credits,
            ..Default::default()
        },
    )
    .await
}

/// The account's balance and the sum of its ledger, which must agree.
pub async fn balance_and_ledger(engine: &Engine, account: AccountId) -> (i64, i64) {
    let balance = engine.account(account).await.unwrap().balance_micro_cents;
    let ledger = engine.ledger(account).await.unwrap();
    (balance, ledger.iter().map(|e| e.amount_micro_cents).sum())
}
