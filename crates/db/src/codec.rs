//! Rows to engine types, once for both backends: every row decoder reads
//! through [`Columns`], which sqlx's SQLite and PostgreSQL rows and
//! rusqlite's rows (the SQLite inline reads) all implement. Column types are
//! the same on both backends (integers are 64-bit, text is text, booleans
//! are 0/1 in SQLite), so one decoder serves every query that selects the
//! same columns.

use std::str::FromStr;

use genq_engine::account::{Account, Principal};
use genq_engine::db::{DbError, DbResult, LedgerEntry};
use genq_engine::webhook::{Attempt, Delivery, DeliveryRecord};
use genq_engine::{AccountId, Job, JobEvent, JobFailure, ModelRef, Project};

/// The columns [`job_from_row`] reads, in the order every `SELECT` of a job
/// lists them.
pub(crate) const JOB_COLUMNS: &str = "id, account_id, api_key_id, kind, dialect, input, \
    input_files, state, progress, outputs, error_code, error_message, retries, webhook_url, \
    model, model_version, cost_micro_cents, media_token, share_token, correlation_id, \
    priority, timeout_ms, deadline_at, inputs_deleted_at, outputs_deleted_at, created_at, \
    updated_at, started_at, completed_at";

/// The columns [`event_from_row`] reads.
pub(crate) const EVENT_COLUMNS: &str =
    "id, account_id, dialect, state, progress, correlation_id, cancel_requested, updated_at";

pub(crate) fn db_err<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl Fn(E) -> DbError {
    move |e| DbError::new(what, e)
}

pub(crate) fn parse<T: FromStr>(value: &str, what: &str) -> DbResult<T> {
    value
        .parse()
        .map_err(|_| DbError::other(format!("corrupt {what} in database: {value:?}")))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(value: &str, what: &str) -> DbResult<T> {
    serde_json::from_str(value).map_err(|e| DbError::new(format!("corrupt {what} in database"), e))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("engine types serialize")
}

/// Comma-separated patterns as stored; NULL means "no restriction".
pub(crate) fn patterns_from(value: Option<String>) -> Option<Vec<String>> {
    value.map(|v| {
        v.split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

pub(crate) fn patterns_to(patterns: &Option<Vec<String>>) -> Option<String> {
    patterns.as_ref().map(|p| p.join(","))
}

/// PostgreSQL refuses NUL in text; SQLite keeps it. Free text from outside
/// (renderer errors, webhook receivers' errors) loses NULs on both, rather
/// than a state change that carries it failing on one.
pub(crate) fn text(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('\0') {
        value.replace('\0', "\u{FFFD}").into()
    } else {
        value.into()
    }
}

/// A row's columns by name.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> DbResult<String>;
    fn opt_text(&self, name: &str) -> DbResult<Option<String>>;
    fn int(&self, name: &str) -> DbResult<i64>;
    fn opt_int(&self, name: &str) -> DbResult<Option<i64>>;
    fn flag(&self, name: &str) -> DbResult<bool>;
}

macro_rules! sqlx_columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, name: &str) -> DbResult<String> {
                sqlx::Row::try_get(self, name).map_err(db_err("reading a row"))
            }
            fn opt_text(&self, name: &str) -> DbResult<Option<String>> {
                sqlx::Row::try_get(self, name).map_err(db_err("reading a row"))
            }
            fn int(&self, name: &str) -> DbResult<i64> {
                sqlx::Row::try_get(self, name).map_err(db_err("reading a row"))
            }
            fn opt_int(&self, name: &str) -> DbResult<Option<i64>> {
                sqlx::Row::try_get(self, name).map_err(db_err("reading a row"))
            }
            fn flag(&self, name: &str) -> DbResult<bool> {
                sqlx::Row::try_get(self, name).map_err(db_err("reading a row"))
            }
        }
    };
}

sqlx_columns!(sqlx::sqlite::SqliteRow);
sqlx_columns!(sqlx::postgres::PgRow);

