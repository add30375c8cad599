//! Webhooks: a durable outbox and its dispatcher.
//!
//! When a job with a `webhook_url` reaches a terminal state, the database
//! records a delivery in the same transaction as the state change, so no
//! crash can lose it. The dispatcher ([`crate::dispatcher`]) claims due
//! deliveries under a short lease, POSTs the job's dialect-shaped body,
//! signs it ([`sign`]), and records every attempt. Delivery is
//! at-least-once; a repeat carries the same `webhook-id`. This module holds
//! the types and rules; it depends on nothing but ids and jobs.

pub mod sign;

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::ids::AccountId;
use crate::ids::JobId;
use crate::job::{Job, JobState};
use crate::time::Millis;

/// Renders a job as its dialect's webhook body. Each dialect registers one.
pub trait WebhookPayload: Send + Sync + 'static {
    fn body(&self, job: &Job) -> serde_json::Value;
}

/// The event a delivery announces, from the job's terminal state.
pub fn event_for(state: JobState) -> &'static str {
    match state {
        JobState::Completed => "job.completed",
        JobState::Failed => "job.failed",
        JobState::Cancelled => "job.cancelled",
        JobState::Pending | JobState::Processing => "job.updated",
    }
}

/// A new delivery id (`msg_…`, the Standard Webhooks convention).
pub fn new_delivery_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// A delivery claimed for sending.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub job_id: JobId,
    pub account_id: AccountId,
    pub url: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "PENDING",
            DeliveryState::Delivered => "DELIVERED",
            DeliveryState::Failed => "FAILED",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or(())
    }
}

/// One try at delivering.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub attempted_at: Millis,
    /// The receiver's status code, when it answered.
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// What happens after an attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NextStep {
    Delivered,
    RetryAt(Millis),
    GiveUp,
}

impl NextStep {
    /// What the delivery records after `attempt`: its state, when it is
    /// tried next, and when it was delivered.
    pub fn columns(self, attempt: &Attempt) -> (DeliveryState, Option<Millis>, Option<Millis>) {
        match self {
            NextStep::Delivered => (DeliveryState::Delivered, None, Some(attempt.attempted_at)),
            NextStep::RetryAt(at) => (DeliveryState::Pending, Some(at), None),
            NextStep::GiveUp => (DeliveryState::Failed, None, None),
        }
    }
}

/// A delivery as its owner sees it.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    pub id: String,
    pub url: String,
    pub event: String,
    pub state: DeliveryState,
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
    pub attempts: Vec<Attempt>,
}

/// The Standard Webhooks retry schedule: the delay before each attempt.
pub fn default_schedule() -> Vec<Duration> {
    [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// After `attempts_made` failed attempts, when to try again (or not).
/// `retry_after` (from the receiver) lengthens the wait, capped at a day.
pub fn next_step(
    schedule: &[Duration],
    attempts_made: u32,
    retry_after: Option<Duration>,
    now: Millis,
    jitter: f64,
) -> NextStep {
    let Some(delay) = schedule.get(attempts_made as usize) else {
        return NextStep::GiveUp;
    };
    // Jitter (±10%) spreads retries so receivers coming back up are not hit
    // by every delivery at once.
    let jittered = delay.as_secs_f64() * (1.0 + jitter.clamp(-1.0, 1.0) * 0.1);
    let wait = retry_after
        .map(|r| r.min(Duration::from_secs(86_400)).as_secs_f64())
        .unwrap_or(0.0)
        .max(jittered);
    NextStep::RetryAt(now + (wait * 1000.0) as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let schedule = vec![
            Duration::ZERO,
            Duration::from_secs(5),
            Duration::from_secs(300),
        ];
        assert_eq!(
            next_step(&schedule, 1, None, 1_000, 0.0),
            NextStep::RetryAt(6_000)
        );
        assert_eq!(
            next_step(&schedule, 2, None, 1_000, 0.0),
            NextStep::RetryAt(301_000)
        );
        assert_eq!(next_step(&schedule, 3, None, 1_000, 0.0), NextStep::GiveUp);
        assert_eq!(
            next_step(&schedule, 1, None, 0, 1.0),
            NextStep::RetryAt(5_500)
        );
        assert_eq!(
            next_step(&schedule, 1, None, 0, -1.0),
            NextStep::RetryAt(4_500)
        );
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens_the_wait() {
        let schedule = vec![Duration::ZERO, Duration::from_secs(5)];
        assert_eq!(
            next_step(&schedule, 1, Some(Duration::from_secs(60)), 0, 0.0),
            NextStep::RetryAt(60_000)
        );
        assert_eq!(
            next_step(&schedule, 1, Some(Duration::from_secs(1)), 0, 0.0),
            NextStep::RetryAt(5_000)
        );
        assert_eq!(
            next_step(&schedule, 1, Some(Duration::from_secs(10_000_000)), 0, 0.0),
            NextStep::RetryAt(86_400_000)
        );
    }
}
