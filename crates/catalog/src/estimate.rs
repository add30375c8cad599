//! When a just-submitted job of a model should be done.

use genq_engine::time::Millis;
use genq_engine::{EngineError, Job};

use crate::Model;

impl Model {
    /// The jobs ahead of `job` spread over `slots` workers, each taking this
    /// model's observed average run time (or its typical time before it has
    /// run).
    pub async fn estimate_completion(
        &self,
        engine: &genq_engine::Engine,
        job: &Job,
        slots: usize,
    ) -> Result<Millis, EngineError> {
        let db = engine.db();
        let ahead = db.jobs_ahead(job.id).await?;
        let run_ms = db
            .model_run_ms(&self.slug)
            .await?
            .unwrap_or(self.typical_seconds * 1000.0);
        Ok(completion_time(job.created_at, ahead, slots, run_ms))
    }

    /// The estimate without the queue: the typical run time from `from`.
    pub fn typical_completion(&self, from: Millis) -> Millis {
        from + (self.typical_seconds * 1000.0) as Millis
    }
}

/// `ahead` jobs in rounds of `slots`, then this one.
fn completion_time(created_at: Millis, ahead: u64, slots: usize, run_ms: f64) -> Millis {
    let rounds = (ahead / slots.max(1) as u64) as f64 + 1.0;
    created_at + (rounds * run_ms) as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_ahead_wait_in_rounds_of_the_worker_slots() {
        assert_eq!(completion_time(1_000, 0, 4, 500.0), 1_500);
        assert_eq!(completion_time(1_000, 3, 4, 500.0), 1_500);
        assert_eq!(completion_time(1_000, 4, 4, 500.0), 2_000);
        assert_eq!(completion_time(1_000, 9, 0, 100.0), 2_000);
    }
}