impl Columns for rusqlite::Row<'_> {
    fn text(&self, name: &str) -> DbResult<String> {
        self.get(name).map_err(db_err("reading a row"))
    }
    fn opt_text(&self, name: &str) -> DbResult<Option<String>> {
        self.get(name).map_err(db_err("reading a row"))
    }
    fn int(&self, name: &str) -> DbResult<i64> {
        self.get(name).map_err(db_err("reading a row"))
    }
    fn opt_int(&self, name: &str) -> DbResult<Option<i64>> {
        self.get(name).map_err(db_err("reading a row"))
    }
    fn flag(&self, name: &str) -> DbResult<bool> {
        self.get(name).map_err(db_err("reading a row"))
    }
}

/// A job from the [`JOB_COLUMNS`] of a row.
pub(crate) fn job_from_row(row: &impl Columns) -> DbResult<Job> {
    let error_message = row.opt_text("error_message")?;
    let model_version = row.opt_text("model_version")?;
    Ok(Job {
        id: parse(&row.text("id")?, "job id")?,
        account_id: parse(&row.text("account_id")?, "account id")?,
        api_key_id: parse(&row.text("api_key_id")?, "key id")?,
        kind: row.text("kind")?,
        dialect: row.text("dialect")?,
        input: json(&row.text("input")?, "job input")?,
        input_files: json(&row.text("input_files")?, "job input files")?,
        state: parse(&row.text("state")?, "job state")?,
        progress: row.int("progress")?.clamp(0, 100) as u8,
        outputs: json(&row.text("outputs")?, "job outputs")?,
        failure: row
            .opt_text("error_code")?
            .map(|code| JobFailure::new(code, error_message.unwrap_or_default())),
        retries: row.int("retries")? as u32,
        webhook_url: row.opt_text("webhook_url")?,
        model: row.opt_text("model")?.map(|slug| ModelRef {
            slug,
            version: model_version.unwrap_or_default(),
        }),
        cost_micro_cents: row.int("cost_micro_cents")?,
        media_token: row.text("media_token")?,
        share_token: row.text("share_token")?,
        correlation_id: row.opt_text("correlation_id")?,
        priority: row
            .int("priority")?
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        timeout_ms: row.opt_int("timeout_ms")?,
        deadline_at: row.opt_int("deadline_at")?,
        inputs_deleted_at: row.opt_int("inputs_deleted_at")?,
        outputs_deleted_at: row.opt_int("outputs_deleted_at")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        started_at: row.opt_int("started_at")?,
        completed_at: row.opt_int("completed_at")?,
    })
}

/// A job's present state as an event, from the [`EVENT_COLUMNS`] of a row.
pub(crate) fn event_from_row(row: &impl Columns) -> DbResult<JobEvent> {
    Ok(JobEvent {
        job_id: parse(&row.text("id")?, "job id")?,
        account_id: parse(&row.text("account_id")?, "account id")?,
        dialect: row.text("dialect")?,
        state: parse(&row.text("state")?, "job state")?,
        progress: row.int("progress")?.clamp(0, 100) as u8,
        correlation_id: row.opt_text("correlation_id")?,
        cancel_requested: row.flag("cancel_requested")?,
        at: row.int("updated_at")?,
        job: None,
    })
}

/// The live key with a given hash (`$1`), with its account's restrictions.
pub(crate) const PRINCIPAL_BY_KEY_HASH: &str = "SELECT k.id, k.account_id, k.scopes, \
    k.model_patterns AS key_models, a.model_patterns AS account_models \
    FROM api_keys k JOIN accounts a ON a.id = k.account_id \
    WHERE k.key_hash = $1 AND k.revoked_at IS NULL";

pub(crate) fn principal_from_row(row: &impl Columns) -> DbResult<Principal> {
    Ok(Principal {
        key_id: parse(&row.text("id")?, "key id")?,
        account_id: parse(&row.text("account_id")?, "account id")?,
        scopes: row
            .text("scopes")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        account_models: patterns_from(row.opt_text("account_models")?),
        key_models: patterns_from(row.opt_text("key_models")?),
    })
}

pub(crate) const ACCOUNT_BY_ID: &str = "SELECT name, webhook_secret, previous_webhook_secret, \
    previous_secret_valid_until, balance_micro_cents, max_concurrent_jobs, model_patterns, \
    created_at FROM accounts WHERE id = $1";

