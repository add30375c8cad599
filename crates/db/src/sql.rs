//! Statements that are the same text on both backends. They use `$N`
//! placeholders, which PostgreSQL numbers natively and sqlx's SQLite driver
//! binds by the same numbers (SQLite names them `$1`, `$2`, …; sqlx maps
//! each name to its argument). NULL checks cast the parameter
//! (`CAST($2 AS TEXT) IS NULL`) so PostgreSQL can type an absent filter.
//! The hot paths that differ for measured reasons (submission, claims,
//! outcomes, the SQLite inline reads) keep their own statements.

use std::sync::LazyLock;

use crate::codec::JOB_COLUMNS;

pub(crate) const INSERT_ACCOUNT: &str = "INSERT INTO accounts \
    (id, name, webhook_secret, max_concurrent_jobs, model_patterns, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6)";

/// Moves a balance; answers with the new balance (no row: no account).
pub(crate) const MOVE_BALANCE: &str = "UPDATE accounts \
    SET balance_micro_cents = balance_micro_cents + $1 WHERE id = $2 \
    RETURNING balance_micro_cents";

/// An entry belongs to its job's current run (0 without a job).
pub(crate) const INSERT_LEDGER: &str = "INSERT INTO ledger \
    (account_id, job_id, amount_micro_cents, reason, created_at, run) \
    VALUES ($1, $2, $3, $4, $5, COALESCE((SELECT run FROM jobs WHERE id = $2), 0))";

pub(crate) const COUNT_ACTIVE: &str = "SELECT count(*) FROM jobs \
    WHERE account_id = $1 AND state IN ('PENDING', 'PROCESSING')";

pub(crate) const COUNT_ACCOUNTS: &str = "SELECT count(*) FROM accounts";

pub(crate) const ROTATE_SECRET: &str = "UPDATE accounts SET \
    previous_webhook_secret = webhook_secret, previous_secret_valid_until = $1, \
    webhook_secret = $2 WHERE id = $3";

pub(crate) const INSERT_KEY: &str = "INSERT INTO api_keys \
    (id, account_id, key_hash, scopes, model_patterns, created_at) VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const REVOKE_KEY: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

pub(crate) const MODEL_RUN_MS: &str = "SELECT avg_run_ms FROM model_stats WHERE model = $1";

/// The answer kept with an unexpired idempotency key (`$1` account, `$2`
/// key, `$3` now).
pub(crate) const KEPT_KEY: &str = "SELECT fingerprint, status, body FROM idempotency_keys \
    WHERE account_id = $1 AND key = $2 AND state = 'kept' AND expires_at > $3";

/// Forgets expired kept keys, and claims of requests long gone (`$1` now).
pub(crate) const DELETE_EXPIRED_KEYS: &str = "DELETE FROM idempotency_keys WHERE expires_at <= $1";

/// PENDING jobs whose deadline passed (`$1`: now), at most a sweep's worth.
pub(crate) const OVERDUE_JOBS: &str = "SELECT id, timeout_ms FROM jobs \
    WHERE state = 'PENDING' AND deadline_at <= $1 ORDER BY account_id, id LIMIT 500";

/// PENDING → FAILED for one overdue job: `$1` code, `$2` message, `$3` now, `$4` id.
pub(crate) static FAIL_OVERDUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = 'FAILED', error_code = $1, error_message = $2, \
         completed_at = $3, updated_at = $3 WHERE id = $4 AND state = 'PENDING' \
         RETURNING {JOB_COLUMNS}"
    )
});

pub(crate) const COUNT_PENDING: &str = "SELECT count(*) FROM jobs WHERE state = 'PENDING'";

/// One job by one of its tokens (`$1`).
pub(crate) static JOB_BY_MEDIA_TOKEN: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM jobs WHERE media_token = $1"));
pub(crate) static JOB_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"));

pub(crate) static JOB_BY_SHARE_TOKEN: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM jobs WHERE share_token = $1"));

