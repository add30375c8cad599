//! Idempotent submissions: a client's `Idempotency-Key` (scoped to its
//! account) names one submission; a retry with the same key and the same
//! request gets the first answer again instead of a second job.
//!
//! A key's life: a request *claims* it (so a concurrent request with the
//! same key is told the first is still in progress), the job's own
//! transaction *keeps* it with the request's fingerprint and the answer
//! (so a job never exists without its key, nor a kept key without its
//! job), and a refused request *releases* it. A claim is a lease: a request
//! cut short by a crash frees its key within [`CLAIM_LEASE`].

use std::time::Duration;

use crate::ids::AccountId;
use crate::job::Job;
use crate::time::Millis;

/// How long a claim lasts without renewal; the request's holder renews it
/// every third of that while the request runs.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15);

/// The default time a kept answer is replayed: a day.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The longest key a client may send.
pub const MAX_KEY_CHARS: usize = 255;

/// A key as a client sent it, checked: 1–255 visible ASCII characters.
pub fn check_key(raw: &str) -> Result<&str, String> {
    if raw.is_empty() || raw.len() > MAX_KEY_CHARS || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"
        ));
    }
    Ok(raw)
}

/// An answer kept with its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptAnswer {
    /// SHA-256 of the request that got it (see the dialects' fingerprint).
    pub fingerprint: Vec<u8>,
    pub status: u16,
    /// The JSON body, byte for byte.
    pub body: Vec<u8>,
}

/// What claiming a key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is this request's until it is kept or released; `token`
    /// proves it.
    Claimed { token: String },
    /// A request with this key was answered (and is replayed).
    Kept(KeptAnswer),
    /// Another request with this key is still being processed.
    InProgress,
}

/// What a keyed submission hands the engine: the claim, the request's
/// fingerprint, and how the dialect answers, made from the job before it
/// is recorded so that the answer is kept in the job's own transaction.
pub struct KeyedSubmission {
    pub key: String,
    pub token: String,
    pub fingerprint: Vec<u8>,
    pub status: u16,
    pub answer: Answer,
}

/// Makes the answer's JSON body for the jobs about to be recorded.
pub type Answer = Box<dyn FnOnce(&[Job]) -> Vec<u8> + Send>;

impl std::fmt::Debug for KeyedSubmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedSubmission")
            .field("key", &self.key)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A key as the database keeps it with its job(s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptKey {
    pub account: AccountId,
    pub key: String,
    /// The claim it replaces: if another request took the key over (this
    /// one's claim expired), nothing is recorded.
    pub token: String,
    pub answer: KeptAnswer,
    /// The first job the answer names.
    pub job_id: String,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(check_key("order-1234_retry:1").is_ok());
        assert!(check_key(&"k".repeat(255)).is_ok());
        for bad in ["", " ", "with space", "é", "tab\there"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(256)).is_err());
    }
}
