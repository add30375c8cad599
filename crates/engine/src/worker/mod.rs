//! Workers run jobs. This module is what a renderer's author reads: the
//! [`Renderer`] trait (one typed input, from which the input's JSON Schema
//! is derived), what a job gets to work with ([`JobContext`]) and what it
//! hands back ([`ProducedOutput`]). The pool that claims and runs jobs is in
//! [`pool`].

mod models;
mod pool;
mod scratch;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::files::FileStore;
use crate::job::{Job, JobFailure, OutputKind, OutputRole};

pub use models::{ModelFile, ModelRunner};
pub use pool::{WorkerConfig, WorkerPool};

/// One kind of job with a typed input: the engine parses the job's input
/// into [`Renderer::Input`] (failing the job with `INVALID_INPUT`, naming the
/// field, when it does not fit) and checks its limits before calling
/// [`Renderer::render`]. The input's JSON Schema ([`input_schema`]) is what
/// the model catalog checks submissions against, so both sides read one type.
#[async_trait]
pub trait Renderer: Send + Sync + 'static {
    /// The job kind it runs.
    const KIND: &'static str;
    type Input: DeserializeOwned + JsonSchema + CheckLimits + Send + 'static;
    /// Produces the job's output files in `ctx.workdir()`. Must return soon
    /// after `ctx.cancel` fires (killing any subprocess it started).
    async fn render(
        &self,
        input: Self::Input,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure>;
}

/// The limits of an input that its type alone does not enforce (lengths,
/// ranges), as written on its fields for the JSON Schema; derived with
/// `#[derive(validator::Validate)]` through the blanket impl.
pub trait CheckLimits {
    /// `Err` names the field and the limit.
    fn check_limits(&self) -> Result<(), String>;
}

impl<T: validator::Validate> CheckLimits for T {
    fn check_limits(&self) -> Result<(), String> {
        self.validate().map_err(|errors| first_violation(&errors))
    }
}

/// `input.speed: must be at most 2` from validator's errors (the first, in
/// field order, so the message is stable).
fn first_violation(errors: &validator::ValidationErrors) -> String {
    let mut fields: Vec<_> = errors.field_errors().into_iter().collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let Some((field, list)) = fields.first() else {
        return "input: invalid".to_owned();
    };
    let detail = list
        .first()
        .map(|e| match &e.message {
            Some(message) => message.to_string(),
            None => describe(e),
        })
        .unwrap_or_else(|| "invalid".to_owned());
    format!("input.{field}: {detail}")
}

fn describe(error: &validator::ValidationError) -> String {
    let param = |name: &str| error.params.get(name).map(|v| v.to_string());
    match error.code.as_ref() {
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be from {min} to {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            (None, None) => "is out of range".to_owned(),
        },
        "length" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be {min} to {max} characters long"),
            (Some(min), None) => format!("must be at least {min} characters long"),
            (None, Some(max)) => format!("must be at most {max} characters long"),
            (None, None) => "has the wrong length".to_owned(),
        },
        code => format!("fails the {code} check"),
    }
}

/// The JSON Schema of a renderer's input, as the catalog serves it. The
/// root's title and description are the Rust type's name and doc comment,
/// written for this code's readers: the catalog describes models itself.
pub fn input_schema<R: Renderer>() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(R::Input)).expect("schemas serialize");
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
        root.remove("description");
    }
    schema
}

/// A check of a job's input at submission; `Err` names the field and says
/// what is wrong (`input.voice: …`).
pub type InputCheck = fn(&serde_json::Value) -> Result<(), String>;

/// The whole of what a renderer checks of its input before running: for
/// [`crate::Engine::set_input_checks`].
pub fn check_input<R: Renderer>(input: &serde_json::Value) -> Result<(), String> {
    parse_input::<R::Input>(input)
        .map(drop)
        .map_err(|failure| failure.message)
}

/// Parses a job's input as `T`, checking its limits; the error names the
/// field (`input.speed: invalid type: string "x", expected f64`).
pub fn parse_input<T: DeserializeOwned + CheckLimits>(
    input: &serde_json::Value,
) -> Result<T, JobFailure> {
    let invalid = |message: String| JobFailure::new("INVALID_INPUT", message);
    // serde would also read a struct from an array of its fields.
    if !input.is_object() {
        return Err(invalid("input: must be a JSON object".to_owned()));
    }
    let parsed: T = serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            invalid(format!("input: {}", e.inner()))
        } else {
            invalid(format!("input.{path}: {}", e.inner()))
        }
    })?;
    parsed.check_limits().map_err(invalid)?;
    Ok(parsed)
}

/// Runs one kind of job. [`Renderer`]s become handlers through [`typed`];
/// a handler whose input is not one type (a Cog model's input is whatever
/// its catalog entry says) implements this directly.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Produces the job's output files in `ctx.workdir()`. Must return soon
    /// after `ctx.cancel` fires (killing any subprocess it started).
    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure>;
}

