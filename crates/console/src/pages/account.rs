//! The Account page: credits, the ledger, and the account's API keys
//! (create, shown once; revoke).

use askama::Template;
use axum::extract::RawForm;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use genq_dialects::known_scopes;
use genq_engine::KeyId;

use crate::error::PageError;
use crate::session::{CsrfOnly, Signed};
use crate::view::{dollars, html, when, Layout};
use crate::Console;

struct LedgerRow {
    at: String,
    reason: String,
    amount: String,
    job: String,
}

struct KeyRow {
    id: String,
    scopes: String,
    models: String,
    created: String,
    revoked: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    name: String,
    credits: String,
    active_jobs: u64,
    ledger: Vec<LedgerRow>,
    keys: Vec<KeyRow>,
    /// Scopes the session's key holds: what a new key may be given.
    scopes: Vec<&'static str>,
    /// A key just made: shown on this one answer only.
    new_key: String,
}

/// Most ledger rows the page shows (newest first).
const LEDGER_ROWS: usize = 200;

async fn render(
    console: &Console,
    signed: &Signed,
    new_key: String,
) -> Result<Response, PageError> {
    let engine = &console.app.engine;
    let account = engine.account(signed.principal.account_id).await?;
    let mut ledger = engine.ledger(account.id).await?;
    ledger.reverse();
    ledger.truncate(LEDGER_ROWS);
    let keys = engine.api_keys(&signed.principal).await?;
    let page = AccountPage {
        layout: signed.layout("Account", "Account"),
        name: account.name,
        credits: dollars(account.balance_micro_cents),
        active_jobs: engine.active_jobs(account.id).await?,
        ledger: ledger
            .into_iter()
            .map(|entry| LedgerRow {
                at: when(entry.created_at),
                reason: entry.reason,
                amount: dollars(entry.amount_micro_cents),
                job: entry.job_id.map(|j| j.to_string()).unwrap_or_default(),
            })
            .collect(),
        keys: keys
            .into_iter()
            .map(|key| KeyRow {
                current: key.id == signed.principal.key_id,
                id: key.id.to_string(),
                scopes: key.scopes.join(", "),
                models: key
                    .model_patterns
                    .map(|p| p.join(", "))
                    .unwrap_or_else(|| "all".to_owned()),
                created: when(key.created_at),
                revoked: key.revoked_at.map(when).unwrap_or_default(),
            })
            .collect(),
        scopes: known_scopes()
            .into_iter()
            .filter(|s| signed.principal.has_scope(s))
            .collect(),
        new_key,
    };
    Ok(html(StatusCode::OK, page.render()?))
}

pub(crate) async fn page(
    State(console): State<Console>,
    signed: Signed,
) -> Result<Response, PageError> {
    render(&console, &signed, String::new()).await
}

/// `csrf` and one `scope` field per box ticked.
pub(crate) async fn create_key(
    State(console): State<Console>,
    signed: Signed,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    let mut csrf = String::new();
    let mut scopes = Vec::new();
    for (name, value) in url::form_urlencoded::parse(&body) {
        match name.as_ref() {
            "csrf" => csrf = value.into_owned(),
            "scope" => scopes.push(value.into_owned()),
            _ => {}
        }
    }
    signed.check_csrf(&csrf)?;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(PageError::BadRequest(
            "Choose at least one scope for the new key.".to_owned(),
        ));
    }
    if let Some(scope) = scopes.iter().find(|s| !signed.principal.has_scope(s)) {
        return Err(PageError::BadRequest(format!(
            "The key you signed in with does not hold {scope:?}, so it cannot give it to a new key."
        )));
    }
    // A new key is never less restricted than the one that made it.
    let models = signed.principal.key_models.clone();
    let (_, raw) = console
        .app
        .engine
        .create_key(signed.principal.account_id, scopes, models)
        .await?;
    render(&console, &signed, raw).await
}

pub(crate) async fn revoke_key(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    form: CsrfOnly,
) -> Result<Response, PageError> {
    signed.check_csrf(form.token())?;
    let id: KeyId = id.parse().map_err(|_| PageError::NotFound)?;
    console
        .app
        .engine
        .revoke_own_key(&signed.principal, id)
        .await?;
    Ok(Redirect::to("/console/account#keys").into_response())
}
