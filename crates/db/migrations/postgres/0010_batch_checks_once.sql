-- A batch's account and key are checked once, not once per row.
--
-- Measured in psql on six 1,000-job batches of genq_submit_batch
-- (BENCHMARKS.md, "Where a PostgreSQL batch's time goes"): 320 ms as 0008
-- left it; 215 ms without the two foreign keys of `jobs`, whose referential
-- check runs for every row; 185 ms also without calling the insert trigger
-- for rows it ignores.
--
-- Accounts and keys are never deleted (a key is revoked by `revoked_at`),
-- so the foreign keys only ever guarded the insert. The submit function
-- now takes the account's row lock and reads the key before inserting, and
-- writes the checked account and key into every row rather than each row's
-- own.
ALTER TABLE jobs DROP CONSTRAINT jobs_account_id_fkey;
ALTER TABLE jobs DROP CONSTRAINT jobs_api_key_id_fkey;

-- A quiet insert (genq_submit_batch for an account nobody follows) no
-- longer calls the trigger at all: the WHEN clause is evaluated in the
-- executor, a plpgsql call per row is not.
DROP TRIGGER jobs_announce_insert ON jobs;
CREATE TRIGGER jobs_announce_insert AFTER INSERT ON jobs
FOR EACH ROW WHEN (
    NEW.announce OR current_setting('genq.quiet_inserts', true) IS DISTINCT FROM 'on'
) EXECUTE FUNCTION genq_announce_job();

-- One job is a batch of one: `genq_submit` (0003) is gone, its checks,
-- round and announcement being those of the batch below for n = 1.
DROP FUNCTION genq_submit(JSONB, BIGINT, BIGINT);

-- As in 0008, with the key checked once, and the jobs as one array per
-- column rather than one JSON document: parsing 1,000 jobs' JSON took
-- 10 ms and turning it into rows 7 ms more, of a 27 ms batch (psql, the
-- jobs `codec::job_record` builds). Arrays arrive in the binary protocol
-- and `unnest` reads them as they are. The account and key are the
-- caller's, written into every row; the first job names the dialect the
-- key's limit counts, as every job of a batch has one dialect.
DROP FUNCTION genq_submit_batch(JSONB, BIGINT, BIGINT);
CREATE FUNCTION genq_submit_batch(
    batch_account TEXT, batch_key TEXT, max_per_key BIGINT, max_per_account BIGINT,
    ids TEXT[], kinds TEXT[], dialects TEXT[], inputs TEXT[], input_files TEXT[],
    webhook_urls TEXT[], models TEXT[], model_versions TEXT[], costs BIGINT[],
    media_tokens TEXT[], share_tokens TEXT[], correlation_ids TEXT[], priorities BIGINT[],
    timeouts_ms BIGINT[], deadlines_at BIGINT[], created_ats BIGINT[], updated_ats BIGINT[])
RETURNS TABLE (outcome TEXT, balance BIGINT)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    account_balance BIGINT;
    account_limit BIGINT;
    active BIGINT;
    total BIGINT;
    n BIGINT;
    round BIGINT;
    following BOOLEAN;
