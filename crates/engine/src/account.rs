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
    fn webhook_secret_is_standard_webhooks_form() {
        let s = generate_webhook_secret();
        let b64 = s.strip_prefix("whsec_").expect("prefix");
        assert_eq!(STANDARD.decode(b64).expect("base64").len(), 32);
    }
}
