//! `genq accounts …` and `genq keys …`. Each prints exactly one JSON object
//! on stdout, so scripts can read it; logs go to stderr.

use anyhow::{bail, Context};
use clap::Subcommand;
use genq_engine::time::iso8601_ms;
use genq_engine::{AccountId, KeyId, ALL_SCOPES};
use serde_json::json;

use crate::config::{DataSettings, DatabaseArgs};

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Create an account and its first API key (holding every scope).
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Replace an account's webhook secret; the old one keeps signing during the overlap.
    RotateWebhookSecret {
        account_id: String,
        /// Hours the previous secret still signs deliveries [default: 24]
        #[arg(long, env = "GENQ_WEBHOOK_SECRET_OVERLAP_HOURS")]
        overlap_hours: Option<u64>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create another API key for an account.
    Create {
        #[arg(long)]
        account: String,
        /// Comma-separated scopes [default: all: submit_job,check_status]
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Revoke an API key; requests using it get 401 from now on.
    Revoke {
        key_id: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

fn print(value: serde_json::Value) {
    println!("{value}");
}

pub async fn accounts(command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Create { name, db } => {
            let engine = crate::open::engine(&DataSettings::load(&db)?).await?;
            let (account, _key_id, api_key) = engine.create_account(&name).await?;
            print(json!({
                "accountId": account.id.to_string(),
                "apiKey": api_key,
                "webhookSecret": account.webhook_secret,
            }));
        }
        AccountsCommand::RotateWebhookSecret {
            account_id,
            overlap_hours,
            db,
        } => {
            let account: AccountId = account_id.parse().context("not an account id")?;
            let hours = DataSettings::secret_overlap_hours(&db, overlap_hours)?;
            let engine = crate::open::engine(&DataSettings::load(&db)?).await?;
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

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            account,
            scopes,
            db,
        } => {
            let account: AccountId = account.parse().context("--account is not an account id")?;
            let scopes =
                scopes.unwrap_or_else(|| ALL_SCOPES.iter().map(|s| s.to_string()).collect());
            if let Some(unknown) = scopes.iter().find(|s| !ALL_SCOPES.contains(&s.as_str())) {
                bail!(
                    "unknown scope {unknown:?}; known scopes: {}",
                    ALL_SCOPES.join(", ")
                );
            }
            let engine = crate::open::engine(&DataSettings::load(&db)?).await?;
            let (key_id, api_key) = engine.create_key(account, scopes).await?;
            print(json!({ "keyId": key_id.to_string(), "apiKey": api_key }));
        }
        KeysCommand::Revoke { key_id, db } => {
            let key: KeyId = key_id.parse().context("not a key id")?;
            let engine = crate::open::engine(&DataSettings::load(&db)?).await?;
            if !engine.revoke_key(key).await? {
                bail!("no live key with id {key}");
            }
            print(json!({ "keyId": key.to_string(), "revoked": true }));
        }
    }
    Ok(())
}