pub(crate) fn account_from_row(id: AccountId, row: &impl Columns) -> DbResult<Account> {
    Ok(Account {
        id,
        name: row.text("name")?,
        webhook_secret: row.text("webhook_secret")?,
        previous_webhook_secret: row.opt_text("previous_webhook_secret")?,
        previous_secret_valid_until: row.opt_int("previous_secret_valid_until")?,
        balance_micro_cents: row.int("balance_micro_cents")?,
        max_concurrent_jobs: row.opt_int("max_concurrent_jobs")?.map(|n| n as u32),
        model_patterns: patterns_from(row.opt_text("model_patterns")?),
        created_at: row.int("created_at")?,
    })
}

pub(crate) const LEDGER_OF_ACCOUNT: &str = "SELECT job_id, amount_micro_cents, reason, \
    created_at FROM ledger WHERE account_id = $1 ORDER BY id";

pub(crate) fn ledger_entry_from_row(row: &impl Columns) -> DbResult<LedgerEntry> {
    Ok(LedgerEntry {
        job_id: row
            .opt_text("job_id")?
            .map(|j| parse(&j, "job id"))
            .transpose()?,
        amount_micro_cents: row.int("amount_micro_cents")?,
        reason: row.text("reason")?,
        created_at: row.int("created_at")?,
    })
}

/// The columns [`delivery_from_row`] reads.
pub(crate) const DELIVERY_COLUMNS: &str = "id, job_id, account_id, url, attempts";

pub(crate) fn delivery_from_row(row: &impl Columns) -> DbResult<Delivery> {
    Ok(Delivery {
        id: row.text("id")?,
        job_id: parse(&row.text("job_id")?, "job id")?,
        account_id: parse(&row.text("account_id")?, "account id")?,
        url: row.text("url")?,
        attempts: row.int("attempts")? as u32,
    })
}

pub(crate) const DELIVERIES_OF_JOB: &str = "SELECT id, url, event, state, next_attempt_at, \
    created_at, delivered_at FROM webhook_deliveries \
    WHERE account_id = $1 AND job_id = $2 ORDER BY created_at, id";

/// A delivery without its attempts (see [`ATTEMPTS_OF_DELIVERY`]).
pub(crate) fn delivery_record_from_row(row: &impl Columns) -> DbResult<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: row.text("id")?,
        url: row.text("url")?,
        event: row.text("event")?,
        state: parse(&row.text("state")?, "delivery state")?,
        next_attempt_at: row.opt_int("next_attempt_at")?,
        created_at: row.int("created_at")?,
        delivered_at: row.opt_int("delivered_at")?,
        attempts: Vec::new(),
    })
}

pub(crate) const ATTEMPTS_OF_DELIVERY: &str = "SELECT attempted_at, status_code, latency_ms, \
    error FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id";

pub(crate) fn attempt_from_row(row: &impl Columns) -> DbResult<Attempt> {
    Ok(Attempt {
        attempted_at: row.int("attempted_at")?,
        status_code: row.opt_int("status_code")?.map(|c| c as u16),
        latency_ms: row.int("latency_ms")?,
        error: row.opt_text("error")?,
    })
}

/// The columns [`project_from_row`] reads.
const PROJECT_COLUMNS: &str =
    "id, account_id, name, kind, starts_at, ends_at, template, created_at, updated_at";

pub(crate) static PROJECT_BY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1 AND account_id = $2")
});

pub(crate) static PROJECTS_OF_ACCOUNT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE account_id = $1 ORDER BY id")
    });

pub(crate) fn project_from_row(row: &impl Columns) -> DbResult<Project> {
    Ok(Project {
        id: parse(&row.text("id")?, "project id")?,
        account_id: parse(&row.text("account_id")?, "account id")?,
        name: row.text("name")?,
        kind: row.text("kind")?,
        starts_at: row.opt_int("starts_at")?,
        ends_at: row.opt_int("ends_at")?,
        template: row.text("template")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn key_info_from_row(row: &impl Columns) -> DbResult<genq_engine::account::ApiKeyInfo> {
    Ok(genq_engine::account::ApiKeyInfo {
        id: parse(&row.text("id")?, "key id")?,
        scopes: row
            .text("scopes")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        model_patterns: patterns_from(row.opt_text("model_patterns")?),
        created_at: row.int("created_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}
