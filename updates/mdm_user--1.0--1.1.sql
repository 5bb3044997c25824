-- mdm_user 1.0 -> 1.1: what changed in SQL objects since release 1.0.
-- Each change here is also made in schema/ (docs/releasing.md); test/upgrade/run
-- checks that an upgraded 1.0 and a fresh 1.1 are the same.

\echo Use "ALTER EXTENSION mdm_user UPDATE TO '1.1'" to load this file. \quit

-- mdm.push_results(): the 200s of a batch without a row lock before the
-- update, and their attempts without ON CONFLICT; nothing more to do when
-- every outcome was a 200 (docs/performance.md, "Pushes")
CREATE OR REPLACE FUNCTION mdm.push_results(job_ids bigint[], apns_statuses integer[],
                                 apns_reasons text[] DEFAULT NULL, apns_ids text[] DEFAULT NULL)
    RETURNS TABLE (job_id bigint, state text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    -- a batch is a few hundred jobs: look each up by its index, whatever the
    -- statistics say (after a fan-out they say push_jobs is nearly empty)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
    SET enable_mergejoin = off SET jit = off AS $$
DECLARE
    handled integer[];
BEGIN
    IF job_ids IS NULL OR apns_statuses IS NULL
       OR cardinality(job_ids) <> cardinality(apns_statuses)
       OR cardinality(apns_reasons) <> cardinality(job_ids)
       OR cardinality(apns_ids) <> cardinality(job_ids) THEN
        RAISE EXCEPTION 'job_ids and apns_statuses must be given, and every array must have the same length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mdm_internal._distributed() THEN
        -- no row locks across shards on Citus: the batch's devices read at
        -- once, then job by job on its shard (schema/90_citus.sql)
        RETURN QUERY SELECT * FROM mdm_internal._push_results_by_job(job_ids, apns_statuses, apns_reasons, apns_ids);
        RETURN;
    END IF;
    -- 200 about a job still claimed, named once in the batch: sent
    WITH input AS (
        SELECT t.j, t.s, t.n FROM unnest(job_ids, apns_statuses) WITH ORDINALITY AS t(j, s, n)),
    ok AS (
        SELECT i.j, min(i.n)::integer AS n FROM input i
        GROUP BY i.j HAVING count(*) = 1 AND min(i.s) = 200 AND max(i.s) = 200),
    -- each job's key through the primary key, in ID order: joined to the
    -- batch with a state filter, the planner, trusting the statistics of
    -- an empty push_jobs, scanned every claimed job for each job of the
    -- batch (250,000 rows, 50 ms for 500)
    found AS (
        SELECT p.device_id, p.id, ok.n
        FROM (SELECT * FROM ok ORDER BY ok.j) ok
        CROSS JOIN LATERAL (
            SELECT p.device_id, p.id FROM mdm.push_jobs p WHERE p.id = ok.j LIMIT 1) p),
    -- no row lock first: the update locks each job and checks its state
    -- again on the version it locks (a claim that timed out meanwhile is
    -- left to mdm.push_result() below)
    sent AS (
        UPDATE mdm.push_jobs p
        SET state = 'sent', finished_at = now(), apns_status = 200, apns_reason = apns_reasons[f.n],
            apns_id = apns_ids[f.n]
        FROM found f
        WHERE p.device_id = f.device_id AND p.id = f.id AND p.state = 'claimed'
        RETURNING p.device_id, p.id, p.attempts, p.token_hex, f.n),
    -- a job still claimed has no outcome recorded for its current attempt
    -- (every report of an attempt ends the claim in the same transaction,
    -- and each claim counts a new attempt): a plain insert
    attempts AS (
        INSERT INTO mdm.push_attempts (device_id, job_id, attempt, apns_status, apns_reason, apns_id, token_hex)
        SELECT s.device_id, s.id, s.attempts, 200, apns_reasons[s.n], apns_ids[s.n], s.token_hex
        FROM sent s)
    SELECT coalesce(array_agg(sent.n), '{}') INTO handled FROM sent;
    RETURN QUERY SELECT job_ids[h], 'sent'::text FROM unnest(handled) h;
    IF cardinality(handled) = cardinality(job_ids) THEN
        RETURN;					-- the usual batch: all sent
    END IF;
    -- everything else, one by one, in order
    RETURN QUERY
        SELECT t.j, mdm.push_result(t.j, t.s, apns_reasons[t.n], apns_ids[t.n])
        FROM unnest(job_ids, apns_statuses) WITH ORDINALITY AS t(j, s, n)
        WHERE t.n <> ALL (handled)
        ORDER BY t.n;
END $$;
