-- The queue's three hot paths, each one statement (one round trip, one
-- commit) from the store: a submission, a batch claim and a batch of
-- completions.
-- They are plpgsql functions rather than CTEs sent by the client for two
-- reasons: a function runs only the statements a given call needs (a
-- completion without a price, model or webhook touches the jobs table
-- alone), and it can pin the claim's plan (below).

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

-- Claiming must walk an index in queue order and stop at the first free
-- rows: up to `claim_limit` of them (a worker's free slots), in one
-- statement.
--
-- As one prepared statement it did not: a queue filled faster than
-- autovacuum analyzes (a burst into a fresh table, or into a table of mostly
-- finished jobs) leaves statistics that say "a handful of PENDING rows", and
-- the cached plan then reads every pending row and sorts them for each claim
-- — 1.5 ms per claim at 5,000 queued, growing with the queue. Inside a
-- function, `enable_sort = off` applies to the claim alone: the only
-- plan left without a sort is the ordered index scan, whatever the
-- statistics say. plpgsql keeps the plan for the connection's lifetime.
CREATE FUNCTION genq_claim(
    claim_kinds TEXT[],
    claim_owner TEXT,
    claim_until BIGINT,
    claim_now BIGINT,
    claim_max_retries BIGINT,
    claim_limit BIGINT
) RETURNS SETOF jobs
LANGUAGE plpgsql
SET enable_sort = off
AS $$
BEGIN
    -- Jobs whose worker vanished go first: they are older than any pending
    -- one. `retries < max` because a job the give-up sweep chose may have
    -- been unlocked by someone else since.
    RETURN QUERY
    WITH expired AS (
        SELECT id FROM jobs
        WHERE state = 'PROCESSING' AND lease_until < claim_now
          AND kind = ANY (claim_kinds) AND retries < claim_max_retries
        ORDER BY lease_until LIMIT claim_limit FOR UPDATE SKIP LOCKED
    ), pending AS (
        SELECT id FROM jobs
        WHERE state = 'PENDING' AND kind = ANY (claim_kinds)
          AND NOT EXISTS (SELECT 1 FROM expired)
        ORDER BY queue_round, id LIMIT claim_limit FOR UPDATE SKIP LOCKED
    ), candidate AS (
        SELECT id, 1 AS retry FROM expired UNION ALL SELECT id, 0 FROM pending
    )
    UPDATE jobs SET state = 'PROCESSING', attempt = jobs.attempt + 1,
        retries = jobs.retries + candidate.retry, progress = 0,
        lease_owner = claim_owner, lease_until = claim_until,
        started_at = COALESCE(jobs.started_at, claim_now), updated_at = claim_now
    FROM candidate WHERE jobs.id = candidate.id
    RETURNING jobs.*;
END
$$;

-- What a job's move to a terminal state owes, recorded in the transaction
-- that made the move: the refund of a failed or cancelled job that was
-- charged (once: the ledger's unique index refuses a second), its model's
-- run time, and the webhook it owes. Each only when the job has a price, a
-- model or a URL, so a plain job touches no other table.
CREATE FUNCTION genq_settle(
    settle_id TEXT,
    settle_state TEXT,
    settle_at BIGINT,
    settle_delivery_id TEXT,
    settle_event TEXT,
    run_time_weight DOUBLE PRECISION
) RETURNS VOID
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    done_account TEXT;
    done_cost BIGINT;
    done_model TEXT;
    done_started BIGINT;
    done_webhook TEXT;
BEGIN
    SELECT account_id, cost_micro_cents, model, started_at, webhook_url
    INTO done_account, done_cost, done_model, done_started, done_webhook
    FROM jobs WHERE id = settle_id;

    IF done_cost > 0 AND settle_state IN ('FAILED', 'CANCELLED') THEN
        UPDATE accounts SET balance_micro_cents = balance_micro_cents + done_cost
        WHERE id = done_account;
        INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at)
        VALUES (done_account, settle_id, done_cost, 'refund', settle_at);
    END IF;

    IF settle_state = 'COMPLETED' AND done_model IS NOT NULL AND done_started IS NOT NULL THEN
        INSERT INTO model_stats (model, runs, avg_run_ms)
        VALUES (done_model, 1, GREATEST(settle_at - done_started, 0))
        ON CONFLICT (model) DO UPDATE SET runs = model_stats.runs + 1,
            avg_run_ms = model_stats.avg_run_ms * (1 - run_time_weight)
                + excluded.avg_run_ms * run_time_weight;
    END IF;

    IF done_webhook IS NOT NULL THEN
        INSERT INTO webhook_deliveries (id, job_id, account_id, url, event, state, attempts,
            next_attempt_at, created_at, updated_at)
        VALUES (settle_delivery_id, settle_id, done_account, done_webhook, settle_event,
            'PENDING', 0, settle_at, settle_at, settle_at);
    END IF;
END
$$;

-- A completion, failure or cancellation under the caller's lease, settled
-- (genq_settle) in the same statement. NULL outputs or error: left as is.
-- True when the job was PROCESSING under this attempt and has moved.
CREATE FUNCTION genq_finish(
    finish_id TEXT,
    finish_attempt BIGINT,
    finish_state TEXT,
    finish_at BIGINT,
    finish_outputs TEXT,
    finish_error_code TEXT,
    finish_error_message TEXT,
    finish_delivery_id TEXT,
    finish_event TEXT,
    run_time_weight DOUBLE PRECISION
) RETURNS BOOLEAN
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
    UPDATE jobs SET state = finish_state,
        progress = CASE WHEN finish_state = 'COMPLETED' THEN 100 ELSE progress END,
        outputs = COALESCE(finish_outputs, outputs),
        error_code = COALESCE(finish_error_code, error_code),
        error_message = COALESCE(finish_error_message, error_message),
        completed_at = finish_at, updated_at = finish_at,
        lease_owner = NULL, lease_until = NULL
    WHERE id = finish_id AND attempt = finish_attempt AND state = 'PROCESSING';
    IF NOT FOUND THEN
        RETURN FALSE;
    END IF;
    PERFORM genq_settle(finish_id, finish_state, finish_at, finish_delivery_id, finish_event,
        run_time_weight);
    RETURN TRUE;
END
$$;

-- Outcomes recorded at the same moment by one process's workers, in one
-- statement and one commit (store/src/postgres/finish.rs): genq_finish for
-- each, in order; element i of the answer is the i-th job's.
CREATE FUNCTION genq_finish_batch(
    finish_ids TEXT[],
    finish_attempts BIGINT[],
    finish_states TEXT[],
    finish_ats BIGINT[],
    finish_outputs TEXT[],
    finish_error_codes TEXT[],
    finish_error_messages TEXT[],
    finish_delivery_ids TEXT[],
    finish_events TEXT[],
    run_time_weight DOUBLE PRECISION
) RETURNS BOOLEAN[]
LANGUAGE plpgsql
AS $$
DECLARE
    moved BOOLEAN[] := '{}';
BEGIN
    FOR i IN 1 .. COALESCE(array_length(finish_ids, 1), 0) LOOP
        moved := moved || genq_finish(finish_ids[i], finish_attempts[i], finish_states[i],
            finish_ats[i], finish_outputs[i], finish_error_codes[i], finish_error_messages[i],
            finish_delivery_ids[i], finish_events[i], run_time_weight);
    END LOOP;
    RETURN moved;
END
$$;

-- Every claim and completion rewrites the job's row, and each index of the
-- table takes a new entry: indexes nothing reads only cost. `jobs_pending`
-- and `jobs_by_round` are covered by `jobs_pending_by_round`, and
-- `jobs_active_by_account` by `jobs_by_account_state`.
DROP INDEX jobs_pending;
DROP INDEX jobs_by_round;
DROP INDEX jobs_active_by_account;
