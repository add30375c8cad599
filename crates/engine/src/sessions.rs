//! What a signed-in web console does with an account beyond jobs: its
//! sessions, its keys and redelivering webhooks. Sessions act as the API key
//! they were opened with (same account, scopes and model restrictions), so
//! revoking the key ends them.

use std::time::Duration;

use crate::account::{generate_session_token, hash_session_token, ApiKeyInfo, Principal};
use crate::ids::{JobId, KeyId};
use crate::time::now_ms;
use crate::{Engine, EngineError};

impl Engine {
    /// Opens a session for a raw API key, valid for `ttl`. Returns the raw
    /// session token (only its hash is stored) and whom it acts as; None
    /// for an unknown or revoked key.
    pub async fn start_session(
        &self,
        raw_key: &str,
        ttl: Duration,
    ) -> Result<Option<(String, Principal)>, EngineError> {
        let Some(principal) = self.authenticate(raw_key).await? else {
            return Ok(None);
        };
        let (token, hash) = generate_session_token();
        let now = now_ms();
        let expires_at = now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        self.db()
            .insert_session(&hash, principal.key_id, expires_at, now)
            .await?;
        Ok(Some((token, principal)))
    }

    /// Whom a live session acts as; None when it expired, was ended, or its
    /// key was revoked.
    pub async fn session_principal(&self, token: &str) -> Result<Option<Principal>, EngineError> {
        Ok(self
            .db()
            .principal_for_session(&hash_session_token(token), now_ms())
            .await?)
    }

    pub async fn end_session(&self, token: &str) -> Result<(), EngineError> {
        Ok(self.db().delete_session(&hash_session_token(token)).await?)
    }

    /// The caller's account's keys, revoked ones too, newest first.
    pub async fn api_keys(&self, principal: &Principal) -> Result<Vec<ApiKeyInfo>, EngineError> {
        Ok(self.db().api_keys(principal.account_id).await?)
    }

    /// Revokes one of the caller's account's keys; another account's key is
    /// [`EngineError::NotFound`], as is one already revoked.
    pub async fn revoke_own_key(
        &self,
        principal: &Principal,
        key: KeyId,
    ) -> Result<(), EngineError> {
        if self
            .db()
            .revoke_account_key(principal.account_id, key, now_ms())
            .await?
        {
            Ok(())
        } else {
            Err(EngineError::NotFound)
        }
    }

    /// Makes one of the caller's job's webhook deliveries due now, under the
    /// same webhook id. Returns how many were queued (0: the job has no
    /// webhook yet, or its delivery is being attempted this moment).
    pub async fn redeliver_webhook(
        &self,
        principal: &Principal,
        id: JobId,
    ) -> Result<u64, EngineError> {
        let job = self.job(principal, id).await?;
        Ok(self
            .db()
            .redeliver(job.account_id, job.id, now_ms())
            .await?)
    }
}
