-- Credits, the ledger, per-account limits, model restrictions, and what the
-- model gateway records on a job.

ALTER TABLE accounts ADD COLUMN balance_micro_cents INTEGER NOT NULL DEFAULT 0;
-- NULL: the server's default concurrency limit applies.
ALTER TABLE accounts ADD COLUMN max_concurrent_jobs INTEGER;
-- Comma-separated slug patterns (`*` wildcard); NULL: every model.
ALTER TABLE accounts ADD COLUMN model_patterns TEXT;
ALTER TABLE api_keys ADD COLUMN model_patterns TEXT;

ALTER TABLE jobs ADD COLUMN model TEXT;
ALTER TABLE jobs ADD COLUMN model_version TEXT;
ALTER TABLE jobs ADD COLUMN cost_micro_cents INTEGER NOT NULL DEFAULT 0;
-- Set when a PROCESSING job is cancelled; its worker sees it on its next
-- heartbeat and stops.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_by_account_model ON jobs (account_id, model, id);
CREATE INDEX jobs_active_by_account ON jobs (account_id) WHERE state IN ('PENDING', 'PROCESSING');

-- Every change to a balance, so that their sum is always the balance.
CREATE TABLE ledger (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    job_id             TEXT REFERENCES jobs (id),
    amount_micro_cents INTEGER NOT NULL,
    reason             TEXT NOT NULL CHECK (reason IN ('credit', 'reserve', 'refund')),
    created_at         INTEGER NOT NULL
);

CREATE INDEX ledger_by_account ON ledger (account_id, id);
-- A job is refunded at most once, whatever happens above.
CREATE UNIQUE INDEX ledger_one_refund_per_job ON ledger (job_id) WHERE reason = 'refund';

-- Observed run time per model, for completion estimates.
CREATE TABLE model_stats (
    model      TEXT PRIMARY KEY,
    runs       INTEGER NOT NULL,
    avg_run_ms REAL NOT NULL
);
