-- Kept idempotency keys without an index on the key (sqlite/keys.rs).
--
-- A client's keys are in no particular order, so the primary key's index on
-- (account_id, key) put every kept key on a page of its own: one more WAL
-- frame per keyed submission, and a read of that index before each, on the
-- single writer's path. Keys now stay in the order they were kept (`id`), and
-- the one API process of a data directory — which already holds the keys in
-- flight — finds them through an index in its memory, loaded from this table.
CREATE TABLE idempotency_keys_kept (
    id          INTEGER PRIMARY KEY,
    account_id  TEXT NOT NULL,
    key         TEXT NOT NULL,
    -- SHA-256 of the request (method, path, body).
    fingerprint BLOB NOT NULL,
    status      INTEGER NOT NULL,
    body        BLOB NOT NULL,
    -- The (first) job the answer names.
    job_id      TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

INSERT INTO idempotency_keys_kept
    (account_id, key, fingerprint, status, body, job_id, created_at, expires_at)
SELECT account_id, key, fingerprint, status, body, job_id, created_at, expires_at
FROM idempotency_keys
WHERE state = 'kept' AND fingerprint IS NOT NULL AND status IS NOT NULL AND body IS NOT NULL
ORDER BY created_at;

DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_kept RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
