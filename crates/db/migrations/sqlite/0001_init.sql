-- Timestamps are integer milliseconds since the Unix epoch; ids are UUID
-- text (jobs use v7, so text order is creation order).

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    key_hash   BLOB NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    api_key_id    TEXT NOT NULL REFERENCES api_keys (id),
    kind          TEXT NOT NULL,
    dialect       TEXT NOT NULL,
    input         TEXT NOT NULL,
    input_files   TEXT NOT NULL,
    state         TEXT NOT NULL
        CHECK (state IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    progress      INTEGER NOT NULL DEFAULT 0,
    outputs       TEXT NOT NULL DEFAULT '[]',
    error_code    TEXT,
    error_message TEXT,
    retries       INTEGER NOT NULL DEFAULT 0,
    -- Incremented by every claim; a worker's updates name the attempt they
    -- belong to, so a worker that lost its lease cannot touch the job.
    attempt       INTEGER NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_until   INTEGER,
    webhook_url   TEXT,
    media_token   TEXT NOT NULL UNIQUE,
    share_token   TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    completed_at  INTEGER
);

CREATE INDEX jobs_by_account ON jobs (account_id, id);
CREATE INDEX jobs_by_account_state ON jobs (account_id, state, id);
CREATE INDEX jobs_active_by_key ON jobs (api_key_id) WHERE state IN ('PENDING', 'PROCESSING');
CREATE INDEX jobs_pending ON jobs (id) WHERE state = 'PENDING';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'PROCESSING';