/// A page of an account's jobs (`$1`), newest first. An absent filter binds
/// NULL and drops out: `$2` before this id, `$3` state, `$4` model,
/// `$5` dialect, `$6` correlation id, `$7` in flight or finished since; `$8`
/// the limit.
pub(crate) static JOB_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR id < $2) \
         AND (CAST($3 AS TEXT) IS NULL OR state = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR model = $4) \
         AND (CAST($5 AS TEXT) IS NULL OR dialect = $5) \
         AND (CAST($6 AS TEXT) IS NULL OR correlation_id = $6) \
         AND (CAST($7 AS BIGINT) IS NULL OR state IN ('PENDING', 'PROCESSING') \
              OR completed_at >= $7) \
         ORDER BY id DESC LIMIT $8"
    )
});

/// PENDING → CANCELLED for job `$2` of account `$3` (of dialect `$4`, when
/// not NULL) at `$1`.
pub(crate) static CANCEL_PENDING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = 'CANCELLED', updated_at = $1, completed_at = $1 \
         WHERE id = $2 AND account_id = $3 AND (CAST($4 AS TEXT) IS NULL OR dialect = $4) \
         AND state = 'PENDING' RETURNING {JOB_COLUMNS}"
    )
});

/// Marks a PROCESSING job for its worker to stop (parameters as above).
pub(crate) static REQUEST_CANCEL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET cancel_requested = TRUE, updated_at = $1 \
         WHERE id = $2 AND account_id = $3 AND (CAST($4 AS TEXT) IS NULL OR dialect = $4) \
         AND state = 'PROCESSING' RETURNING {JOB_COLUMNS}"
    )
});

/// The state of job `$1` of account `$2` (of dialect `$3`, when not NULL).
pub(crate) const STATE_OF_JOB: &str = "SELECT state, inputs_deleted_at FROM jobs \
    WHERE id = $1 AND account_id = $2 AND (CAST($3 AS TEXT) IS NULL OR dialect = $3)";

pub(crate) const HEARTBEAT: &str = "UPDATE jobs SET lease_until = $1 \
    WHERE id = $2 AND attempt = $3 AND state = 'PROCESSING' RETURNING cancel_requested";

pub(crate) const RECORD_PROGRESS: &str = "UPDATE jobs SET progress = $1, updated_at = $2 \
    WHERE id = $3 AND attempt = $4 AND state = 'PROCESSING'";

pub(crate) const RELEASE: &str = "UPDATE jobs SET state = 'PENDING', progress = 0, \
    updated_at = $1, lease_owner = NULL, lease_until = NULL \
    WHERE id = $2 AND attempt = $3 AND state = 'PROCESSING'";

pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO webhook_attempts \
    (delivery_id, attempted_at, status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const FINISH_ATTEMPT: &str = "UPDATE webhook_deliveries SET \
    attempts = attempts + 1, state = $1, next_attempt_at = $2, delivered_at = $3, \
    lease_until = NULL, updated_at = $4 WHERE id = $5 AND state = 'PENDING'";

pub(crate) const INSERT_PROJECT: &str = "INSERT INTO projects \
    (id, account_id, name, kind, starts_at, ends_at, template, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const UPDATE_PROJECT: &str = "UPDATE projects SET name = $1, kind = $2, \
    starts_at = $3, ends_at = $4, template = $5, updated_at = $6 \
    WHERE id = $7 AND account_id = $8";

pub(crate) const DELETE_PROJECT: &str = "DELETE FROM projects WHERE id = $1 AND account_id = $2";

/// A finished job queued again for its next run (its round given by the
/// caller); the cost to charge again.
pub(crate) const REQUEUE_JOB: &str = "UPDATE jobs SET state = 'PENDING', run = run + 1, \
    progress = 0, outputs = '[]', error_code = NULL, error_message = NULL, \
    cancel_requested = $1, lease_owner = NULL, lease_until = NULL, retries = 0, \
    started_at = NULL, completed_at = NULL, updated_at = $2, queue_round = $3, \
    deadline_at = $2 + timeout_ms, outputs_deleted_at = NULL \
    WHERE id = $4 AND account_id = $5 AND (CAST($6 AS TEXT) IS NULL OR dialect = $6) \
    AND state IN ('COMPLETED', 'FAILED') AND inputs_deleted_at IS NULL RETURNING cost_micro_cents";

/// The retention sweep's lease (`$1` name, `$2` owner, `$3` now, `$4`
/// until): taken when free or expired, kept by its owner.
pub(crate) const TAKE_LEASE: &str = "INSERT INTO genq_leases (name, owner, until) \
    VALUES ($1, $2, $4) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
    until = excluded.until WHERE genq_leases.until < $3 OR genq_leases.owner = excluded.owner \
    RETURNING owner";

pub(crate) static JOBS_WITH_INPUTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE completed_at < $1 AND inputs_deleted_at IS NULL \
         AND state IN ('COMPLETED', 'FAILED', 'CANCELLED') ORDER BY completed_at LIMIT $2"
    )
});

