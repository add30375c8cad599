//! Job outcomes (completed, failed, cancelled), grouped: outcomes recorded
//! at the same moment by a process's workers go to the database as one
//! statement and one commit (`genq_finish_batch` in
//! migrations/postgres/0002_queue_functions.sql), the way the SQLite store
//! groups submissions. One at a time they cost a round trip and a commit
//! each; a lone outcome still goes at once, it waits for no timer.

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, OnceCell};

use genq_engine::db::DbResult;

use crate::codec::db_err;
use crate::policy::RUN_TIME_WEIGHT;

/// The most outcomes in one statement.
const MAX_BATCH: usize = 64;

/// One outcome to record: the arguments of `genq_finish`.
pub(super) struct Outcome {
    pub job_id: String,
    pub attempt: i64,
    pub state: &'static str,
    pub at: i64,
    pub outputs: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub delivery_id: String,
    pub event: &'static str,
}

type Pending = (Outcome, oneshot::Sender<DbResult<bool>>);

/// The process's one recorder of outcomes, started by the first outcome (in
/// the caller's runtime).
#[derive(Default)]
pub(super) struct Finisher {
    queue: OnceCell<mpsc::UnboundedSender<Pending>>,
}

impl Finisher {
    /// Records `outcome`; true when the job was PROCESSING under that
    /// attempt and has moved.
    pub async fn finish(&self, pool: &PgPool, outcome: Outcome) -> DbResult<bool> {
        let queue = self
            .queue
            .get_or_init(|| async {
                let (queue, requests) = mpsc::unbounded_channel();
                tokio::spawn(record(pool.clone(), requests));
                queue
            })
            .await;
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((outcome, _))) = queue.send((outcome, reply)) {
            // The recorder is gone (its runtime shut down): record directly.
            return finish_one(pool, &outcome).await;
        }
        match answer.await {
            Ok(recorded) => recorded,
            Err(_) => Err(genq_engine::DbError::other(
                "the outcome recorder stopped before answering",
            )),
        }
    }
}

async fn record(pool: PgPool, mut requests: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let outcomes: Vec<&Outcome> = batch.iter().map(|(outcome, _)| outcome).collect();
        match finish_many(&pool, &outcomes).await {
            Ok(moved) if moved.len() == batch.len() => {
                for ((_, reply), moved) in batch.into_iter().zip(moved) {
                    let _ = reply.send(Ok(moved));
                }
            }
            // One outcome's error (or a deadlock between two processes'
            // batches) must not fail the others: each goes again alone.
            _ => {
                for (outcome, reply) in batch {
                    let _ = reply.send(finish_one(&pool, &outcome).await);
                }
            }
        }
    }
}

async fn finish_one(pool: &PgPool, o: &Outcome) -> DbResult<bool> {
    sqlx::query_scalar("SELECT genq_finish($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(&o.job_id)
        .bind(o.attempt)
        .bind(o.state)
        .bind(o.at)
        .bind(&o.outputs)
        .bind(&o.error_code)
        .bind(&o.error_message)
        .bind(&o.delivery_id)
        .bind(o.event)
        .bind(RUN_TIME_WEIGHT)
        .fetch_one(pool)
        .await
        .map_err(db_err("recording a job's outcome"))
}

async fn finish_many(pool: &PgPool, batch: &[&Outcome]) -> DbResult<Vec<bool>> {
    if let [one] = batch {
        return Ok(vec![finish_one(pool, one).await?]);
    }
    let column = |f: fn(&Outcome) -> Option<String>| -> Vec<Option<String>> {
        batch.iter().map(|o| f(o)).collect()
    };
    sqlx::query_scalar("SELECT genq_finish_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(column(|o| Some(o.job_id.clone())))
        .bind(batch.iter().map(|o| o.attempt).collect::<Vec<_>>())
        .bind(column(|o| Some(o.state.to_owned())))
        .bind(batch.iter().map(|o| o.at).collect::<Vec<_>>())
        .bind(column(|o| o.outputs.clone()))
        .bind(column(|o| o.error_code.clone()))
        .bind(column(|o| o.error_message.clone()))
        .bind(column(|o| Some(o.delivery_id.clone())))
        .bind(column(|o| Some(o.event.to_owned())))
        .bind(RUN_TIME_WEIGHT)
        .fetch_one(pool)
        .await
        .map_err(db_err("recording job outcomes"))
}