struct Typed<R>(R);

#[async_trait]
impl<R: Renderer> JobHandler for Typed<R> {
    fn kind(&self) -> &'static str {
        R::KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Vec<ProducedOutput>, JobFailure> {
        let input = parse_input::<R::Input>(&ctx.job.input)?;
        self.0.render(input, ctx).await
    }
}

/// A renderer as the handler of its kind.
pub fn typed<R: Renderer>(renderer: R) -> Arc<dyn JobHandler> {
    Arc::new(Typed(renderer))
}

/// A file a handler produced, to be stored as one of the job's outputs.
#[derive(Debug, Clone)]
pub struct ProducedOutput {
    pub name: String,
    pub role: OutputRole,
    pub kind: OutputKind,
    pub content_type: String,
    pub path: PathBuf,
    /// Kept with the output (see [`crate::job::JobOutput::details`]).
    pub details: Option<serde_json::Value>,
}

/// What a handler gets to work with.
pub struct JobContext {
    pub job: Job,
    workdir: PathBuf,
    workdir_made: tokio::sync::OnceCell<()>,
    /// Fires when the job must stop (its owner cancelled it, shutdown past
    /// its grace period, or the lease was lost).
    pub cancel: CancellationToken,
    files: Arc<dyn FileStore>,
    progress: watch::Sender<u8>,
}

impl JobContext {
    /// Scratch space for this attempt, made on first use (a job that needs no
    /// files costs no directory) and removed after the attempt.
    pub async fn workdir(&self) -> Result<&Path, JobFailure> {
        self.make_workdir().await.map_err(|e| {
            JobFailure::new(
                "IO_ERROR",
                format!("could not create a work directory: {e}"),
            )
        })
    }

    async fn make_workdir(&self) -> io::Result<&Path> {
        self.workdir_made
            .get_or_try_init(|| tokio::fs::create_dir_all(&self.workdir))
            .await?;
        Ok(&self.workdir)
    }

    /// A readable local path of one of the job's input files.
    pub async fn input_path(&self, name: &str) -> io::Result<PathBuf> {
        let key = self.job.input_key(name);
        if let Some(path) = self.files.local_path(&key) {
            if tokio::fs::try_exists(&path).await? {
                return Ok(path);
            }
        }
        let dst = self.make_workdir().await?.join(format!("input-{name}"));
        self.files.fetch_to(&key, &dst).await?;
        Ok(dst)
    }

    /// Reports progress (0–99; 100 is reported by completion). Never moves
    /// backwards.
    pub fn set_progress(&self, pct: u8) {
        let pct = pct.min(99);
        self.progress.send_if_modified(|current| {
            let rises = pct > *current;
            if rises {
                *current = pct;
            }
            rises
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, JsonSchema, validator::Validate)]
    #[serde(deny_unknown_fields)]
    struct Card {
        #[validate(length(min = 1, max = 5))]
        text: String,
        #[validate(range(min = 0.5, max = 2.0))]
        speed: Option<f64>,
    }

    #[test]
    fn inputs_parse_with_their_limits_and_errors_name_the_field() {
        let card: Card = parse_input(&json!({"text": "hi", "speed": 1.5})).unwrap();
        assert_eq!((card.text.as_str(), card.speed), ("hi", Some(1.5)));
        let message = |input| parse_input::<Card>(&input).err().unwrap().message;
        assert_eq!(
            message(json!({"text": "hi", "speed": 3})),
            "input.speed: must be from 0.5 to 2.0"
        );
        assert_eq!(
            message(json!({"text": "", "speed": 1})),
            "input.text: must be 1 to 5 characters long"
        );
        assert!(message(json!({"text": 7})).starts_with("input.text: invalid type"));
        assert!(message(json!({"text": "x", "colour": "red"})).contains("colour"));
        let whole = message(json!("text"));
        assert_eq!(whole, "input: must be a JSON object");
        assert_eq!(message(json!(["hi", 1.0])), "input: must be a JSON object");
        let error = parse_input::<Card>(&json!({})).err().unwrap();
        assert_eq!(error.code, "INVALID_INPUT");
    }

    #[test]
    fn the_schema_carries_the_same_limits() {
        let schema = serde_json::to_value(schemars::schema_for!(Card)).unwrap();
        let text = &schema["properties"]["text"];
        assert_eq!(
            (text["minLength"].as_u64(), text["maxLength"].as_u64()),
            (Some(1), Some(5))
        );
        let speed = &schema["properties"]["speed"];
        assert_eq!(speed["minimum"], json!(0.5));
        assert_eq!(speed["maximum"], json!(2.0));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["required"], json!(["text"]));
    }
}
