-- Retention (engine/src/retention.rs): when the sweep deleted a finished
-- job's stored inputs, and a completed job's outputs. The partial indexes
-- hold only what the sweep has still to do, in the order it does it.
ALTER TABLE jobs ADD COLUMN inputs_deleted_at INTEGER;
ALTER TABLE jobs ADD COLUMN outputs_deleted_at INTEGER;

CREATE INDEX jobs_inputs_kept ON jobs (completed_at)
    WHERE inputs_deleted_at IS NULL AND completed_at IS NOT NULL;
CREATE INDEX jobs_outputs_kept ON jobs (completed_at)
    WHERE outputs_deleted_at IS NULL AND state = 'COMPLETED';

-- Background work one process at a time does: the holder renews `until`.
CREATE TABLE genq_leases (
    name  TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL
);
