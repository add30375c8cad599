-- The schema of migrations/sqlite/0001–0004 in one step, with the same
-- columns and meanings so both backends behave alike: integer-millisecond
-- timestamps (BIGINT), UUID text ids, JSON as TEXT. Every integer is BIGINT
-- so rows decode into the engine's i64 fields without casts.
--
-- Ids are COLLATE "C": job ids are UUID v7 whose byte order is creation
-- order, and pagination (`id < cursor`) and claiming (`ORDER BY id`) rely on
-- it whatever the database's default collation is.
--
-- JSON stays TEXT rather than JSONB: the store never looks inside it, and
-- JSONB would refuse strings SQLite keeps (`\u0000`) and re-encode what
-- callers wrote.

CREATE TABLE accounts (
    id                          TEXT COLLATE "C" PRIMARY KEY,
    name                        TEXT NOT NULL,
    webhook_secret              TEXT NOT NULL,
    previous_webhook_secret     TEXT,
    previous_secret_valid_until BIGINT,
    balance_micro_cents         BIGINT NOT NULL DEFAULT 0,
    -- NULL: the server's default concurrency limit applies.
    max_concurrent_jobs         BIGINT,
    -- Comma-separated slug patterns (`*` wildcard); NULL: every model.
    model_patterns              TEXT,
    created_at                  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT COLLATE "C" PRIMARY KEY,
    account_id     TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    key_hash       BYTEA NOT NULL UNIQUE,
    scopes         TEXT NOT NULL,
    model_patterns TEXT,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);

CREATE TABLE jobs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    account_id       TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    api_key_id       TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id),
    kind             TEXT NOT NULL,
    dialect          TEXT NOT NULL,
    input            TEXT NOT NULL,
    input_files      TEXT NOT NULL,
    state            TEXT NOT NULL
        CHECK (state IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    progress         BIGINT NOT NULL DEFAULT 0,
    outputs          TEXT NOT NULL DEFAULT '[]',
    error_code       TEXT,
    error_message    TEXT,
    retries          BIGINT NOT NULL DEFAULT 0,
    -- Incremented by every claim; a worker's updates name the attempt they
    -- belong to, so a worker that lost its lease cannot touch the job.
    attempt          BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      BIGINT,
    webhook_url      TEXT,
    media_token      TEXT NOT NULL UNIQUE,
    share_token      TEXT NOT NULL UNIQUE,
    model            TEXT,
    model_version    TEXT,
    cost_micro_cents BIGINT NOT NULL DEFAULT 0,
    -- Set when a PROCESSING job is cancelled; its worker sees it on its next
    -- heartbeat and stops.
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    -- The fair-queue round (see migrations/sqlite/0004_fair_queue.sql).
    queue_round      BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    completed_at     BIGINT
);

CREATE INDEX jobs_by_account ON jobs (account_id, id);
CREATE INDEX jobs_by_account_state ON jobs (account_id, state, id);
CREATE INDEX jobs_by_account_model ON jobs (account_id, model, id);
CREATE INDEX jobs_active_by_key ON jobs (api_key_id) WHERE state IN ('PENDING', 'PROCESSING');
CREATE INDEX jobs_active_by_account ON jobs (account_id) WHERE state IN ('PENDING', 'PROCESSING');
CREATE INDEX jobs_pending ON jobs (id) WHERE state = 'PENDING';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'PROCESSING';
CREATE INDEX jobs_pending_by_round ON jobs (queue_round, id) WHERE state = 'PENDING';
CREATE INDEX jobs_pending_by_account_round ON jobs (account_id, queue_round) WHERE state = 'PENDING';
CREATE INDEX jobs_by_round ON jobs (queue_round);

-- One row per webhook a job owes its owner, written in the same transaction
-- as the job's terminal state change. `id` is the stable webhook-id.
CREATE TABLE webhook_deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    job_id          TEXT COLLATE "C" NOT NULL REFERENCES jobs (id),
    account_id      TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    url             TEXT NOT NULL,
    event           TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'PENDING';
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id);

CREATE TABLE webhook_attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at BIGINT NOT NULL,
    status_code  BIGINT,
    latency_ms   BIGINT NOT NULL,
    error        TEXT
);

CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);

-- Every change to a balance, so that their sum is always the balance.
CREATE TABLE ledger (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id         TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    job_id             TEXT COLLATE "C" REFERENCES jobs (id),
    amount_micro_cents BIGINT NOT NULL,
    reason             TEXT NOT NULL CHECK (reason IN ('credit', 'reserve', 'refund')),
    created_at         BIGINT NOT NULL
);

CREATE INDEX ledger_by_account ON ledger (account_id, id);
-- A job is refunded at most once, whatever happens above.
CREATE UNIQUE INDEX ledger_one_refund_per_job ON ledger (job_id) WHERE reason = 'refund';

-- Observed run time per model, for completion estimates.
CREATE TABLE model_stats (
    model      TEXT PRIMARY KEY,
    runs       BIGINT NOT NULL,
    avg_run_ms DOUBLE PRECISION NOT NULL
);