BEGIN
    n := coalesce(cardinality(ids), 0);
    IF n = 0 THEN
        RETURN QUERY SELECT 'INSERTED'::TEXT, NULL::BIGINT;
        RETURN;
    END IF;
    SELECT a.balance_micro_cents, a.max_concurrent_jobs INTO account_balance, account_limit
    FROM accounts a WHERE a.id = batch_account FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'NO_ACCOUNT'::TEXT, NULL::BIGINT;
        RETURN;
    END IF;
    PERFORM 1 FROM api_keys k WHERE k.id = batch_key AND k.account_id = batch_account;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'NO_KEY'::TEXT, NULL::BIGINT;
        RETURN;
    END IF;

    IF max_per_key IS NOT NULL THEN
        SELECT count(*) INTO active FROM jobs
        WHERE api_key_id = batch_key AND dialect = dialects[1]
          AND state IN ('PENDING', 'PROCESSING');
        IF active + n > max_per_key THEN
            RETURN QUERY SELECT 'KEY_LIMIT'::TEXT, account_balance;
            RETURN;
        END IF;
    END IF;

    IF max_per_account IS NOT NULL THEN
        account_limit := GREATEST(COALESCE(account_limit, max_per_account), 0);
        SELECT count(*) INTO active FROM (
            SELECT 1 FROM jobs WHERE account_id = batch_account
            AND state IN ('PENDING', 'PROCESSING') LIMIT account_limit) AS counted;
        IF active + n > account_limit THEN
            RETURN QUERY SELECT 'ACCOUNT_LIMIT'::TEXT, account_balance;
            RETURN;
        END IF;
    END IF;

    SELECT COALESCE(sum(GREATEST(c, 0)), 0) INTO total FROM unnest(costs) AS c;
    IF total > 0 AND account_balance < total THEN
        RETURN QUERY SELECT 'INSUFFICIENT_BALANCE'::TEXT, account_balance;
        RETURN;
    END IF;

    following := EXISTS (
        SELECT 1 FROM genq_followed_accounts f
        WHERE f.account_id = batch_account
          AND f.until > (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
    round := GREATEST(
        COALESCE((SELECT min(queue_round) FROM jobs WHERE state = 'PENDING'),
                 (SELECT queue_round FROM jobs ORDER BY id DESC LIMIT 1), 0),
        COALESCE((SELECT max(queue_round) + 1 FROM jobs
                  WHERE account_id = batch_account AND state = 'PENDING'), 0));
    PERFORM set_config('genq.quiet_inserts', 'on', true);
    INSERT INTO jobs (id, account_id, api_key_id, kind, dialect, input, input_files, state,
        progress, outputs, retries, attempt, webhook_url, model, model_version,
        cost_micro_cents, media_token, share_token, correlation_id, priority, timeout_ms,
        deadline_at, created_at, updated_at, cancel_requested, announce, queue_round)
    SELECT r.id, batch_account, batch_key, r.kind, r.dialect, r.input, r.input_files,
        'PENDING', 0, '[]', 0, 0, r.webhook_url, r.model, r.model_version,
        r.cost, r.media_token, r.share_token, r.correlation_id, r.priority,
        r.timeout_ms, r.deadline_at, r.created_at, r.updated_at, FALSE, following,
        round + r.ordinality - 1
    FROM unnest(ids, kinds, dialects, inputs, input_files, webhook_urls, models,
        model_versions, costs, media_tokens, share_tokens, correlation_ids, priorities,
        timeouts_ms, deadlines_at, created_ats, updated_ats) WITH ORDINALITY
        AS r (id, kind, dialect, input, input_files, webhook_url, model, model_version,
              cost, media_token, share_token, correlation_id, priority, timeout_ms,
              deadline_at, created_at, updated_at, ordinality);
    PERFORM set_config('genq.quiet_inserts', 'off', true);
    IF NOT following THEN
        -- One announcement for the batch: the wake-up of idle workers.
        PERFORM pg_notify('genq_job_events', json_build_object(
            'job_id', ids[1], 'account_id', batch_account, 'dialect', dialects[1],
            'state', 'PENDING', 'progress', 0,
            'correlation_id', left(correlation_ids[1], 256),
            'cancel_requested', FALSE, 'at', updated_ats[1])::text);
    END IF;

    IF total > 0 THEN
        INSERT INTO ledger (account_id, job_id, amount_micro_cents, reason, created_at)
        SELECT batch_account, r.id, -r.cost, 'reserve', r.created_at
        FROM unnest(ids, costs, created_ats) AS r (id, cost, created_at)
        WHERE r.cost > 0;
        UPDATE accounts SET balance_micro_cents = balance_micro_cents - total
        WHERE id = batch_account;
    END IF;

    RETURN QUERY SELECT 'INSERTED'::TEXT, account_balance - total;
END
$$;
