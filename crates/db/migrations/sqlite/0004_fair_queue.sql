-- Fair claiming across accounts (start-time fair queueing in rounds).
--
-- A job is given a round when it is submitted: the round at the head of the
-- queue (the lowest round still PENDING; with nothing pending, the highest
-- round ever given), or one past its account's last PENDING job if that is
-- later. Claims take the lowest round first, then the oldest id. So an
-- account's k-th queued job waits for round head+k: one account's backlog of
-- 10,000 jobs costs a newcomer at most one job's wait, not 10,000, and every
-- account with queued work gets one job per round.
--
-- Existing jobs start in round 0 and so keep their place at the head.
ALTER TABLE jobs ADD COLUMN queue_round INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_pending_by_round ON jobs (queue_round, id) WHERE state = 'PENDING';
CREATE INDEX jobs_pending_by_account_round ON jobs (account_id, queue_round) WHERE state = 'PENDING';
CREATE INDEX jobs_by_round ON jobs (queue_round);
