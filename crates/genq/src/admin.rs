//! `genq accounts …` and `genq keys …`. Each prints exactly one JSON object
//! on stdout, so scripts can read it; logs go to stderr.

use anyhow::{bail, Context};
use clap::{ArgMatches, Subcommand};
use genq_engine::account::NewAccount;
use genq_engine::time::iso8601_ms;
use genq_engine::{AccountId, KeyId};
use serde_json::json;

use crate::config::{load, DataSettings, RotateSettings};

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Create an account and its first API key (holding every scope).
    Create {
        #[arg(long)]
        name: String,
        /// Opening balance, in micro-cents (1/1,000,000 of a dollar)
        #[arg(long, default_value_t = 0)]
        credits: i64,
        /// PENDING + PROCESSING model-gateway jobs allowed at once [default: the server's]
        #[arg(long)]
        max_concurrent_jobs: Option<u32>,
        /// Comma-separated model slug patterns the account may use (`*` wildcard) [default: all]
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        #[command(flatten)]
        db: DataSettings,
    },
    /// Add credits to an account (a negative amount removes them).
    Credit {
        account_id: String,
        /// Micro-cents (1/1,000,000 of a dollar)
        #[arg(allow_hyphen_values = true)]
        micro_cents: i64,
        #[command(flatten)]
        db: DataSettings,
    },
    /// Replace an account's webhook secret; the old one keeps signing during the overlap.
    RotateWebhookSecret {
        account_id: String,
        #[command(flatten)]
        settings: RotateSettings,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create another API key for an account.
    Create {
        #[arg(long)]
        account: String,
        /// Comma-separated scopes [default: every scope: check_status,submit_job]
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Comma-separated model slug patterns this key may use [default: all the account may]
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        #[command(flatten)]
        db: DataSettings,
    },
    /// Revoke an API key; requests using it get 401 from now on.
    Revoke {
        key_id: String,
        #[command(flatten)]
        db: DataSettings,
    },
}

fn print(value: serde_json::Value) {
    println!("{value}");
}

pub(crate) fn account_id(raw: &str) -> anyhow::Result<AccountId> {
    raw.parse()
        .with_context(|| format!("{raw:?} is not an account id"))
}

/// Every scope a key may hold: those some dialect checks.
fn all_scopes() -> Vec<String> {
    genq_dialects::known_scopes()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

pub async fn accounts(command: AccountsCommand, matches: &ArgMatches) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Create {
            name,
            credits,
            max_concurrent_jobs,
            models,
            db: _,
        } => {
            anyhow::ensure!(credits >= 0, "--credits cannot be negative");
            let engine = crate::open::admin_engine(&load(matches)?).await?;
            let new = NewAccount {
                name,
                credits_micro_cents: credits,
                max_concurrent_jobs,
                model_patterns: models,
            };
            let (account, _key_id, api_key) = engine.create_account(&new, all_scopes()).await?;
            print(json!({
                "accountId": account.id.to_string(),
                "apiKey": api_key,
                "webhookSecret": account.webhook_secret,
            }));
        }
        AccountsCommand::Credit {
            account_id: raw,
            micro_cents,
            db: _,
        } => {
            let account = account_id(&raw)?;
            let engine = crate::open::admin_engine(&load(matches)?).await?;
            let balance = engine.credit(account, micro_cents).await?;
            print(json!({ "accountId": account.to_string(), "balanceMicroCents": balance }));
        }
        AccountsCommand::RotateWebhookSecret {
            account_id: raw,
            settings: _,
        } => {
            let account = account_id(&raw)?;
            let settings: RotateSettings = load(matches)?;
            let hours = settings.webhook_secret_overlap_hours;
            let engine = crate::open::admin_engine(&settings.data).await?;
            let (secret, until) = engine
                .rotate_webhook_secret(account, std::time::Duration::from_secs(hours * 3600))
                .await?;
            print(json!({
                "accountId": account.to_string(),
                "webhookSecret": secret,
                "previousSecretValidUntil": iso8601_ms(until),
            }));
        }
    }
    Ok(())
}

pub async fn keys(command: KeysCommand, matches: &ArgMatches) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            account,
            scopes,
            models,
            db: _,
        } => {
            let account = account_id(&account)?;
            let known = all_scopes();
            let scopes = scopes.unwrap_or_else(|| known.clone());
            if let Some(unknown) = scopes.iter().find(|s| !known.contains(s)) {
                bail!(
                    "unknown scope {unknown:?}; known scopes: {}",
                    known.join(", ")
                );
            }
            let engine = crate::open::admin_engine(&load(matches)?).await?;
            let (key_id, api_key) = engine.create_key(account, scopes, models).await?;
            print(json!({ "keyId": key_id.to_string(), "apiKey": api_key }));
        }
        KeysCommand::Revoke { key_id, db: _ } => {
            let key: KeyId = key_id.parse().context("not a key id")?;
            let engine = crate::open::admin_engine(&load(matches)?).await?;
            if !engine.revoke_key(key).await? {
                bail!("no live key with id {key}");
            }
            print(json!({ "keyId": key.to_string(), "revoked": true }));
        }
    }
    Ok(())
}
