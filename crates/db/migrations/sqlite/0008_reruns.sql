-- A finished job can run again (the Provider dialect's trigger-job). `run`
-- counts a job's runs from 0; the ledger entries of a job carry the run
-- they belong to, so that each run is charged once and refunded at most
-- once.
ALTER TABLE jobs ADD COLUMN run INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN run INTEGER NOT NULL DEFAULT 0;
DROP INDEX ledger_one_refund_per_job;
CREATE UNIQUE INDEX ledger_one_refund_per_run ON ledger (job_id, run) WHERE reason = 'refund';