pub(crate) const MARK_INPUTS_DELETED: &str = "UPDATE jobs SET inputs_deleted_at = $1, \
    input = $2 WHERE id = $3 AND inputs_deleted_at IS NULL \
    AND state IN ('COMPLETED', 'FAILED', 'CANCELLED')";

pub(crate) static JOBS_WITH_OUTPUTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE completed_at < $1 AND outputs_deleted_at IS NULL \
         AND state = 'COMPLETED' ORDER BY completed_at LIMIT $2"
    )
});

pub(crate) const MARK_OUTPUTS_DELETED: &str = "UPDATE jobs SET outputs_deleted_at = $1 \
    WHERE id = $2 AND outputs_deleted_at IS NULL AND state = 'COMPLETED'";

/// The round a newly queued job of an account gets (see
/// migrations/sqlite/0004_fair_queue.sql): the larger of the two.
pub(crate) const NEXT_ROUND: &str = "SELECT \
    COALESCE((SELECT min(queue_round) FROM jobs WHERE state = 'PENDING'), \
             (SELECT queue_round FROM jobs ORDER BY id DESC LIMIT 1), 0) AS head, \
    COALESCE((SELECT max(queue_round) + 1 FROM jobs \
              WHERE account_id = $1 AND state = 'PENDING'), 0) AS next";

pub(crate) const KEYS_OF_ACCOUNT: &str =
    "SELECT id, scopes, model_patterns, created_at, revoked_at \
    FROM api_keys WHERE account_id = $1 ORDER BY created_at DESC, id DESC";

pub(crate) const REVOKE_ACCOUNT_KEY: &str = "UPDATE api_keys SET revoked_at = $1 \
    WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL";

pub(crate) const DELETE_EXPIRED_SESSIONS: &str =
    "DELETE FROM console_sessions WHERE expires_at <= $1";

pub(crate) const INSERT_SESSION: &str = "INSERT INTO console_sessions \
    (token_hash, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";

/// The hash of the key a live session acts as (the key's own lookup then
/// checks that it is not revoked).
pub(crate) const SESSION_KEY_HASH: &str = "SELECT k.key_hash FROM console_sessions s \
    JOIN api_keys k ON k.id = s.key_id WHERE s.token_hash = $1 AND s.expires_at > $2";

pub(crate) const DELETE_SESSION: &str = "DELETE FROM console_sessions WHERE token_hash = $1";

/// Due now, leaving a delivery under a dispatcher's lease to it.
pub(crate) const REDELIVER: &str = "UPDATE webhook_deliveries \
    SET state = 'PENDING', next_attempt_at = $1, updated_at = $1 \
    WHERE account_id = $2 AND job_id = $3 AND (lease_until IS NULL OR lease_until < $1)";

pub(crate) const STATE_COUNTS: &str =
    "SELECT state, count(*) AS jobs, min(created_at) AS oldest FROM jobs GROUP BY state";
