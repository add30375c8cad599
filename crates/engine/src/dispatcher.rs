//! The webhook dispatcher: claims due deliveries, sends them, records the
//! outcome. It runs on an engine and hears of finished jobs through the bus.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use genq_outbound::{error_chain, OutboundError, OutboundPolicy};

use crate::engine::Engine;
use crate::events::Signal;
use crate::time::now_ms;
use crate::webhook::{next_step, sign, Attempt, Delivery, NextStep, WebhookPayload};

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Delay before each attempt; its length is the number of attempts.
    pub schedule: Vec<Duration>,
    /// Per attempt, connecting included.
    pub timeout: Duration,
    pub policy: OutboundPolicy,
    /// Fallback poll for due retries and deliveries recorded by other processes.
    pub poll_interval: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

pub struct WebhookDispatcher {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookDispatcher {
    pub fn start(
        engine: Engine,
        payloads: HashMap<String, Arc<dyn WebhookPayload>>,
        config: WebhookConfig,
    ) -> Result<Self, OutboundError> {
        let client = config.policy.client(config.timeout)?;
        let stop = CancellationToken::new();
        let sender = Arc::new(Sender {
            engine: engine.clone(),
            client,
            payloads,
            config: config.clone(),
        });
        let task = tokio::spawn(run(engine, sender, config, stop.clone()));
        Ok(Self { stop, task })
    }

    /// Stops claiming and waits for deliveries in flight (each is bounded by
    /// the timeout; an unrecorded one is retried after its lease expires).
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "webhook dispatcher ended abnormally");
        }
    }
}

