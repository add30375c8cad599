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

-- Every claim and completion rewrites the job's row, and each index of the
-- table takes a new entry: indexes nothing reads only cost. `jobs_pending`
-- and `jobs_by_round` are covered by `jobs_pending_by_round`, and
-- `jobs_active_by_account` by `jobs_by_account_state`.
DROP INDEX jobs_pending;
DROP INDEX jobs_by_round;
DROP INDEX jobs_active_by_account;
