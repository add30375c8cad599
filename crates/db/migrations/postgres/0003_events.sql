-- Job events (engine/src/events.rs): a trigger announces committed changes
-- of jobs with NOTIFY on `genq_job_events`, so they go out at commit and only
-- if the transaction commits, whichever statement made them. It announces
-- - what the engine's own listeners act on in every process: a job queued
--   (idle workers wake; this replaces the bare `genq_jobs` wake-up), a
--   cancel asked for (the worker running it stops), a job with a webhook
--   finished (a dispatcher delivers);
-- - every change of the jobs of an account someone follows (an event
--   stream, a client waiting for its job): processes say which accounts
--   they follow in `genq_followed_accounts` (postgres/feed.rs).
-- Announcing nothing else keeps a busy queue's claims and completions free
-- of NOTIFY, which serializes committing transactions on a global lock:
-- announcing every change cost a quarter of the queue's throughput.
--
-- Also: the correlation id, the indexes the dialects' filters use, a
-- submission that takes the job as JSON, and the expired-lease order with a
-- tie-break (the same as SQLite's).

ALTER TABLE jobs ADD COLUMN correlation_id TEXT;

CREATE INDEX jobs_by_account_dialect ON jobs (account_id, dialect, id);
CREATE INDEX jobs_by_account_correlation ON jobs (account_id, correlation_id, id)
    WHERE correlation_id IS NOT NULL;
-- An event stream catching up reads the jobs in flight and those finished
-- since a time; a partial index gets one entry per job, at its end, where
-- one on `updated_at` would take one more with every change.
CREATE INDEX jobs_finished_by_account ON jobs (account_id, completed_at)
    WHERE completed_at IS NOT NULL;
-- Expired leases are reclaimed earliest-expired first, ties by id (the
-- same on both backends).
DROP INDEX jobs_leased;
CREATE INDEX jobs_leased ON jobs (lease_until, id) WHERE state = 'PROCESSING';

-- The accounts whose every job change is announced, until when (ms since
-- the epoch, the database's clock). A process following an account moves
-- `until` on every few seconds, so a process that died costs nothing
-- after a while; several processes following one account share the row.
-- Whether a job's every change is announced: set when it is submitted or
-- claimed for an account that is followed then, and on the account's jobs
-- in flight when it becomes followed (postgres/feed.rs), so that the update trigger's WHEN
-- reads a column instead of querying genq_followed_accounts per row.
ALTER TABLE jobs ADD COLUMN announce BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE genq_followed_accounts (
    account_id TEXT COLLATE "C" PRIMARY KEY,
    until      BIGINT NOT NULL
);

-- The payload is a JobEvent as serde reads it. A NOTIFY payload must stay
-- under 8000 bytes: every field is short (the correlation id at most 256
-- bytes, which the engine enforces; cut here all the same).
CREATE FUNCTION genq_announce_job() RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
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

CREATE TRIGGER jobs_announce_insert AFTER INSERT ON jobs
FOR EACH ROW EXECUTE FUNCTION genq_announce_job();

-- A heartbeat (lease_until alone) is not a change anyone follows; a claim of
-- an expired lease is (the attempt moves, progress starts again).
CREATE TRIGGER jobs_announce_update AFTER UPDATE ON jobs
FOR EACH ROW WHEN (
    (OLD.state IS DISTINCT FROM NEW.state
     OR OLD.progress IS DISTINCT FROM NEW.progress
     OR OLD.attempt IS DISTINCT FROM NEW.attempt
     OR OLD.cancel_requested IS DISTINCT FROM NEW.cancel_requested)
    AND (NEW.state = 'PENDING' OR NEW.cancel_requested OR NEW.announce
         OR (NEW.webhook_url IS NOT NULL AND NEW.state IN ('COMPLETED', 'FAILED', 'CANCELLED')))
) EXECUTE FUNCTION genq_announce_job();

-- A submission takes the job's columns as one JSON object (built by
-- `codec::job_record`), so a new column no longer changes the signature:
-- what the object names is stored; the queue's own columns are set here.
DROP FUNCTION genq_submit(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT,
    TEXT, TEXT, BIGINT, BIGINT, BIGINT, BIGINT);

CREATE FUNCTION genq_submit(new_job JSONB, max_per_key BIGINT, max_per_account BIGINT)
RETURNS TABLE (outcome TEXT, balance BIGINT)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    job jobs%ROWTYPE;
    account_balance BIGINT;
    account_limit BIGINT;
    active BIGINT;
BEGIN
    job := jsonb_populate_record(NULL::jobs, new_job);
    -- NO KEY UPDATE still lets foreign-key checks on the row through.
    SELECT a.balance_micro_cents, a.max_concurrent_jobs INTO account_balance, account_limit
    FROM accounts a WHERE a.id = job.account_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'NO_ACCOUNT'::TEXT, NULL::BIGINT;
        RETURN;
    END IF;

    IF max_per_key IS NOT NULL THEN
        -- The key's jobs of the new job's dialect (each dialect has its rule).
        SELECT count(*) INTO active FROM jobs
        WHERE api_key_id = job.api_key_id AND dialect = job.dialect
          AND state IN ('PENDING', 'PROCESSING');
        IF active >= max_per_key THEN
            RETURN QUERY SELECT 'KEY_LIMIT'::TEXT, account_balance;
            RETURN;
        END IF;
    END IF;

    IF max_per_account IS NOT NULL THEN
        account_limit := GREATEST(COALESCE(account_limit, max_per_account), 0);
        -- Counting stops at the limit, so a deep queue costs no more. (SQLite
        -- keeps a counter instead: its one writer makes that free, while here
        -- a counter row would serialize every claim and completion of the
        -- account.)
        SELECT count(*) INTO active FROM (
            SELECT 1 FROM jobs WHERE account_id = job.account_id
            AND state IN ('PENDING', 'PROCESSING') LIMIT account_limit) AS counted;
        IF active >= account_limit THEN
            RETURN QUERY SELECT 'ACCOUNT_LIMIT'::TEXT, account_balance;
            RETURN;
        END IF;
    END IF;

    IF job.cost_micro_cents > 0 AND account_balance < job.cost_micro_cents THEN
        RETURN QUERY SELECT 'INSUFFICIENT_BALANCE'::TEXT, account_balance;
        RETURN;
    END IF;

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
    job.announce := EXISTS (
        SELECT 1 FROM genq_followed_accounts f
        WHERE f.account_id = job.account_id
          AND f.until > (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
    -- The round: see migrations/sqlite/0004_fair_queue.sql; with nothing
    -- pending, the newest job's round.
    job.queue_round := GREATEST(
        COALESCE((SELECT min(queue_round) FROM jobs WHERE state = 'PENDING'),
                 (SELECT queue_round FROM jobs ORDER BY id DESC LIMIT 1), 0),
        COALESCE((SELECT max(queue_round) + 1 FROM jobs
                  WHERE account_id = job.account_id AND state = 'PENDING'), 0));
    INSERT INTO jobs SELECT (job).*;

    IF job.cost_micro_cents > 0 THEN
        UPDATE accounts SET balance_micro_cents = balance_micro_cents - job.cost_micro_cents
        WHERE id = job.account_id;
        INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at)
        VALUES (job.account_id, job.id, -job.cost_micro_cents, 'reserve', job.created_at);
    END IF;

    RETURN QUERY SELECT 'INSERTED'::TEXT, account_balance - GREATEST(job.cost_micro_cents, 0);
END
$$;

-- As in 0002, with ties between equally expired leases broken by id.
CREATE OR REPLACE FUNCTION genq_claim(
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
    RETURN QUERY
    WITH expired AS (
        SELECT id FROM jobs
        WHERE state = 'PROCESSING' AND lease_until < claim_now
          AND kind = ANY (claim_kinds) AND retries < claim_max_retries
        ORDER BY lease_until, id LIMIT claim_limit FOR UPDATE SKIP LOCKED
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
        announce = EXISTS (SELECT 1 FROM genq_followed_accounts f
                           WHERE f.account_id = jobs.account_id AND f.until > claim_now),
        started_at = COALESCE(jobs.started_at, claim_now), updated_at = claim_now
    FROM candidate WHERE jobs.id = candidate.id
    RETURNING jobs.*;
END
$$;
