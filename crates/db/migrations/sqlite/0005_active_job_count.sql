-- Each account's number of PENDING or PROCESSING jobs, kept by triggers so
-- that every state change, whichever statement makes it, keeps it right.
-- A submission checks the account's concurrency limit against this column
-- instead of counting the account's active jobs, a count that grows with
-- the queue when an account's limit is high.
ALTER TABLE accounts ADD COLUMN active_jobs INTEGER NOT NULL DEFAULT 0;

UPDATE accounts SET active_jobs = (
    SELECT count(*) FROM jobs
    WHERE jobs.account_id = accounts.id AND jobs.state IN ('PENDING', 'PROCESSING')
);

CREATE TRIGGER jobs_active_on_insert AFTER INSERT ON jobs
WHEN NEW.state IN ('PENDING', 'PROCESSING')
BEGIN
    UPDATE accounts SET active_jobs = active_jobs + 1 WHERE id = NEW.account_id;
END;

CREATE TRIGGER jobs_active_on_update AFTER UPDATE OF state ON jobs
WHEN (OLD.state IN ('PENDING', 'PROCESSING')) != (NEW.state IN ('PENDING', 'PROCESSING'))
BEGIN
    UPDATE accounts
    SET active_jobs = active_jobs + CASE WHEN NEW.state IN ('PENDING', 'PROCESSING') THEN 1 ELSE -1 END
    WHERE id = NEW.account_id;
END;

CREATE TRIGGER jobs_active_on_delete AFTER DELETE ON jobs
WHEN OLD.state IN ('PENDING', 'PROCESSING')
BEGIN
    UPDATE accounts SET active_jobs = active_jobs - 1 WHERE id = OLD.account_id;
END;
