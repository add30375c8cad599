//! `genq submit …` and `genq jobs …`: a command-line client of a running
//! genq server, over the HTTP API its users call (docs/cli.md).
//!
//! Each submission goes to its dialect's own route; a job is followed over
//! its dialect's Server-Sent Events (the Provider's over the account-wide
//! `GET /events`), with a progress bar on a terminal and one JSON line per
//! event otherwise. Exit status: 0 completed, 1 failed or cancelled (or
//! refused), 2 a usage error, 3 the server cannot be reached or refused the
//! key, 130 interrupted without cancelling.

mod api;
mod dialect;
mod follow;
mod jobs;
mod output;
mod report;
mod submit;

use std::path::PathBuf;

use clap::Args;

pub use jobs::JobsCommand;
pub use submit::SubmitCommand;

/// Where the server is and the key to call it with.
#[derive(Args)]
pub struct ServerArgs {
    /// The genq server's base URL
    #[arg(
        long,
        env = "GENQ_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        help_heading = "Server"
    )]
    pub url: String,
    /// The API key (prefer the GENQ_API_KEY variable: a flag's value is
    /// visible to other users of the machine in the process list)
    #[arg(
        long,
        env = "GENQ_API_KEY",
        hide_env_values = true,
        global = true,
        help_heading = "Server"
    )]
    pub api_key: Option<String>,
}

/// `genq submit [--url …] KIND …`
#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: SubmitCommand,
}

/// `genq jobs [--url …] list|get|watch|cancel …`
#[derive(Args)]
pub struct JobsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: JobsCommand,
}

/// How a submission is followed.
#[derive(Args, Clone, Debug)]
pub struct WaitArgs {
    /// Follow the job to its end: a progress bar on a terminal, one JSON
    /// line per event otherwise; the exit status tells how it ended
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub follow: FollowArgs,
}

/// What to do while following a job, and with its outputs.
#[derive(Args, Clone, Debug)]
pub struct FollowArgs {
    /// Write the main output (video, audio, image, PDF) to PATH; an
    /// existing directory receives every output under its own name.
    /// Implies --wait
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// On Ctrl-C while waiting, cancel the job without asking
    #[arg(long)]
    pub cancel_on_interrupt: bool,
}

/// An ending with its own exit status (anything else exits 1).
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
    /// A transport failure, which may pass (the server restarting).
    pub transport: bool,
}

/// The job failed or was cancelled, or the server refused the request.
pub const FAILED: u8 = 1;
/// A usage error, as clap's own.
pub const USAGE: u8 = 2;
/// The server cannot be reached, or refused the credentials.
pub const UNREACHABLE: u8 = 3;
/// Ctrl-C while waiting, the job left running.
pub const INTERRUPTED: u8 = 130;

impl Exit {
    pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code,
            message: message.into(),
            transport: false,
        })
    }

    /// The server cannot be reached (an `UNREACHABLE` exit).
    pub fn transport(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: UNREACHABLE,
            message: message.into(),
            transport: true,
        })
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The exit status an error of a client command ends with.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    exit_of(error).map_or(FAILED, |exit| exit.code)
}

fn exit_of(error: &anyhow::Error) -> Option<&Exit> {
    error.chain().find_map(|e| e.downcast_ref::<Exit>())
}

/// Whether the error is the server being out of reach.
pub fn is_transport(error: &anyhow::Error) -> bool {
    exit_of(error).is_some_and(|exit| exit.transport)
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let api = api::Api::new(&args.server)?;
    submit::run(&api, args.command).await
}

pub async fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    let api = api::Api::new(&args.server)?;
    jobs::run(&api, args.command).await
}
