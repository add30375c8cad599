-- A submission in one statement: the account's row lock, the limit and
-- balance checks, the job, its reservation and the wake-up of idle workers.
--
-- The lock serializes one account's submissions until commit (that is what
-- makes the limits and the fair-queue round exact across API nodes). As five
-- statements from the client the lock was held for four round trips plus the
-- commit; as one it is held for the statement and the commit alone.
--
-- Limits: `max_per_key` and `max_per_account` are the caller's (NULL: not
-- checked); an account's own `max_concurrent_jobs` overrides the latter.
-- The round: see migrations/sqlite/0004_fair_queue.sql; with nothing
-- pending, the newest job's round stands in for the highest round given.
CREATE FUNCTION genq_submit(
    new_id TEXT,
    new_account TEXT,
    new_key TEXT,
    new_kind TEXT,
    new_dialect TEXT,
    new_input TEXT,
    new_files TEXT,
    new_webhook TEXT,
    new_model TEXT,
    new_version TEXT,
    new_cost BIGINT,
    new_media_token TEXT,
    new_share_token TEXT,
    new_created_at BIGINT,
    new_updated_at BIGINT,
    max_per_key BIGINT,
    max_per_account BIGINT
) RETURNS TABLE (outcome TEXT, balance BIGINT)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    account_balance BIGINT;
    account_limit BIGINT;
    active BIGINT;
BEGIN
    -- NO KEY UPDATE still lets foreign-key checks on the row through.
    SELECT a.balance_micro_cents, a.max_concurrent_jobs INTO account_balance, account_limit
    FROM accounts a WHERE a.id = new_account FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'NO_ACCOUNT'::TEXT, NULL::BIGINT;
        RETURN;
    END IF;

    IF max_per_key IS NOT NULL THEN
        SELECT count(*) INTO active FROM jobs
        WHERE api_key_id = new_key AND state IN ('PENDING', 'PROCESSING');
        IF active >= max_per_key THEN
            RETURN QUERY SELECT 'ACTIVE_LIMIT'::TEXT, account_balance;
            RETURN;
        END IF;
    END IF;

    IF max_per_account IS NOT NULL THEN
        account_limit := GREATEST(COALESCE(account_limit, max_per_account), 0);
        -- Counting stops at the limit, so a deep queue costs no more.
        SELECT count(*) INTO active FROM (
            SELECT 1 FROM jobs WHERE account_id = new_account
            AND state IN ('PENDING', 'PROCESSING') LIMIT account_limit) AS counted;
        IF active >= account_limit THEN
            RETURN QUERY SELECT 'CONCURRENCY_LIMIT'::TEXT, account_balance;
            RETURN;
        END IF;
    END IF;

    IF new_cost > 0 AND account_balance < new_cost THEN
        RETURN QUERY SELECT 'INSUFFICIENT_BALANCE'::TEXT, account_balance;
        RETURN;
    END IF;

    INSERT INTO jobs (id, account_id, api_key_id, kind, dialect, input, input_files, state,
        progress, outputs, retries, webhook_url, model, model_version, cost_micro_cents,
        media_token, share_token, created_at, updated_at, queue_round)
    VALUES (new_id, new_account, new_key, new_kind, new_dialect, new_input, new_files,
        'PENDING', 0, '[]', 0, new_webhook, new_model, new_version, new_cost,
        new_media_token, new_share_token, new_created_at, new_updated_at,
        GREATEST(
            COALESCE((SELECT min(queue_round) FROM jobs WHERE state = 'PENDING'),
                     (SELECT queue_round FROM jobs ORDER BY id DESC LIMIT 1), 0),
            COALESCE((SELECT max(queue_round) + 1 FROM jobs
                      WHERE account_id = new_account AND state = 'PENDING'), 0)));

    IF new_cost > 0 THEN
        UPDATE accounts SET balance_micro_cents = balance_micro_cents - new_cost
        WHERE id = new_account;
        INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at)
        VALUES (new_account, new_id, -new_cost, 'reserve', new_created_at);
    END IF;

    -- Delivered to listeners (idle workers of every process) at commit.
    PERFORM pg_notify('genq_jobs', '');
    RETURN QUERY SELECT 'INSERTED'::TEXT, account_balance - GREATEST(new_cost, 0);
END
$$;
