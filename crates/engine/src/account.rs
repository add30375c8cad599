//! Accounts, API keys and the principal a request acts as.
//!
//! API keys are 256-bit random strings; only their SHA-256 is stored. A slow
//! password hash buys nothing for keys with that much entropy, and a plain
//! digest lets every request find its key with one indexed lookup.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::time::Millis;

pub use crate::ids::{AccountId, KeyId};

const API_KEY_PREFIX: &str = "genq_";
const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    /// Standard Webhooks form (`whsec_<base64>`); needed in clear to sign.
    pub webhook_secret: String,
    /// After a rotation, the old secret still signs until this time.
    pub previous_webhook_secret: Option<String>,
    pub previous_secret_valid_until: Option<Millis>,
    pub balance_micro_cents: i64,
    /// PENDING + PROCESSING jobs allowed at once; None: the server default.
    pub max_concurrent_jobs: Option<u32>,
    /// Slug patterns (`*` wildcard) of the models it may use; None: all.
    pub model_patterns: Option<Vec<String>>,
    pub created_at: Millis,
}

/// Options for a new account.
#[derive(Clone, Debug, Default)]
pub struct NewAccount {
    pub name: String,
    pub credits_micro_cents: i64,
    pub max_concurrent_jobs: Option<u32>,
    pub model_patterns: Option<Vec<String>>,
}

/// An API key as stored: the hash, never the key.
#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub account_id: AccountId,
    pub key_hash: Vec<u8>,
    /// What the key may do. The dialects name the scopes and decide which
    /// route needs which; the engine only stores them.
    pub scopes: Vec<String>,
    /// Slug patterns of the models this key may use; None: all the account may.
    pub model_patterns: Option<Vec<String>>,
    pub created_at: Millis,
}

/// An API key as its account's owner sees it in a list: never the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: KeyId,
    pub scopes: Vec<String>,
    pub model_patterns: Option<Vec<String>>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// Who a request acts as, once its API key has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub account_id: AccountId,
    pub key_id: KeyId,
    pub scopes: Vec<String>,
    /// The account's model restriction, if any.
    pub account_models: Option<Vec<String>>,
    /// The key's own model restriction, if any.
    pub key_models: Option<Vec<String>>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new raw API key and the hash to store for it.
pub fn generate_api_key() -> (String, Vec<u8>) {
    let raw = format!(
        "{API_KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    );
    let hash = hash_api_key(&raw);
    (raw, hash)
}

pub fn hash_api_key(raw: &str) -> Vec<u8> {
    Sha256::digest(raw.as_bytes()).to_vec()
}

pub fn generate_webhook_secret() -> String {
    format!(
        "{WEBHOOK_SECRET_PREFIX}{}",
        STANDARD.encode(random_bytes::<32>())
    )
}

/// An unguessable token for URLs that must work without an API key
/// (output downloads, share pages).
pub fn generate_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<24>())
}

/// A new web console session token and the hash to store for it. Like an
/// API key, it has 256 bits of entropy, so a plain digest is enough.
pub fn generate_session_token() -> (String, Vec<u8>) {
    let raw = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let hash = hash_session_token(&raw);
    (raw, hash)
}

pub fn hash_session_token(raw: &str) -> Vec<u8> {
    Sha256::digest(raw.as_bytes()).to_vec()
}

/// The CSRF token of a session: derived from its token, so nothing more is
/// stored and it dies with the session; labelled, so it is not the stored
/// hash.
pub fn session_csrf_token(raw_session: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"genq console csrf\0");
    digest.update(raw_session.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_deterministically() {
        let (a, ha) = generate_api_key();
        let (b, hb) = generate_api_key();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert!(a.starts_with("genq_") && a.len() > 40);
        assert_eq!(hash_api_key(&a), ha);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_from_the_stored_hash() {
        let (a, hash_a) = generate_session_token();
        let (b, _) = generate_session_token();
        assert_eq!(session_csrf_token(&a), session_csrf_token(&a));
        assert_ne!(session_csrf_token(&a), session_csrf_token(&b));
        assert_ne!(session_csrf_token(&a), URL_SAFE_NO_PAD.encode(hash_a));
    }

    #[test]
    fn webhook_secret_is_standard_webhooks_form() {
        let s = generate_webhook_secret();
        let b64 = s.strip_prefix("whsec_").expect("prefix");
        assert_eq!(STANDARD.decode(b64).expect("base64").len(), 32);
    }
}
