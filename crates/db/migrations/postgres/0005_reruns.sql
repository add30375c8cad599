-- Runs again: as migrations/sqlite/0008_reruns.sql. A refund is recorded
-- with the run it belongs to (genq_settle as in 0002, reading `run`).
ALTER TABLE jobs ADD COLUMN run BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN run BIGINT NOT NULL DEFAULT 0;
DROP INDEX ledger_one_refund_per_job;
CREATE UNIQUE INDEX ledger_one_refund_per_run ON ledger (job_id, run) WHERE reason = 'refund';

CREATE OR REPLACE FUNCTION genq_settle(
    settle_id TEXT,
    settle_state TEXT,
    settle_at BIGINT,
    settle_delivery_id TEXT,
    settle_event TEXT,
    run_time_weight DOUBLE PRECISION
) RETURNS VOID
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    done_account TEXT;
    done_cost BIGINT;
    done_model TEXT;
    done_started BIGINT;
    done_webhook TEXT;
    done_run BIGINT;
BEGIN
    SELECT account_id, cost_micro_cents, model, started_at, webhook_url, run
    INTO done_account, done_cost, done_model, done_started, done_webhook, done_run
    FROM jobs WHERE id = settle_id;

    IF done_cost > 0 AND settle_state IN ('FAILED', 'CANCELLED') THEN
        UPDATE accounts SET balance_micro_cents = balance_micro_cents + done_cost
        WHERE id = done_account;
        INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at, run)
        VALUES (done_account, settle_id, done_cost, 'refund', settle_at, done_run);
    END IF;

    IF settle_state = 'COMPLETED' AND done_model IS NOT NULL AND done_started IS NOT NULL THEN
        INSERT INTO model_stats (model, runs, avg_run_ms)
        VALUES (done_model, 1, GREATEST(settle_at - done_started, 0))
        ON CONFLICT (model) DO UPDATE SET runs = model_stats.runs + 1,
            avg_run_ms = model_stats.avg_run_ms * (1 - run_time_weight)
                + excluded.avg_run_ms * run_time_weight;
    END IF;

    IF done_webhook IS NOT NULL THEN
        INSERT INTO webhook_deliveries (id, job_id, account_id, url, event, state, attempts,
            next_attempt_at, created_at, updated_at)
        VALUES (settle_delivery_id, settle_id, done_account, done_webhook, settle_event,
            'PENDING', 0, settle_at, settle_at, settle_at);
    END IF;
END
$$;