async fn run(engine: Engine, sender: Arc<Sender>, config: WebhookConfig, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    // A job that reached its end (in any process) may owe a delivery.
    let due = Arc::new(Notify::new());
    let _hook = {
        let due = due.clone();
        engine.on_event(move |signal| match signal {
            Signal::Changed(event) if event.state.is_terminal() => due.notify_one(),
            Signal::Changed(_) => {}
            Signal::Missed => due.notify_one(),
        })
    };
    let mut in_flight = JoinSet::new();
    // Long enough that a delivery is never sent twice at once: the request's
    // timeout plus room to record its outcome.
    let lease = config.timeout + Duration::from_secs(30);
    loop {
        while in_flight.try_join_next().is_some() {}
        let free = slots.available_permits();
        let mut claimed = 0;
        if free > 0 {
            let now = now_ms();
            match engine
                .db()
                .claim_deliveries(now, now + lease.as_millis() as i64, free as u32)
                .await
            {
                Ok(deliveries) => {
                    claimed = deliveries.len();
                    for delivery in deliveries {
                        let permit = slots
                            .clone()
                            .try_acquire_owned()
                            .expect("claimed no more than free slots");
                        let sender = sender.clone();
                        in_flight.spawn(async move {
                            sender.deliver(delivery).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming webhook deliveries failed"),
            }
        }
        if claimed > 0 && claimed == free {
            // There may be more due; look again as soon as a slot frees.
            tokio::select! {
                _ = in_flight.join_next() => continue,
                _ = stop.cancelled() => break,
            }
        }
        tokio::select! {
            _ = due.notified() => {}
            _ = tokio::time::sleep(config.poll_interval) => {}
            _ = stop.cancelled() => break,
        }
    }
    while in_flight.join_next().await.is_some() {}
}

struct Sender {
    engine: Engine,
    client: reqwest::Client,
    payloads: HashMap<String, Arc<dyn WebhookPayload>>,
    config: WebhookConfig,
}

/// How one attempt ended, before it is recorded.
struct Outcome {
    status_code: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    next: Option<NextStep>,
}

impl Outcome {
    fn error(message: impl Into<String>, next: Option<NextStep>) -> Self {
        Self {
            status_code: None,
            error: Some(message.into()),
            retry_after: None,
            next,
        }
    }
}

impl Sender {
    async fn deliver(&self, delivery: Delivery) {
        let started = Instant::now();
        let attempted_at = now_ms();
        let outcome = self.attempt(&delivery).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let next = outcome.next.unwrap_or_else(|| {
            let jitter = rand::random::<f64>() * 2.0 - 1.0;
            next_step(
                &self.config.schedule,
                delivery.attempts + 1,
                outcome.retry_after,
                now_ms(),
                jitter,
            )
        });
        let attempt = Attempt {
            attempted_at,
            status_code: outcome.status_code,
            latency_ms,
            error: outcome.error,
        };
        let outcome = match next {
            NextStep::Delivered => "delivered",
            NextStep::RetryAt(_) => "retrying",
            NextStep::GiveUp => "gave_up",
        };
        crate::metrics::webhook_attempt(outcome, started.elapsed().as_secs_f64());
        match &next {
            NextStep::Delivered => {
                tracing::info!(delivery = %delivery.id, job = %delivery.job_id, "webhook delivered")
            }
            NextStep::RetryAt(at) => tracing::info!(
                delivery = %delivery.id, status = ?attempt.status_code, error = ?attempt.error,
                in_ms = at - now_ms(), "webhook attempt failed; will retry"
            ),
            NextStep::GiveUp => tracing::warn!(
                delivery = %delivery.id, status = ?attempt.status_code, error = ?attempt.error,
                "webhook attempt failed; giving up"
            ),
        }
        if let Err(e) = self
            .engine
            .db()
            .finish_attempt(&delivery.id, &attempt, next)
            .await
        {
            tracing::error!(delivery = %delivery.id, error = %e, "recording a webhook attempt failed; it will be retried");
        }
    }

    async fn attempt(&self, delivery: &Delivery) -> Outcome {
        let db = self.engine.db();
        let (job, account) = match (
            db.get_job(delivery.account_id, delivery.job_id).await,
            db.get_account(delivery.account_id).await,
        ) {
            (Ok(Some(job)), Ok(Some(account))) => (job, account),
            (Ok(None), _) | (_, Ok(None)) => {
                return Outcome::error(
                    "the job or its account no longer exists",
                    Some(NextStep::GiveUp),
                )
            }
            (Err(e), _) | (_, Err(e)) => {
                return Outcome::error(format!("internal error: {e}"), None)
            }
        };
        let Some(payload) = self.payloads.get(&job.dialect) else {
            return Outcome::error(
                format!(
                    "no webhook body is defined for jobs of the {} dialect",
                    job.dialect
                ),
                Some(NextStep::GiveUp),
            );
        };
        let url = match url::Url::parse(&delivery.url) {
            Ok(url) => url,
            Err(e) => return Outcome::error(format!("invalid URL: {e}"), Some(NextStep::GiveUp)),
        };
        // A refused address stays refused, whether literal or what a name
        // resolves to: retrying cannot help.
        if let Err(e) = self.config.policy.check_resolved(&url, &["https"]).await {
            return Outcome::error(e.to_string(), Some(NextStep::GiveUp));
        }

        let body = serde_json::to_vec(&payload.body(&job)).expect("JSON values serialize");
        let mut secrets = vec![account.webhook_secret.as_str()];
        if let (Some(previous), Some(until)) = (
            &account.previous_webhook_secret,
            account.previous_secret_valid_until,
        ) {
            if until > now_ms() {
                secrets.push(previous);
            }
        }
        let timestamp = now_ms() / 1000;
        let mut request = self.client.post(url);
        for (name, value) in sign::headers(&secrets, &delivery.id, timestamp, &body) {
            request = request.header(name, value);
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let (error, next) = if status.is_success() {
                    (None, Some(NextStep::Delivered))
                } else if status == reqwest::StatusCode::GONE {
                    (
                        Some("the receiver answered 410 Gone; no more retries".to_owned()),
                        Some(NextStep::GiveUp),
                    )
                } else {
                    (Some(format!("the receiver answered {status}")), None)
                };
                Outcome {
                    status_code: Some(status.as_u16()),
                    error,
                    retry_after,
                    next,
                }
            }
            Err(e) => Outcome::error(error_chain(&e), None),
        }
    }
}
