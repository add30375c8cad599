-- Priorities and deadlines.
--
-- `priority` (-10…10, default 0) orders an account's own pending jobs: the
-- fair-queue rounds (0004_fair_queue.sql) still decide whose turn it is; a
-- claim then runs the account's best job in that turn (highest priority,
-- then earliest round), and the job at the head, if passed over, takes the
-- runner's round (they swap places in the account's line), so the account
-- keeps exactly the turns it had and no account's priorities change
-- another's. Among equal priorities the order is the rounds' order, the
-- same whether a claim looks for the best job or not.
-- `deadline_at` (queueing time + `timeout_ms`): a job not finished by then
-- fails with DEADLINE_EXCEEDED — a running one by its worker, a pending one
-- by the workers' once-a-second sweep. A new run (requeue) gets a new
-- deadline, `timeout_ms` after it is queued.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER;
ALTER TABLE jobs ADD COLUMN deadline_at INTEGER;

CREATE INDEX jobs_pending_by_account_priority
    ON jobs (account_id, priority DESC, queue_round, id) WHERE state = 'PENDING';
-- Whether any pending job has a priority of its own: when none has (the
-- usual case), a claim skips the look for an account's best job.
CREATE INDEX jobs_pending_prioritised ON jobs (priority) WHERE state = 'PENDING' AND priority <> 0;
CREATE INDEX jobs_pending_deadline
    ON jobs (deadline_at) WHERE state = 'PENDING' AND deadline_at IS NOT NULL;
