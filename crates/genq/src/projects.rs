//! `genq projects …`: Provider projects from template files, without a
//! server. Each prints one JSON value on stdout.

use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgMatches, Subcommand};
use genq_dialects::provider::{project_from_template, wire::ProjectSummary};
use genq_template::Fonts;
use serde_json::json;

use crate::config::{load, DataSettings};

#[derive(Subcommand)]
pub enum ProjectsCommand {
    /// Create a project from a template file (docs/templates.md).
    Create {
        #[arg(long)]
        account: String,
        /// The template, as JSON
        #[arg(long)]
        file: PathBuf,
        /// A directory of brand fonts the template may name, besides the system's
        #[arg(long, env = "GENQ_FONTS_DIR")]
        fonts_dir: Option<PathBuf>,
        #[command(flatten)]
        db: DataSettings,
    },
    /// List an account's projects, active or not.
    List {
        #[arg(long)]
        account: String,
        #[command(flatten)]
        db: DataSettings,
    },
}

pub async fn projects(command: ProjectsCommand, matches: &ArgMatches) -> anyhow::Result<()> {
    match command {
        ProjectsCommand::Create {
            account,
            file,
            fonts_dir,
            db: _,
        } => {
            let account = crate::admin::account_id(&account)?;
            let text =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let fonts = Fonts::load(&fonts_dir.into_iter().collect::<Vec<_>>());
            let new = project_from_template(&text, &fonts)
                .map_err(|e| anyhow::anyhow!("{}: invalid template: {e}", file.display()))?;
            let engine = crate::open::admin_engine(&load(matches)?).await?;
            engine.account(account).await.context("no such account")?;
            let project = engine.create_project(account, new).await?;
            println!("{}", json!({ "projectId": project.id.to_string() }));
        }
        ProjectsCommand::List { account, db: _ } => {
            let account = crate::admin::account_id(&account)?;
            let engine = crate::open::admin_engine(&load(matches)?).await?;
            let projects: Vec<ProjectSummary> = engine
                .projects(account)
                .await?
                .iter()
                .map(ProjectSummary::of)
                .collect();
            println!("{}", serde_json::to_string(&projects)?);
        }
    }
    Ok(())
}
