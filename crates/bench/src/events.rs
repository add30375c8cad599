//! events: live job events over Server-Sent Events.
//!
//! - latency: how soon a committed change reaches an SSE client of
//!   `GET /events` — in one process (SQLite: the change is made through the
//!   server the client is on) and across processes (PostgreSQL: made
//!   through a second API node, announced by the database). Each change's
//!   event carries its time (`id:`, ms, set just before the commit); the
//!   figure is the client's clock at arrival minus that time, so it counts
//!   the commit, the announcement, the fan-out and the socket.
//! - fan-out: 1,000 subscribers on one server, each following a queued job
//!   (or a studio session) while those jobs change (50 a second) and new
//!   jobs arrive as fast as 64 connections submit them: what the
//!   subscribers add to the server's memory, and durable submissions per
//!   second with them against a server without them. Then the same with 2
//!   consoles following the whole account, each sent every submission.

use anyhow::{bail, Context};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

use crate::api::{repeat, submit_one, submit_request, summarize};
use crate::load::LoadResult;
use crate::memory::rss_bytes;
use crate::pg;
use crate::server::{genq_binary, Server};
use crate::stats::Summary;
use crate::table::{Row, Target};
use crate::Plan;

pub async fn run(
    plan: &Plan,
    dir: &Path,
    postgres: &pg::Server,
    postgres_off: bool,
) -> anyhow::Result<Vec<Row>> {
    let genq = genq_binary()?;
    let mut rows = Vec::new();

    let server = Server::start(&genq, &dir.join("events-sqlite")).await?;
    let measured = async {
        let key = server.create_account("bench").await?;
        latency(&server, &server, &key, plan.event_changes).await
    }
    .await;
    server.stop().await?;
    rows.extend(latency_rows("one process, SQLite", measured?));

    if postgres_off {
        rows.push(Row::skipped(
            "events: latency across processes (PostgreSQL)",
            "--postgres-url off",
        ));
    } else {
        let db = postgres.create_database("events").await?;
        let measured = async {
            let watched = Server::start_on(&genq, &dir.join("events-pg-a"), Some(&db.url)).await?;
            let source = Server::start_on(&genq, &dir.join("events-pg-b"), Some(&db.url)).await?;
            let result = async {
                let key = watched.create_account("bench").await?;
                latency(&source, &watched, &key, plan.event_changes).await
            }
            .await;
            source.stop().await?;
            watched.stop().await?;
            result
        }
        .await;
        db.drop_now().await?;
        rows.extend(latency_rows("across processes, PostgreSQL", measured?));
    }

    rows.extend(fan_out(plan, &genq, dir).await?);
    Ok(rows)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as i64
}

/// Latencies (ms) of `changes` submissions and as many cancels made through
/// `source`, as an SSE client of `watched`'s `/events` sees them.
async fn latency(
    source: &Server,
    watched: &Server,
    key: &str,
    changes: usize,
) -> anyhow::Result<Vec<f64>> {
    let response = reqwest::Client::new()
        .get(watched.url("/events"))
        .header("X-API-Key", key)
        .send()
        .await?
        .error_for_status()
        .context("opening /events")?;
    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            let Ok(at_ms) = event.id.parse::<i64>() else {
                continue;
            };
            if arrivals.send((now_micros(), at_ms)).is_err() {
                break;
            }
        }
    });
    // A listener on PostgreSQL connects when the first client arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    for _ in 0..changes {
        let id = submit_one(source, key).await?;
        http.post(source.url(&format!("/v1/jobs/{id}/cancel")))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?;
        // Paced, so that the figure is the path of one change, not a queue.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = Vec::with_capacity(2 * changes);
    let deadline = Instant::now() + Duration::from_secs(10);
    while latencies.len() < 2 * changes {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, arrived.recv()).await {
            Ok(Some((received_us, at_ms))) => {
                latencies.push(((received_us - at_ms * 1000) as f64 / 1000.0).max(0.0));
            }
            _ => bail!(
                "the SSE client saw {} of {} events",
                latencies.len(),
                2 * changes
            ),
        }
    }
    reader.abort();
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency_rows(how: &str, latencies: Vec<f64>) -> Vec<Row> {
    let one = |v: f64| Summary::of(&[v]).expect("one sample");
    let p50 = nearest_rank(&latencies, 50.0);
    let p99 = nearest_rank(&latencies, 99.0);
    vec![
        Row::new(format!("events: latency p50, {how}"), one(p50), "ms")
            .decimals(1)
            .note(format!("{} changes", latencies.len())),
        Row::new(format!("events: latency p99, {how}"), one(p99), "ms")
            .decimals(1)
            .target(Target::below(p99, 50.0, "< 50 ms")),
    ]
}

/// Who the fan-out's subscribers follow: one job each, or a studio
/// session each.
struct Mix {
    jobs: usize,
    sessions: usize,
}

impl Mix {
    fn of(subscribers: usize) -> Mix {
        let sessions = subscribers / 100;
        Mix {
            jobs: subscribers - sessions,
            sessions,
        }
    }
}

/// Consoles following the whole account: each is sent every submission.
const ACCOUNT_WIDE: usize = 2;

/// Changes per second to followed jobs while submissions are measured.
const CHANGES_PER_SECOND: u64 = 50;

/// Reads every event of each stream it is given, counting them.
struct Subscribers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    events: Arc<AtomicU64>,
}

