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

-- A batch of jobs (or one keyed job) in one statement, all or none: the
-- account's row lock, the limits and the balance checked once for the
-- whole batch, every job with its round (consecutive rounds of the
-- account, as one submission after another would get), one balance update
-- and a reservation per priced job. On a refusal nothing is written. The
-- caller's transaction also keeps the key, when there is one.
CREATE FUNCTION genq_submit_batch(new_jobs JSONB, max_per_key BIGINT, max_per_account BIGINT)
RETURNS TABLE (outcome TEXT, balance BIGINT)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    first jobs%ROWTYPE;
    job jobs%ROWTYPE;
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
    FOR i IN 0 .. n - 1 LOOP
        job := jsonb_populate_record(NULL::jobs, new_jobs -> i::INT);
        job.state := 'PENDING';
        job.progress := 0;
        job.outputs := '[]';
        job.retries := 0;
        job.attempt := 0;
        job.cancel_requested := FALSE;
        job.lease_owner := NULL;
        job.lease_until := NULL;
        job.error_code := NULL;
        job.error_message := NULL;
        job.started_at := NULL;
        job.completed_at := NULL;
        job.announce := following;
        job.queue_round := round + i;
        INSERT INTO jobs SELECT (job).*;
        IF job.cost_micro_cents > 0 THEN
            INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at)
            VALUES (job.account_id, job.id, -job.cost_micro_cents, 'reserve', job.created_at);
        END IF;
    END LOOP;
    IF total > 0 THEN
        UPDATE accounts SET balance_micro_cents = balance_micro_cents - total
        WHERE id = first.account_id;
    END IF;

    RETURN QUERY SELECT 'INSERTED'::TEXT, account_balance - total;
END
$$;
