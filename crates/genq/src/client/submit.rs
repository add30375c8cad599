//! `genq submit video|model|provider`: one submission to its dialect's
//! route; its answer is printed, or, with `--wait` or `--out`, the job is
//! followed to its end.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use super::api::Api;
use super::dialect::Dialect;
use super::follow::{self, Target};
use super::report::{print_line, Report};
use super::{Exit, WaitArgs, FAILED};

#[derive(Subcommand)]
pub enum SubmitCommand {
    /// An image and an audio track to a video (Image+Audio Video API:
    /// POST /api/jobs)
    Video(VideoArgs),
    /// A job for a catalog model (Jobs v1 gateway: POST /v1/jobs/submit)
    Model(ModelArgs),
    /// A job of a Provider project (Provider template API: POST /jobs/v2)
    Provider(ProviderArgs),
}

#[derive(Args)]
pub struct VideoArgs {
    /// A JPEG, PNG or WebP image
    #[arg(long, value_parser = existing_file)]
    image: PathBuf,
    /// An MP3, WAV, M4A or OGG file
    #[arg(long, value_parser = existing_file)]
    audio: PathBuf,
    /// An https URL that receives the finished job, signed
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args)]
pub struct ModelArgs {
    /// The model's slug (GET /v1/models lists them), e.g.
    /// genq/title-card/text-to-video
    slug: String,
    /// The model's input: JSON, or @FILE (@- reads stdin)
    #[arg(long, value_name = "JSON|@FILE", value_parser = json_arg)]
    input: Value,
    /// An https URL that receives the finished job, signed
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args)]
pub struct ProviderArgs {
    /// The project's id (GET /api/provider/projects/active lists them)
    #[arg(long, value_name = "ID")]
    project: String,
    /// video, image, pdf, tts, photo_qc, ai_talking_video or
    /// ai_image_generation
    #[arg(long, value_name = "TYPE")]
    job_type: String,
    /// The values of the project's fields: JSON, or @FILE (@- reads stdin)
    #[arg(long, value_name = "JSON|@FILE", value_parser = json_arg)]
    values: Value,
    /// A correlation id: GET /events?session_id= follows the session's jobs
    #[arg(long, value_name = "S")]
    session_id: Option<String>,
    /// An https URL that receives the finished job, signed
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

pub async fn run(api: &Api, command: SubmitCommand) -> anyhow::Result<()> {
    let wait = match &command {
        SubmitCommand::Video(args) => &args.wait,
        SubmitCommand::Model(args) => &args.wait,
        SubmitCommand::Provider(args) => &args.wait,
    }
    .clone();
    if let Some(out) = &wait.follow.out {
        super::output::check(out)?;
    }
    let (target, response) = match command {
        SubmitCommand::Video(args) => video(api, args).await?,
        SubmitCommand::Model(args) => model(api, args).await?,
        SubmitCommand::Provider(args) => provider(api, args).await?,
    };
    if !wait.wait && wait.follow.out.is_none() {
        print_line(&response);
        return Ok(());
    }
    let mut report = Report::new();
    follow::wait(api, target, &wait.follow, &mut report, Some(&response)).await
}

async fn video(api: &Api, args: VideoArgs) -> anyhow::Result<(Target, Value)> {
    let mut form = Form::new()
        .part("image", file_part(&args.image).await?)
        .part("audio", file_part(&args.audio).await?);
    if let Some(url) = args.webhook_url {
        form = form.text("webhookUrl", url);
    }
    let request = api.request(Method::POST, "/api/jobs").multipart(form);
    let response = api.ok(request, "submitting the video").await?;
    let id = job_id(&response, &["jobId"])?;
    Ok((target(Dialect::Video, id, None), response))
}

async fn model(api: &Api, args: ModelArgs) -> anyhow::Result<(Target, Value)> {
    let mut body = json!({"model": args.slug, "input": args.input});
    if let Some(url) = args.webhook_url {
        body["webhookUrl"] = json!(url);
    }
    let request = api.request(Method::POST, "/v1/jobs/submit").json(&body);
    let response = api.ok(request, "submitting the model's job").await?;
    let id = job_id(&response, &["jobId"])?;
    Ok((target(Dialect::Gateway, id, None), response))
}

async fn provider(api: &Api, args: ProviderArgs) -> anyhow::Result<(Target, Value)> {
    let mut body = json!({
        "project_id": args.project,
        "job_type": args.job_type,
        "values": args.values,
    });
    if let Some(session) = &args.session_id {
        body["session_id"] = json!(session);
    }
    if let Some(url) = args.webhook_url {
        body["webhook_url"] = json!(url);
    }
    let request = api.request(Method::POST, "/jobs/v2").json(&body);
    let response = api.ok(request, "submitting the Provider job").await?;
    let id = job_id(&response, &["job", "uuid"])?;
    Ok((target(Dialect::Provider, id, args.session_id), response))
}

fn target(dialect: Dialect, id: String, session: Option<String>) -> Target {
    Target {
        dialect,
        id,
        session,
    }
}

/// The new job's id, at `path` in the submission's answer.
fn job_id(response: &Value, path: &[&str]) -> anyhow::Result<String> {
    path.iter()
        .try_fold(response, |v, key| v.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Exit::error(FAILED, format!("no job id in the answer: {response}")))
}

/// A file streamed into the form, named as it is on disk (the server goes
/// by its bytes, not its name).
async fn file_part(path: &Path) -> anyhow::Result<Part> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Exit::error(super::USAGE, format!("{}: {e}", path.display())))?;
    let len = file.metadata().await?.len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let name = path
        .file_name()
        .map_or_else(|| "upload".into(), |n| n.to_string_lossy().into_owned());
    Ok(Part::stream_with_length(body, len).file_name(name))
}

fn existing_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("no such file: {text}"))
    }
}

/// A JSON argument given inline or as `@FILE` (`@-`: stdin).
pub fn json_arg(text: &str) -> Result<Value, String> {
    let (source, json) = match text.strip_prefix('@') {
        Some("-") => {
            let mut json = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut json)
                .map_err(|e| format!("reading stdin: {e}"))?;
            ("stdin".to_owned(), json)
        }
        Some(file) => (
            file.to_owned(),
            std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?,
        ),
        None => ("the argument".to_owned(), text.to_owned()),
    };
    serde_json::from_str(&json).map_err(|e| format!("{source} is not JSON: {e}"))
}
