-- Web console sessions: as migrations/sqlite/0009_console_sessions.sql.
CREATE TABLE console_sessions (
    token_hash BYTEA PRIMARY KEY,
    key_id     TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
