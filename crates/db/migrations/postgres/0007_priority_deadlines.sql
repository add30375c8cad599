-- Priorities and deadlines: as migrations/sqlite/0010_priority_deadlines.sql.
ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN timeout_ms BIGINT;
ALTER TABLE jobs ADD COLUMN deadline_at BIGINT;

CREATE INDEX jobs_pending_by_account_priority
    ON jobs (account_id, priority DESC, queue_round, id) WHERE state = 'PENDING';
-- Whether any pending job has a priority of its own: the claim's fast path
-- (below) reads this, almost always empty, index.
CREATE INDEX jobs_pending_prioritised ON jobs (priority) WHERE state = 'PENDING' AND priority <> 0;
CREATE INDEX jobs_pending_deadline
    ON jobs (deadline_at) WHERE state = 'PENDING' AND deadline_at IS NOT NULL;

-- As in 0003, except that each pending job is claimed in its account's
-- turn as the account's best: the head of the queue (lowest round, then
-- oldest) says whose turn it is, and the account's pending job of highest
-- priority, then earliest round, runs in it; the head, if passed over,
-- takes the runner's round (the two swap places in the account's line). One job at a time, each claimed at once, so the next
-- turn sees the rounds as this one left them. Usually the best job is the
-- head itself and no round moves.
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
DECLARE
    head RECORD;
    best RECORD;
    runner TEXT;
    taken BIGINT := 0;
BEGIN
    -- Jobs whose worker vanished go first: they are older than any pending one.
    RETURN QUERY
    WITH expired AS (
        SELECT id FROM jobs
        WHERE state = 'PROCESSING' AND lease_until < claim_now
          AND kind = ANY (claim_kinds) AND retries < claim_max_retries
        ORDER BY lease_until, id LIMIT claim_limit FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs SET state = 'PROCESSING', attempt = jobs.attempt + 1,
        retries = jobs.retries + 1, progress = 0,
        lease_owner = claim_owner, lease_until = claim_until,
        announce = EXISTS (SELECT 1 FROM genq_followed_accounts f
                           WHERE f.account_id = jobs.account_id AND f.until > claim_now),
        started_at = COALESCE(jobs.started_at, claim_now), updated_at = claim_now
    FROM expired WHERE jobs.id = expired.id
    RETURNING jobs.*;
    IF FOUND THEN
        RETURN;
    END IF;

    -- No pending job has a priority of its own (the usual case): the whole
    -- batch in one statement, in queue order. The loop below costs a
    -- statement per job (measured: the c=8 drain at 0.67x graphile-worker's
    -- with the loop alone).
    IF NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'PENDING' AND priority <> 0) THEN
        RETURN QUERY
        WITH pending AS (
            SELECT id FROM jobs
            WHERE state = 'PENDING' AND kind = ANY (claim_kinds)
            ORDER BY queue_round, id LIMIT claim_limit FOR UPDATE SKIP LOCKED
        )
        UPDATE jobs SET state = 'PROCESSING', attempt = jobs.attempt + 1, progress = 0,
            lease_owner = claim_owner, lease_until = claim_until,
            announce = EXISTS (SELECT 1 FROM genq_followed_accounts f
                               WHERE f.account_id = jobs.account_id AND f.until > claim_now),
            started_at = COALESCE(jobs.started_at, claim_now), updated_at = claim_now
        FROM pending WHERE jobs.id = pending.id
        RETURNING jobs.*;
        RETURN;
    END IF;

    WHILE taken < claim_limit LOOP
        SELECT id, account_id, queue_round INTO head FROM jobs
        WHERE state = 'PENDING' AND kind = ANY (claim_kinds)
        ORDER BY queue_round, id LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            EXIT;
        END IF;
        SELECT id, queue_round INTO best FROM jobs
        WHERE account_id = head.account_id AND state = 'PENDING' AND kind = ANY (claim_kinds)
        ORDER BY priority DESC, queue_round, id LIMIT 1 FOR UPDATE SKIP LOCKED;
        runner := head.id;
        IF FOUND AND best.id <> head.id THEN
            UPDATE jobs SET queue_round = best.queue_round WHERE id = head.id;
            runner := best.id;
        END IF;
        RETURN QUERY
        UPDATE jobs SET state = 'PROCESSING', attempt = jobs.attempt + 1, progress = 0,
            lease_owner = claim_owner, lease_until = claim_until,
            announce = EXISTS (SELECT 1 FROM genq_followed_accounts f
                               WHERE f.account_id = jobs.account_id AND f.until > claim_now),
            started_at = COALESCE(jobs.started_at, claim_now), updated_at = claim_now
        WHERE jobs.id = runner
        RETURNING jobs.*;
        taken := taken + 1;
    END LOOP;
END
$$;
