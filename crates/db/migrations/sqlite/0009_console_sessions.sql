-- Web console sessions: a signed-in browser holds a random token; only its
-- SHA-256 is stored, with the API key the session acts as. Revoking the key
-- ends its sessions (the lookup joins the key); signing out deletes the row.
CREATE TABLE console_sessions (
    token_hash BLOB PRIMARY KEY,
    key_id     TEXT NOT NULL REFERENCES api_keys (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
