-- Idempotency keys (engine/src/idempotency.rs): a key kept with the answer
-- its submission got, written in the jobs' own transaction, replayed until
-- `expires_at`. `state` is 'kept' here; on PostgreSQL a key in flight is a
-- 'processing' row holding `token` until `locked_until` (on SQLite such a
-- claim lives in the API process's memory: sqlite/keys.rs).
CREATE TABLE idempotency_keys (
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    key          TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('processing', 'kept')),
    token        TEXT,
    locked_until INTEGER,
    -- SHA-256 of the request (method, path, body).
    fingerprint  BLOB,
    status       INTEGER,
    body         BLOB,
    -- The (first) job the answer names.
    job_id       TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
);

CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
