//! The `genq` command: `serve` runs everything; `accounts` and `keys` manage
//! who may call it; `projects` keeps the Provider dialect's templates.

mod admin;
mod check;
mod client;
mod config;
mod http;
mod metrics;
mod open;
mod projects;
mod render;
mod serve;
mod worker;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::IsTerminal;

use config::Settings;

#[derive(Parser)]
#[command(
    name = "genq",
    version,
    about = "A self-hosted media-generation job server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and in-process workers.
    Serve(Box<Settings>),
    /// Run workers only (API nodes run `genq serve --workers 0`).
    Worker(Box<worker::WorkerArgs>),
    /// Render an image and an audio track to an MP4, without a server.
    Render(render::RenderArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(admin::AccountsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Manage Provider projects (templates).
    #[command(subcommand)]
    Projects(projects::ProjectsCommand),
    /// Check that this node can run: database, storage, tools, disk, public URL.
    Check(Box<check::CheckArgs>),
    /// Submit a job to a running genq server and, with --wait, follow it.
    Submit(client::SubmitArgs),
    /// List, read, follow and cancel jobs on a running genq server.
    Jobs(client::JobsArgs),
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Settings are layered from what the command line and environment set,
    // as these matches tell.
    let mut leaf = &matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GENQ_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(_) => match config::load::<Settings>(leaf) {
                Ok(settings) => serve::run(settings).await,
                Err(e) => Err(e),
            },
            Command::Worker(args) => worker::run(*args, leaf).await,
            Command::Render(args) => render::run(args).await,
            Command::Accounts(cmd) => admin::accounts(cmd, leaf).await,
            Command::Keys(cmd) => admin::keys(cmd, leaf).await,
            Command::Projects(cmd) => projects::projects(cmd, leaf).await,
            Command::Check(args) => check::run(*args, leaf).await,
            Command::Submit(args) => client::submit(args).await,
            Command::Jobs(args) => client::jobs(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("genq: {e:#}");
            std::process::ExitCode::from(client::exit_code(&e))
        }
    }
}
