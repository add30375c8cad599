//! Retention: a finished job's stored inputs are deleted some time after it
//! finished (`--input-retention-hours`), and, when set, a completed job's
//! outputs (`--output-retention-days`). One process at a time sweeps (a
//! lease in the database, so API and worker nodes may all run it); each
//! job is marked before its files go, so that a job queued again meanwhile
//! keeps them, and a job marked can no longer run again.

use std::time::Duration;

use crate::engine::Engine;
use crate::job::Job;
use crate::time::{now_ms, Millis};

/// What to delete when, and how often to look.
#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Inputs of jobs finished longer ago than this; None keeps them.
    pub inputs_after: Option<Duration>,
    /// Outputs of jobs completed longer ago than this; None keeps them.
    pub outputs_after: Option<Duration>,
    pub every: Duration,
    /// Names this process in the lease.
    pub owner: String,
}

/// The lease's name in `genq_leases`.
const LEASE: &str = "retention";
/// Jobs handled per read.
const BATCH: u32 = 200;

/// What a data: URL in a job's kept input becomes once its inputs are
/// deleted (the bytes were the client's upload).
pub const DELETED_DATA_URL: &str = "data:,deleted%20after%20the%20input%20retention%20period";

/// Runs the sweep every `config.every` until the task is dropped.
pub fn start(engine: Engine, config: RetentionConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if config.inputs_after.is_none() && config.outputs_after.is_none() {
            return;
        }
        let mut every = tokio::time::interval(config.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = sweep(&engine, &config).await {
                tracing::warn!(error = %e, "the retention sweep failed; it runs again shortly");
            }
        }
    })
}

/// One sweep, if this process holds the lease; how many jobs lost inputs
/// and outputs.
pub async fn sweep(
    engine: &Engine,
    config: &RetentionConfig,
) -> Result<(usize, usize), crate::EngineError> {
    let db = engine.db();
    let now = now_ms();
    // Held for a few sweeps' time: a holder that died frees it soon.
    let until = now + 3 * config.every.as_millis().max(1_000) as Millis;
    if !db.take_lease(LEASE, &config.owner, now, until).await? {
        return Ok((0, 0));
    }
    let mut inputs = 0;
    if let Some(after) = config.inputs_after {
        let before = now - after.as_millis() as Millis;
        loop {
            let jobs = db.jobs_with_inputs(before, BATCH).await?;
            for job in &jobs {
                if db
                    .mark_inputs_deleted(job.id, &without_data_urls(&job.input), now)
                    .await?
                {
                    delete(engine, job, "inputs").await;
                    inputs += 1;
                }
            }
            if jobs.len() < BATCH as usize {
                break;
            }
        }
    }
    let mut outputs = 0;
    if let Some(after) = config.outputs_after {
        let before = now - after.as_millis() as Millis;
        loop {
            let jobs = db.jobs_with_outputs(before, BATCH).await?;
            for job in &jobs {
                if db.mark_outputs_deleted(job.id, now).await? {
                    delete(engine, job, "outputs").await;
                    outputs += 1;
                }
            }
            if jobs.len() < BATCH as usize {
                break;
            }
        }
    }
    if inputs + outputs > 0 {
        tracing::info!(
            inputs,
            outputs,
            "retention: deleted the files of finished jobs"
        );
    }
    Ok((inputs, outputs))
}

async fn delete(engine: &Engine, job: &Job, what: &str) {
    if let Err(e) = engine
        .files()
        .delete_prefix(&format!("{what}/{}", job.id))
        .await
    {
        // Marked already: the files stay behind until removed by hand.
        tracing::error!(job = %job.id, error = %e, "retention: could not delete the job's {what}");
    }
}

/// The input with every `data:` URL (an upload carried in the request)
/// replaced by [`DELETED_DATA_URL`].
fn without_data_urls(input: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match input {
        Value::String(s) if s.starts_with("data:") => Value::String(DELETED_DATA_URL.into()),
        Value::Array(items) => Value::Array(items.iter().map(without_data_urls).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), without_data_urls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uploads_in_the_input_are_dropped_and_the_rest_kept() {
        let input = json!({"values": {"logo": "data:image/png;base64,AAAA", "name": "Ada",
            "list": ["data:audio/mpeg;base64,BBBB", "https://example.com/a.png"]}, "n": 3});
        assert_eq!(
            without_data_urls(&input),
            json!({"values": {"logo": DELETED_DATA_URL, "name": "Ada",
                "list": [DELETED_DATA_URL, "https://example.com/a.png"]}, "n": 3})
        );
    }
}
