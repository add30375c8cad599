//! `genq jobs list|get|watch|cancel`: jobs of every dialect. A job id does
//! not say its dialect, so it is looked up on each dialect's status route
//! at once (another dialect's job is a 404 there, or the Provider's
//! `{"message": "Job not found"}`). Lists merge the dialects' list routes.

use std::io::IsTerminal;

use clap::Subcommand;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::api::Api;
use super::dialect::{Dialect, State};
use super::follow::{self, Target};
use super::report::{print_line, Report};
use super::{Exit, FollowArgs, FAILED};

/// A list route's largest page.
const PAGE: u32 = 100;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Your jobs, newest first: the Image+Audio Video API's and the model
    /// gateway's (the Provider dialect has no list route)
    List {
        /// Only jobs in this state, in any dialect's words (PENDING,
        /// processing, SUCCESS, …)
        #[arg(long, value_name = "S", value_parser = parse_state)]
        status: Option<State>,
        /// How many jobs at most
        #[arg(long, value_name = "N", default_value_t = 20,
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// A job's status, as its dialect's status route answers
    Get {
        #[arg(value_parser = job_id)]
        id: String,
    },
    /// Follow a job to its end (as submit --wait does)
    Watch {
        #[arg(value_parser = job_id)]
        id: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Cancel a job (the Image+Audio Video API cancels only pending jobs)
    Cancel {
        #[arg(value_parser = job_id)]
        id: String,
    },
}

pub async fn run(api: &Api, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List { status, limit } => list(api, status, limit).await,
        JobsCommand::Get { id } => {
            let (_, body) = find(api, &id).await?;
            print_json(&body);
            Ok(())
        }
        JobsCommand::Watch { id, follow } => {
            if let Some(out) = &follow.out {
                super::output::check(out)?;
            }
            let (dialect, body) = find(api, &id).await?;
            let session = match dialect {
                Dialect::Provider => body
                    .get("session_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            };
            let target = Target {
                dialect,
                id,
                session,
            };
            follow::wait(api, target, &follow, &mut Report::new(), None).await
        }
        JobsCommand::Cancel { id } => {
            let (dialect, _) = find(api, &id).await?;
            let request = api.request(Method::POST, &dialect.cancel_path(&id));
            let body = api.ok(request, &format!("cancelling job {id}")).await?;
            print_json(&body);
            Ok(())
        }
    }
}

/// The job's dialect and its status body.
async fn find(api: &Api, id: &str) -> anyhow::Result<(Dialect, Value)> {
    let probe = |dialect: Dialect| async move {
        let request = api.request(Method::GET, &dialect.status_path(id));
        let reply = api.call(request).await?;
        let found = reply.status == StatusCode::OK && dialect.id(&reply.body) == Some(id);
        if found {
            return Ok(Some((dialect, reply.body)));
        }
        if reply.status == StatusCode::OK || reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Err(reply.refusal(&format!("reading job {id}")))
    };
    let [gateway, video, provider] = Dialect::ALL;
    let (a, b, c) = tokio::join!(probe(gateway), probe(video), probe(provider));
    for found in [a, b, c] {
        if let Some(found) = found? {
            return Ok(found);
        }
    }
    Err(Exit::error(
        FAILED,
        format!("no job {id} in this account, in any dialect"),
    ))
}

/// One job of a list, the same whatever its dialect.
struct Listed {
    id: String,
    dialect: Dialect,
    status: String,
    progress: Option<u8>,
    created_at: String,
    item: Value,
}

async fn list(api: &Api, state: Option<State>, limit: u32) -> anyhow::Result<()> {
    let (video, gateway) = tokio::join!(
        list_dialect(api, Dialect::Video, state, limit),
        list_dialect(api, Dialect::Gateway, state, limit)
    );
    let mut jobs = video?;
    jobs.extend(gateway?);
    // Job ids are UUID v7: their text order is creation order.
    jobs.sort_by(|a, b| b.id.cmp(&a.id));
    jobs.truncate(limit as usize);
    if std::io::stdout().is_terminal() {
        print_table(&jobs);
    } else {
        let jobs: Vec<Value> = jobs
            .into_iter()
            .map(|j| {
                json!({
                    "id": j.id, "dialect": j.dialect.name(), "status": j.status,
                    "progress": j.progress, "createdAt": j.created_at, "job": j.item,
                })
            })
            .collect();
        print_line(&json!({ "jobs": jobs }));
    }
    Ok(())
}

/// Up to `limit` of a dialect's jobs, newest first, page by page.
async fn list_dialect(
    api: &Api,
    dialect: Dialect,
    state: Option<State>,
    limit: u32,
) -> anyhow::Result<Vec<Listed>> {
    let path = dialect.list_path().expect("a dialect with a list route");
    let mut jobs = Vec::new();
    let mut cursor: Option<String> = None;
    while jobs.len() < limit as usize {
        let page = (limit - jobs.len() as u32).min(PAGE);
        let mut query = vec![("limit", page.to_string())];
        if let Some(state) = state {
            query.push(("status", dialect.word(state).to_owned()));
        }
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let request = api.request(Method::GET, path).query(&query);
        let body = api.ok(request, &format!("listing jobs ({path})")).await?;
        let items = body.get("jobs").and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            let Some(id) = dialect.id(item) else { continue };
            jobs.push(Listed {
                id: id.to_owned(),
                dialect,
                status: dialect.status(item).to_owned(),
                progress: item
                    .get("progress")
                    .and_then(Value::as_u64)
                    .map(|p| p.min(100) as u8),
                created_at: item
                    .get("createdAt")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                item: item.clone(),
            });
        }
        cursor = body
            .get("nextCursor")
            .or_else(|| body.get("pagination").and_then(|p| p.get("nextCursor")))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() || items.is_none_or(Vec::is_empty) {
            break;
        }
    }
    Ok(jobs)
}

fn print_table(jobs: &[Listed]) {
    if jobs.is_empty() {
        eprintln!("no jobs");
        return;
    }
    println!(
        "{:<36}  {:<8}  {:<11}  {:>4}  {:<24}  WHAT",
        "ID", "DIALECT", "STATUS", "%", "CREATED"
    );
    for job in jobs {
        let what = job
            .item
            .get("model")
            .or_else(|| job.item.get("outputVideo"))
            .or_else(|| job.item.get("errorMessage"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let progress = job.progress.map(|p| p.to_string()).unwrap_or_default();
        println!(
            "{:<36}  {:<8}  {:<11}  {:>4}  {:<24}  {what}",
            job.id,
            job.dialect.name(),
            job.status,
            progress,
            job.created_at
        );
    }
}

/// A job on stdout: indented for a person, one line for a script.
fn print_json(body: &Value) {
    if std::io::stdout().is_terminal() {
        println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
    } else {
        print_line(body);
    }
}

fn parse_state(text: &str) -> Result<State, String> {
    State::parse(text).ok_or_else(|| {
        format!("{text:?} is no dialect's status (PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED, or a dialect's own word)")
    })
}

fn job_id(text: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(text)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| format!("{text:?} is not a job id (a UUID)"))
}
