-- Idempotency keys: as migrations/sqlite/0011_idempotency_keys.sql, with
-- keys in flight as rows ('processing'), since API nodes are many: a claim
-- holds `token` until `locked_until` (renewed while its request runs), and
-- is kept — or released — by whoever holds the token.
CREATE TABLE idempotency_keys (
    account_id   TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    key          TEXT COLLATE "C" NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('processing', 'kept')),
    token        TEXT,
    locked_until BIGINT,
    fingerprint  BYTEA,
    status       BIGINT,
    body         BYTEA,
    job_id       TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);

CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

-- A batch of jobs (or one keyed job) in one call, all or none: the
-- account's row lock, the limits and the balance checked once for the
-- whole batch, then every job inserted by one set-based statement with its
-- round (consecutive rounds of the account, as one submission after another
-- would get), one balance update and a reservation per priced job. On a
-- refusal nothing is written. The caller's transaction also keeps the key,
-- when there is one.
--
-- Set-based because a row at a time cost 57 ms per 1,000 jobs (plpgsql and
-- jsonb_populate_record per row, and a NOTIFY per row): new rows of
-- accounts nobody follows are inserted quietly (`genq.quiet_inserts`, read
-- by genq_announce_job) and announced once, which is all an idle worker
-- needs to wake.
CREATE OR REPLACE FUNCTION genq_announce_job() RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NOT NEW.announce
       AND current_setting('genq.quiet_inserts', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('genq_job_events', json_build_object(
        'job_id', NEW.id,
        'account_id', NEW.account_id,
        'dialect', NEW.dialect,
        'state', NEW.state,
        'progress', NEW.progress,
        'correlation_id', left(NEW.correlation_id, 256),
        'cancel_requested', NEW.cancel_requested,
        'at', NEW.updated_at)::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION genq_submit_batch(new_jobs JSONB, max_per_key BIGINT, max_per_account BIGINT)
RETURNS TABLE (outcome TEXT, balance BIGINT)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    first jobs%ROWTYPE;
    account_balance BIGINT;
    account_limit BIGINT;
    active BIGINT;
    total BIGINT;
    n BIGINT;
    round BIGINT;
    following BOOLEAN;
BEGIN
    n := jsonb_array_length(new_jobs);
    IF n = 0 THEN
        RETURN QUERY SELECT 'INSERTED'::TEXT, NULL::BIGINT;
        RETURN;
    END IF;
    first := jsonb_populate_record(NULL::jobs, new_jobs -> 0);
    SELECT a.balance_micro_cents, a.max_concurrent_jobs INTO account_balance, account_limit
    FROM accounts a WHERE a.id = first.account_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'NO_ACCOUNT'::TEXT, NULL::BIGINT;
        RETURN;
    END IF;

    IF max_per_key IS NOT NULL THEN
        SELECT count(*) INTO active FROM jobs
        WHERE api_key_id = first.api_key_id AND dialect = first.dialect
          AND state IN ('PENDING', 'PROCESSING');
        IF active + n > max_per_key THEN
            RETURN QUERY SELECT 'KEY_LIMIT'::TEXT, account_balance;
            RETURN;
        END IF;
    END IF;

    IF max_per_account IS NOT NULL THEN
        account_limit := GREATEST(COALESCE(account_limit, max_per_account), 0);
        SELECT count(*) INTO active FROM (
            SELECT 1 FROM jobs WHERE account_id = first.account_id
            AND state IN ('PENDING', 'PROCESSING') LIMIT account_limit) AS counted;
        IF active + n > account_limit THEN
            RETURN QUERY SELECT 'ACCOUNT_LIMIT'::TEXT, account_balance;
            RETURN;
        END IF;
    END IF;

    SELECT COALESCE(sum(GREATEST((j ->> 'cost_micro_cents')::BIGINT, 0)), 0) INTO total
    FROM jsonb_array_elements(new_jobs) AS j;
    IF total > 0 AND account_balance < total THEN
        RETURN QUERY SELECT 'INSUFFICIENT_BALANCE'::TEXT, account_balance;
        RETURN;
    END IF;

    following := EXISTS (
        SELECT 1 FROM genq_followed_accounts f
        WHERE f.account_id = first.account_id
          AND f.until > (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
    round := GREATEST(
        COALESCE((SELECT min(queue_round) FROM jobs WHERE state = 'PENDING'),
                 (SELECT queue_round FROM jobs ORDER BY id DESC LIMIT 1), 0),
        COALESCE((SELECT max(queue_round) + 1 FROM jobs
                  WHERE account_id = first.account_id AND state = 'PENDING'), 0));
    PERFORM set_config('genq.quiet_inserts', 'on', true);
    INSERT INTO jobs (id, account_id, api_key_id, kind, dialect, input, input_files, state,
        progress, outputs, retries, attempt, webhook_url, model, model_version,
        cost_micro_cents, media_token, share_token, correlation_id, priority, timeout_ms,
        deadline_at, created_at, updated_at, cancel_requested, announce, queue_round)
    SELECT r.id, r.account_id, r.api_key_id, r.kind, r.dialect, r.input, r.input_files,
        'PENDING', 0, '[]', 0, 0, r.webhook_url, r.model, r.model_version,
        r.cost_micro_cents, r.media_token, r.share_token, r.correlation_id, r.priority,
        r.timeout_ms, r.deadline_at, r.created_at, r.updated_at, FALSE, following,
        round + r.ordinality - 1
    FROM jsonb_populate_recordset(NULL::jobs, new_jobs) WITH ORDINALITY AS r;
    PERFORM set_config('genq.quiet_inserts', 'off', true);
    IF NOT following THEN
        -- One announcement for the batch: the wake-up of idle workers.
        PERFORM pg_notify('genq_job_events', json_build_object(
            'job_id', first.id, 'account_id', first.account_id, 'dialect', first.dialect,
            'state', 'PENDING', 'progress', 0,
            'correlation_id', left(first.correlation_id, 256),
            'cancel_requested', FALSE, 'at', first.updated_at)::text);
    END IF;

    IF total > 0 THEN
        INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at)
        SELECT r.account_id, r.id, -r.cost_micro_cents, 'reserve', r.created_at
        FROM jsonb_populate_recordset(NULL::jobs, new_jobs) AS r
        WHERE r.cost_micro_cents > 0;
        UPDATE accounts SET balance_micro_cents = balance_micro_cents - total
        WHERE id = first.account_id;
    END IF;

    RETURN QUERY SELECT 'INSERTED'::TEXT, account_balance - total;
END
$$;
