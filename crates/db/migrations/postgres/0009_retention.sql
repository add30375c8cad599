-- Retention: as migrations/sqlite/0012_retention.sql.
ALTER TABLE jobs ADD COLUMN inputs_deleted_at BIGINT;
ALTER TABLE jobs ADD COLUMN outputs_deleted_at BIGINT;

CREATE INDEX jobs_inputs_kept ON jobs (completed_at)
    WHERE inputs_deleted_at IS NULL AND completed_at IS NOT NULL;
CREATE INDEX jobs_outputs_kept ON jobs (completed_at)
    WHERE outputs_deleted_at IS NULL AND state = 'COMPLETED';

CREATE TABLE genq_leases (
    name  TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);