impl Subscribers {
    async fn open(server: &Server, key: &str, paths: Vec<String>) -> anyhow::Result<Subscribers> {
        let client = reqwest::Client::new();
        let events = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(paths.len());
        for path in paths {
            let response = client
                .get(server.url(&path))
                .header("X-API-Key", key)
                .send()
                .await?
                .error_for_status()
                .with_context(|| format!("opening {path}"))?;
            let count = events.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = response.bytes_stream().eventsource();
                while let Some(Ok(_)) = stream.next().await {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        Ok(Subscribers { tasks, events })
    }

    fn close(self) -> u64 {
        for task in &self.tasks {
            task.abort();
        }
        self.events.load(Ordering::Relaxed)
    }
}

/// Who listens while submissions are measured.
#[derive(Clone, Copy, PartialEq)]
enum Audience {
    Nobody,
    /// `plan.event_subscribers`, each following one job or one session.
    Followers,
    /// [`ACCOUNT_WIDE`] streams of the whole account.
    AccountWide,
}

async fn fan_out(plan: &Plan, genq: &Path, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let mix = Mix::of(plan.event_subscribers);
    let mut rates: [Vec<LoadResult>; 3] = Default::default();
    let mut extra_mb = Vec::new();
    let mut delivered = [0u64; 3];
    for rep in 0..plan.api_reps {
        for (i, audience) in [Audience::Nobody, Audience::Followers, Audience::AccountWide]
            .into_iter()
            .enumerate()
        {
            let data = dir.join(format!("events-fan-out-{rep}-{i}"));
            let server = Server::start(genq, &data).await?;
            let measured = async {
                let key = server.create_account("bench").await?;
                // The same queue on every side: the jobs the followers follow.
                let queued = queue_jobs(&server, &key, mix.jobs).await?;
                let before = rss_bytes(server.pid()?)?;
                let paths: Vec<String> = match audience {
                    Audience::Nobody => vec![],
                    Audience::Followers => queued
                        .iter()
                        .map(|id| format!("/v1/jobs/{id}/events"))
                        .chain((0..mix.sessions).map(|i| format!("/events?session_id=studio-{i}")))
                        .collect(),
                    Audience::AccountWide => vec!["/events".to_owned(); ACCOUNT_WIDE],
                };
                let subscribers = Subscribers::open(&server, &key, paths).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                if audience == Audience::Followers {
                    let grew = rss_bytes(server.pid()?)?.saturating_sub(before) as f64 / 1e6;
                    eprintln!(
                        "  events: {} subscribers added {grew:.1} MB",
                        plan.event_subscribers
                    );
                    extra_mb.push(grew);
                }
                // Followed jobs change while the submissions run (each
                // change reaches its follower), on every side alike.
                let changes = tokio::spawn(cancel_paced(server.url(""), key.clone(), queued));
                let what = match audience {
                    Audience::Nobody => "submissions, nobody listening",
                    Audience::Followers => "submissions with followers",
                    Audience::AccountWide => "submissions with account-wide subscribers",
                };
                let result = repeat(plan, server.addr, submit_request(&key)?, what, 1).await;
                changes.abort();
                delivered[i] += subscribers.close();
                result
            }
            .await;
            server.stop().await?;
            rates[i].extend(measured?);
        }
    }
    let [nobody, followers, account_wide] = rates;
    let rate_nobody = summarize(&nobody, |r| r.rate())?;
    let rate_followers = summarize(&followers, |r| r.rate())?;
    let rate_account_wide = summarize(&account_wide, |r| r.rate())?;
    let extra = Summary::of(&extra_mb).context("no fan-out runs")?;
    let subscribers = plan.event_subscribers;
    let ratio = rate_followers.median / rate_nobody.median;
    Ok(vec![
        Row::new(
            format!("events: RSS of {subscribers} subscribers"),
            extra,
            "MB",
        )
        .decimals(1)
        .target(Target::below(extra.median, 50.0, "< 50 MB"))
        .note(format!(
            "{} following a job, {} a session",
            mix.jobs, mix.sessions
        )),
        Row::new(
            "events: submissions, nobody listening",
            rate_nobody,
            "jobs/s",
        )
        .note(format!(
            "{CHANGES_PER_SECOND} changes/s to queued jobs meanwhile, on every side"
        )),
        Row::new(
            format!("events: submissions, {subscribers} subscribers"),
            rate_followers,
            "jobs/s",
        )
        .ratio("with/without", ratio)
        .target(Target::at_least(ratio, 0.9, "≥ 0.9× without"))
        .note(format!("{} events delivered", delivered[1])),
        Row::new(
            format!("events: submissions, {ACCOUNT_WIDE} account-wide subscribers"),
            rate_account_wide,
            "jobs/s",
        )
        .ratio(
            "with/without",
            rate_account_wide.median / rate_nobody.median,
        )
        .note(format!(
            "each is sent every submission: {} events delivered",
            delivered[2]
        )),
    ])
}

/// Cancels the queued `jobs` one by one, [`CHANGES_PER_SECOND`] a second,
/// until aborted.
async fn cancel_paced(base: String, key: String, jobs: Vec<String>) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / CHANGES_PER_SECOND));
    for id in jobs {
        tick.tick().await;
        http.post(format!("{base}/v1/jobs/{id}/cancel"))
            .bearer_auth(&key)
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(())
}

/// `n` queued jobs of the account (the server runs no workers); their ids.
async fn queue_jobs(server: &Server, key: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(submit_one(server, key).await?);
    }
    Ok(ids)
}
