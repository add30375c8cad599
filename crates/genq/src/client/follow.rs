//! Following a job to its end over Server-Sent Events: the job's own
//! stream (`/api/jobs/{id}/events`, `/v1/jobs/{id}/events`) or, for a
//! Provider job, the account's `GET /events` filtered to it. A dropped
//! stream is opened again with `Last-Event-ID`; Ctrl-C asks whether to
//! cancel the job.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::api::{retry_after, Api, Reply};
use super::dialect::{Dialect, State};
use super::report::Report;
use super::{Exit, FollowArgs, FAILED, INTERRUPTED, UNREACHABLE};

/// A stream silent this long (the server says `: keep-alive` every 15 s)
/// is taken for dropped.
const SILENCE: Duration = Duration::from_secs(45);
/// The server may be unreachable this long before the client gives up.
const OUTAGE: Duration = Duration::from_secs(30);
/// Streams that drop at once, without an event, this many times in a row
/// are given up on.
const MOST_EMPTY_DROPS: u32 = 20;

/// The job followed.
#[derive(Clone, Debug)]
pub struct Target {
    pub dialect: Dialect,
    pub id: String,
    /// A Provider job's `session_id`, which narrows `GET /events`.
    pub session: Option<String>,
}

/// What the stream task hands the foreground.
struct Update {
    name: String,
    event_id: Option<String>,
    body: Value,
}

/// Follows the job to its final state, reporting every event, then writes
/// its outputs when asked to. Completed is `Ok`; failed or cancelled is a
/// `FAILED` exit with the job's error.
pub async fn wait(
    api: &Api,
    target: Target,
    args: &FollowArgs,
    report: &mut Report,
    submitted: Option<&Value>,
) -> anyhow::Result<()> {
    // Listening before anything is shown: a Ctrl-C from here on is ours.
    let mut interrupts = signal(SignalKind::interrupt())?;
    if let Some(response) = submitted {
        report.submitted(&target.id, response);
    }
    let body = follow(api, &target, args, report, &mut interrupts).await?;
    report.finished();
    let dialect = target.dialect;
    let saved = match (dialect.state(&body), &args.out) {
        (Some(State::Completed), Some(out)) => tokio::select! {
            saved = super::output::save(api, dialect, &body, out, report) => saved.map(|_| ()),
            // A partial download is removed (its temporary file dropped).
            _ = interrupts.recv() => return Err(Exit::error(
                INTERRUPTED,
                format!("interrupted while writing the outputs of job {}", target.id),
            )),
        },
        _ => Ok(()),
    };
    report.final_job(&body);
    saved?;
    match dialect.state(&body) {
        Some(State::Completed) => Ok(()),
        _ => {
            let why = dialect
                .error(&body)
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            Err(Exit::error(
                FAILED,
                format!("job {} {}{why}", target.id, dialect.status(&body)),
            ))
        }
    }
}

