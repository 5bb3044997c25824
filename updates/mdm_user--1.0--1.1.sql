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

-- mdm_internal._claim_fanouts(): each target of a chunk looked up once (it
-- was three times: for the waiting jobs, the claimed ones, and what the claim
-- returns), the claimed jobs numbered there (docs/performance.md, "Pushes")
CREATE OR REPLACE FUNCTION mdm_internal._claim_fanouts(max_jobs integer)
    RETURNS TABLE (job_id bigint, enrollment_id text, token_hex text, push_magic text,
                   topic text, cert_pem text, key_pem text, apns_expiration bigint,
                   apns_priority integer, apns_push_type text)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    f record;
    want integer := max_jobs;
    last integer;
    made integer;
    expiration bigint := mdm_internal._apns_expiration();
BEGIN
    WHILE want > 0 LOOP
        SELECT x.id, x.chunk, x.enrollment_ids, x.next_target INTO f
        FROM mdm.push_fanouts x
        ORDER BY x.created_at, x.id, x.chunk
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        EXIT WHEN NOT FOUND;
        last := least(f.next_target + want - 1, cardinality(f.enrollment_ids));
        IF last = cardinality(f.enrollment_ids) THEN
            DELETE FROM mdm.push_fanouts x WHERE x.id = f.id AND x.chunk = f.chunk;
        ELSE
            UPDATE mdm.push_fanouts x SET next_target = last + 1 WHERE x.id = f.id AND x.chunk = f.chunk;
        END IF;
        -- each target looked up once: the jobs are numbered here, so that
        -- what the claim returns comes from the same rows as what it inserts
        -- (targets whose topic has no certificate wait in a pending job)
        RETURN QUERY
        WITH targets AS MATERIALIZED (
            SELECT e.device_id, e.id, e.token_hex, e.push_magic, e.topic, c.topic IS NOT NULL AS has_cert,
                   CASE WHEN c.topic IS NOT NULL AND NOT EXISTS (
                            SELECT FROM mdm.push_jobs p
                            WHERE p.device_id = e.device_id AND p.enrollment_id = e.id
                              AND p.state IN ('pending', 'claimed'))
                        THEN nextval('mdm.push_jobs_id_seq') END AS job_id
            FROM unnest(f.enrollment_ids[f.next_target:last]) t(id)
            JOIN mdm.nano_enrollments e ON e.device_id = split_part(t.id, ':', 1) AND e.id = t.id
            LEFT JOIN mdm.push_certs c ON c.topic = e.topic
            WHERE e.enabled AND e.token_invalid_at IS NULL),
        waiting AS (
            INSERT INTO mdm.push_jobs AS j (device_id, enrollment_id)
            SELECT t.device_id, t.id FROM targets t WHERE NOT t.has_cert
            ON CONFLICT (device_id, enrollment_id) WHERE state = 'pending' DO NOTHING),
        made_jobs AS (
            INSERT INTO mdm.push_jobs AS j (device_id, id, enrollment_id, state, claimed_at, attempts, token_hex)
            SELECT t.device_id, t.job_id, t.id, 'claimed', now(), 1, t.token_hex
            FROM targets t WHERE t.job_id IS NOT NULL)
        SELECT t.job_id, t.id, t.token_hex, t.push_magic, t.topic, pc.cert_pem, pc.key_pem,
               expiration,
               10, 'mdm'::text
        FROM targets t
        JOIN mdm.push_certs pc ON pc.topic = t.topic
        WHERE t.job_id IS NOT NULL
        ORDER BY t.job_id;
        GET DIAGNOSTICS made = ROW_COUNT;
        want := want - made;
    END LOOP;
END $$;
