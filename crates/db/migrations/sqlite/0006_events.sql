-- Job events (engine/src/events.rs) and what the dialects' routes filter by.

-- A client's correlation id (the Provider dialect's `session_id`): events
-- carry it, and `GET /events?session_id=` follows one.
ALTER TABLE jobs ADD COLUMN correlation_id TEXT;

-- Another process's changes are found by time (`changed_jobs`), per
-- account.
CREATE INDEX jobs_by_account_updated ON jobs (account_id, updated_at);
-- An event stream catching up reads the jobs in flight and those finished
-- since a time.
CREATE INDEX jobs_finished_by_account ON jobs (account_id, completed_at)
    WHERE completed_at IS NOT NULL;
-- Each dialect's routes list only its own jobs.
CREATE INDEX jobs_by_account_dialect ON jobs (account_id, dialect, id);
CREATE INDEX jobs_by_account_correlation ON jobs (account_id, correlation_id, id)
    WHERE correlation_id IS NOT NULL;
-- Expired leases are reclaimed earliest-expired first, ties by id (the
-- same on both backends).
DROP INDEX jobs_leased;
CREATE INDEX jobs_leased ON jobs (lease_until, id) WHERE state = 'PROCESSING';

-- With nothing pending, a new job's fair-queue round is the newest job's
-- (a primary-key lookup, as on PostgreSQL) rather than the highest round:
-- rounds only order pending jobs among themselves, so either serves, and
-- the index that found the highest is no longer read.
DROP INDEX jobs_by_round;