async fn follow(
    api: &Api,
    target: &Target,
    args: &FollowArgs,
    report: &mut Report,
    interrupts: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<Value> {
    let (tx, mut rx) = mpsc::channel(64);
    let task = tokio::spawn(stream(api.clone(), target.clone(), tx));
    let _abort = AbortOnDrop(task);
    loop {
        tokio::select! {
            update = rx.recv() => match update {
                Some(Ok(update)) => {
                    let dialect = target.dialect;
                    report.event(dialect, &update.name, update.event_id.as_deref(), &update.body);
                    if dialect.state(&update.body).is_some_and(State::is_final) {
                        return Ok(update.body);
                    }
                }
                Some(Err(e)) => {
                    report.pause();
                    return Err(e);
                }
                None => return Err(anyhow::anyhow!("the job's event stream stopped")),
            },
            _ = interrupts.recv() => {
                report.pause();
                interrupted(api, target, args, interrupts).await?;
                report.resume();
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Ctrl-C: cancel the job (asked for, or asking a person at a terminal),
/// or leave it running and exit.
async fn interrupted(
    api: &Api,
    target: &Target,
    args: &FollowArgs,
    interrupts: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<()> {
    let id = &target.id;
    let cancel =
        args.cancel_on_interrupt || (std::io::stdin().is_terminal() && ask(id, interrupts).await);
    if !cancel {
        return Err(Exit::error(
            INTERRUPTED,
            format!("interrupted; job {id} goes on (follow it with `genq jobs watch {id}`)"),
        ));
    }
    let request = api.request(Method::POST, &target.dialect.cancel_path(id));
    match api.call(request).await {
        Ok(reply) if reply.status.is_success() => {
            eprintln!("cancelling job {id}…");
            Ok(())
        }
        Ok(reply) => Err(Exit::error(
            INTERRUPTED,
            format!(
                "interrupted; job {id} could not be cancelled ({} {}) and goes on",
                reply.status,
                reply.message()
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Asks at the terminal whether to cancel; a second Ctrl-C is a no.
async fn ask(id: &str, interrupts: &mut tokio::signal::unix::Signal) -> bool {
    eprint!("Cancel job {id}? [y/N] ");
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain thread: a blocked read must not hold the runtime at exit.
    std::thread::spawn(move || {
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        let _ = tx.send(answer);
    });
    tokio::select! {
        answer = rx => {
            let answer = answer.unwrap_or_default();
            matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
        }
        _ = interrupts.recv() => {
            eprintln!();
            false
        }
    }
}

/// The stream task: sends each new state of the job until its final one,
/// or the error that ended following it.
async fn stream(api: Api, target: Target, tx: mpsc::Sender<anyhow::Result<Update>>) {
    if let Err(e) = stream_events(&api, &target, &tx).await {
        let _ = tx.send(Err(e)).await;
    }
}

async fn stream_events(
    api: &Api,
    target: &Target,
    tx: &mpsc::Sender<anyhow::Result<Update>>,
) -> anyhow::Result<()> {
    let dialect = target.dialect;
    let mut last_event_id: Option<String> = None;
    let mut last_body: Option<Value> = None;
    let mut outage = Outage::default();
    // Sends a state unless it repeats the last or is older than it (the
    // Provider's job is read as well as streamed); true once it is final.
    let send = |name: String, event_id: Option<String>, body: Value, last: &mut Option<Value>| {
        let fresh = match last.as_ref() {
            None => true,
            Some(last) => *last != body && !older(last, &body),
        };
        let last_state = dialect.state(&body);
        if fresh {
            *last = Some(body.clone());
        }
        let tx = tx.clone();
        async move {
            if fresh {
                let update = Update {
                    name,
                    event_id,
                    body,
                };
                let _ = tx.send(Ok(update)).await;
            }
            fresh && last_state.is_some_and(State::is_final)
        }
    };
    loop {
        let path = match dialect.events_path(&target.id) {
            Some(path) => path,
            None => match &target.session {
                Some(session) => format!("/events?session_id={}", encode(session)),
                None => "/events".to_owned(),
            },
        };
        let mut request = api
            .request(Method::GET, &path)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = &last_event_id {
            request = request.header("last-event-id", id.as_str());
        }
        let response = match api.send(request).await {
            Ok(response) => response,
            Err(e) if super::is_transport(&e) => {
                outage.wait(e).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let status = response.status();
        if !status.is_success() {
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let wait = retry_after(&response);
                let reply = Reply::read(response).await?;
                outage
                    .wait_for(reply.refusal("following the job"), wait)
                    .await?;
                continue;
            }
            let reply = Reply::read(response).await?;
            if status == StatusCode::NOT_FOUND {
                return Err(Exit::error(FAILED, format!("no job {}", target.id)));
            }
            return Err(reply.refusal("following the job"));
        }
        let opened = Instant::now();
        // Silence (not even the 15 s keep-alive comment) ends the stream.
        let bytes = futures::stream::unfold(Box::pin(response.bytes_stream()), |mut s| async {
            match tokio::time::timeout(SILENCE, s.next()).await {
                Ok(Some(chunk)) => Some((chunk, s)),
                Ok(None) | Err(_) => None,
            }
        });
        let mut events = Box::pin(bytes).eventsource();
        if dialect == Dialect::Provider {
            // `/events` starts with the jobs in flight: one that finished
            // before the stream opened is read from its record.
            let request = api.request(Method::GET, &dialect.status_path(&target.id));
            let body = match api.ok(request, "reading the job").await {
                Ok(body) => body,
                Err(e) if super::is_transport(&e) => {
                    outage.wait(e).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if dialect.id(&body) != Some(target.id.as_str()) {
                return Err(Exit::error(FAILED, format!("no job {}", target.id)));
            }
            let name = dialect.status(&body).to_owned();
            if send(name, None, body, &mut last_body).await {
                return Ok(());
            }
        }
        let mut heard = false;
        while let Some(Ok(event)) = events.next().await {
            heard = true;
            if !event.id.is_empty() {
                last_event_id = Some(event.id.clone());
            }
            let Ok(body) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if dialect.id(&body) != Some(target.id.as_str()) {
                continue;
            }
            if send(event.event, Some(event.id), body, &mut last_body).await {
                return Ok(());
            }
        }
        // Dropped (or ended before the job did): open it again.
        outage.dropped(
            heard || opened.elapsed() > Duration::from_secs(5),
            &target.id,
        )?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether `body` shows the job as it was before `last` did (both carry
/// `updated_at` in the same ISO 8601 form, which sorts as text).
fn older(last: &Value, body: &Value) -> bool {
    let at = |v: &Value| {
        v.get("updated_at")
            .or_else(|| v.get("updatedAt"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    matches!((at(last), at(body)), (Some(last), Some(now)) if now < last)
}

/// Backs off while the server is unreachable, and gives up after a while.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    attempts: u32,
    empty_drops: u32,
}

impl Outage {
    async fn wait(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        self.wait_for(error, None).await
    }

    async fn wait_for(
        &mut self,
        error: anyhow::Error,
        hint: Option<Duration>,
    ) -> anyhow::Result<()> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() > OUTAGE {
            let code = super::exit_code(&error);
            return Err(Exit::error(
                code,
                format!("gave up after {} s: {error}", OUTAGE.as_secs()),
            ));
        }
        let backoff = Duration::from_millis(250 << self.attempts.min(4));
        self.attempts += 1;
        tokio::time::sleep(hint.unwrap_or(backoff)).await;
        Ok(())
    }

    /// A stream ended; `heard` whether it worked for a while (brought an
    /// event, or lasted).
    fn dropped(&mut self, heard: bool, id: &str) -> anyhow::Result<()> {
        self.since = None;
        self.attempts = 0;
        if heard {
            self.empty_drops = 0;
            return Ok(());
        }
        self.empty_drops += 1;
        if self.empty_drops >= MOST_EMPTY_DROPS {
            return Err(Exit::error(
                UNREACHABLE,
                format!("the event stream of job {id} keeps dropping"),
            ));
        }
        Ok(())
    }
}

/// A query value, percent-encoded.
fn encode(value: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a URL");
    url.query_pairs_mut().append_pair("v", value);
    url.query().unwrap_or_default()[2..].to_owned()
}
