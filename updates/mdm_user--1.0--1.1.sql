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

-- Large fan-outs keep their targets as chunks of IDs (mdm.queue_fanouts),
-- expanded into queue items when first needed (docs/data-model.md).

CREATE TABLE mdm.queue_fanouts (
    command_uuid uuid NOT NULL,
    chunk integer NOT NULL,
    first_id text NOT NULL,
    last_id text NOT NULL,
    enrollment_ids text[] NOT NULL,
    priority integer NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (command_uuid, chunk),
    CHECK (first_id = enrollment_ids[1] AND last_id = enrollment_ids[cardinality(enrollment_ids)])
);

CREATE INDEX queue_fanouts_range ON mdm.queue_fanouts (first_id COLLATE "C", last_id COLLATE "C");

COMMENT ON TABLE mdm.queue_fanouts IS
    'Targets of a large fan-out whose queue items are not written yet: chunks of enrollment IDs, expanded when first needed';

COMMENT ON COLUMN mdm.queue_fanouts.command_uuid IS 'The command (mdm.nano_commands) queued to these targets';

COMMENT ON COLUMN mdm.queue_fanouts.chunk IS 'Which chunk of the command''s targets';

COMMENT ON COLUMN mdm.queue_fanouts.first_id IS 'The first enrollment ID of the chunk (in byte order, COLLATE "C")';

COMMENT ON COLUMN mdm.queue_fanouts.last_id IS 'The last enrollment ID of the chunk (in byte order)';

COMMENT ON COLUMN mdm.queue_fanouts.enrollment_ids IS 'The targets, distinct, in byte order (COLLATE "C")';

COMMENT ON COLUMN mdm.queue_fanouts.priority IS 'The priority of the queue items to write';

COMMENT ON COLUMN mdm.queue_fanouts.created_at IS 'When the command was queued: the created_at of its queue items';

SELECT pg_catalog.pg_extension_config_dump('mdm.queue_fanouts', '');

GRANT SELECT ON mdm.queue_fanouts TO mdm_reader, mdm_admin;

CREATE FUNCTION mdm_internal._queue_fanout(n integer, request_type text) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN n > mdm_internal._setting('mdm.push_fanout_threshold')::integer
           AND request_type IS DISTINCT FROM 'InstallProfile' AND NOT mdm_internal._distributed();
END $$;

CREATE FUNCTION mdm_internal._fanout_targets(enrollment_ids text[], OUT ids text[], OUT types text[])
    LANGUAGE plpgsql STABLE SET enable_nestloop = off SET work_mem = '64MB' AS $$
BEGIN
    IF enrollment_ids IS NULL OR cardinality(enrollment_ids) = 0
       OR array_position(enrollment_ids, NULL) IS NOT NULL THEN
        PERFORM mdm_internal._targets(enrollment_ids);   -- (its errors)
    END IF;
    -- (one sort for both arrays: the aggregates read the sorted rows in order)
    SELECT array_agg(s.id), array_agg(s.type) INTO ids, types
    FROM (SELECT e.id, e.type
          FROM (SELECT DISTINCT x.id FROM unnest(enrollment_ids) AS x(id)) t
          JOIN mdm.nano_enrollments e ON e.device_id = split_part(t.id, ':', 1) AND e.id = t.id
          ORDER BY e.id COLLATE "C") s;
    IF coalesce(cardinality(ids), 0) <> cardinality(enrollment_ids) THEN
        -- unknown IDs (the error), or only the same ID twice
        PERFORM mdm_internal._targets(enrollment_ids);
    END IF;
END $$;

CREATE FUNCTION mdm_internal._check_new_command(p_command_uuid uuid) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    exists_already boolean;
BEGIN
    exists_already := EXISTS (SELECT FROM mdm.nano_commands c WHERE c.command_uuid = p_command_uuid);
    IF NOT exists_already THEN
        PERFORM FROM mdm.nano_enrollment_queue q WHERE q.command_uuid = p_command_uuid LIMIT 1;
        exists_already := FOUND;
    END IF;
    IF exists_already THEN
        RAISE EXCEPTION 'command "%" already exists', p_command_uuid
            USING ERRCODE = 'unique_violation',
                  HINT = 'Each command needs its own CommandUUID; leave it out to have one made.';
    END IF;
END $$;

CREATE FUNCTION mdm_internal._write_fanout(p_ids text[], p_command_uuid uuid, command jsonb,
                                           p_priority integer, p_push boolean) RETURNS void
    LANGUAGE plpgsql SET work_mem = '64MB' AS $$
DECLARE
    -- one time for every item, as an eager enqueue's statement had
    at timestamptz := clock_timestamp();
BEGIN
    INSERT INTO mdm.nano_commands (command_uuid, request_type, command, plist)
    VALUES (p_command_uuid, command->>'RequestType', command,
            mdm.jsonb_to_plist(jsonb_build_object('CommandUUID', upper(p_command_uuid::text),
                                                  'Command', command)));
    WITH chunks AS (
        SELECT (u.n - 1) / 1000 AS chunk, array_agg(u.id ORDER BY u.n) AS targets
        FROM unnest(p_ids) WITH ORDINALITY AS u(id, n)
        GROUP BY 1),
    queued AS (
        INSERT INTO mdm.queue_fanouts (command_uuid, chunk, first_id, last_id, enrollment_ids, priority, created_at)
        SELECT p_command_uuid, c.chunk, c.targets[1], c.targets[cardinality(c.targets)], c.targets,
               p_priority, at
        FROM chunks c)
    INSERT INTO mdm.push_fanouts (id, chunk, enrollment_ids)
    SELECT f.id, c.chunk, c.targets
    FROM chunks c, (SELECT gen_random_uuid() AS id) f
    WHERE p_push;
    IF p_push THEN
        PERFORM pg_notify('mdm_push', '');
    END IF;
END $$;

CREATE FUNCTION mdm_internal._expand_queue_fanout(p_command_uuid uuid, p_chunk integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    made integer;
BEGIN
    INSERT INTO mdm.nano_enrollment_queue (device_id, id, command_uuid, priority, created_at)
    SELECT l.device_id, l.id, f.command_uuid, f.priority, f.created_at
    FROM mdm.queue_fanouts f
    CROSS JOIN LATERAL (
        SELECT e.device_id, e.id
        FROM unnest(f.enrollment_ids) t(id)
        JOIN mdm.nano_enrollments e ON e.device_id = split_part(t.id, ':', 1) AND e.id = t.id
        ORDER BY e.device_id, e.id
        FOR KEY SHARE OF e) l
    WHERE f.command_uuid = p_command_uuid AND f.chunk = p_chunk;
    GET DIAGNOSTICS made = ROW_COUNT;
    DELETE FROM mdm.queue_fanouts f WHERE f.command_uuid = p_command_uuid AND f.chunk = p_chunk;
    RETURN made;
END $$;

CREATE FUNCTION mdm_internal._expand_queue_fanouts(lo text, hi text, skip_locked boolean DEFAULT false)
    RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    f record;
    made integer := 0;
BEGIN
    IF skip_locked THEN
        FOR f IN SELECT x.command_uuid, x.chunk FROM mdm.queue_fanouts x
                 WHERE x.first_id COLLATE "C" <= hi AND x.last_id COLLATE "C" >= lo
                 ORDER BY x.created_at, x.command_uuid, x.chunk
                 FOR UPDATE SKIP LOCKED LOOP
            made := made + mdm_internal._expand_queue_fanout(f.command_uuid, f.chunk);
        END LOOP;
    ELSE
        FOR f IN SELECT x.command_uuid, x.chunk FROM mdm.queue_fanouts x
                 WHERE x.first_id COLLATE "C" <= hi AND x.last_id COLLATE "C" >= lo
                 ORDER BY x.created_at, x.command_uuid, x.chunk
                 FOR UPDATE LOOP
            made := made + mdm_internal._expand_queue_fanout(f.command_uuid, f.chunk);
        END LOOP;
    END IF;
    RETURN made;
END $$;

CREATE FUNCTION mdm_internal._expand_old_queue_fanouts(max_chunks integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    f record;
    made integer := 0;
BEGIN
    FOR f IN SELECT x.command_uuid, x.chunk FROM mdm.queue_fanouts x
             ORDER BY x.created_at, x.command_uuid, x.chunk
             LIMIT max_chunks
             FOR UPDATE SKIP LOCKED LOOP
        made := made + mdm_internal._expand_queue_fanout(f.command_uuid, f.chunk);
    END LOOP;
    RETURN made;
END $$;

REVOKE ALL ON FUNCTION mdm_internal._queue_fanout(integer, text), mdm_internal._fanout_targets(text[]),
    mdm_internal._check_new_command(uuid), mdm_internal._write_fanout(text[], uuid, jsonb, integer, boolean),
    mdm_internal._expand_queue_fanout(uuid, integer), mdm_internal._expand_queue_fanouts(text, text, boolean),
    mdm_internal._expand_old_queue_fanouts(integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION mdm_internal._queue_command(targets mdm_internal._target[], p_command_uuid uuid, command jsonb,
                                   p_priority integer, p_push boolean DEFAULT true,
                                   p_locked boolean DEFAULT false) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    rtype text := command->>'RequestType';
    locked integer;
    fanout boolean := mdm_internal._queue_fanout(cardinality(targets), command->>'RequestType');
BEGIN
    PERFORM mdm_internal._check_new_command(p_command_uuid);
    IF fanout THEN
        -- a large fan-out: the command once, its targets as chunks of
        -- sorted IDs (no queue item, no lock: they are written and locked
        -- when first needed, mdm_internal._expand_queue_fanout()); the
        -- pushes in chunks too (_announce_pushes(), same threshold)
        PERFORM mdm_internal._write_fanout(
            ARRAY(SELECT DISTINCT t.enrollment_id COLLATE "C" FROM unnest(targets) t ORDER BY 1),
            p_command_uuid, command, p_priority, p_push);
        RETURN;
    END IF;
    IF NOT p_locked AND NOT mdm_internal._distributed() THEN
        -- (on Citus the foreign key does it: schema/90_citus.sql)
        SELECT count(*) INTO locked FROM (
            SELECT FROM mdm.nano_enrollments e
            WHERE (e.device_id, e.id) IN (SELECT t.device_id, t.enrollment_id FROM unnest(targets) t)
            ORDER BY e.device_id, e.id
            FOR KEY SHARE OF e) l;
        IF locked <> cardinality(targets) THEN
            RAISE EXCEPTION 'an enrollment of the command''s targets no longer exists'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    INSERT INTO mdm.nano_commands (command_uuid, request_type, command, plist)
    VALUES (p_command_uuid, rtype, command,
            mdm.jsonb_to_plist(jsonb_build_object('CommandUUID', upper(p_command_uuid::text),
                                                  'Command', command)));
    -- (the targets come in (device_id, id) order; no locks are taken here)
    INSERT INTO mdm.nano_enrollment_queue (device_id, id, command_uuid, priority)
    SELECT t.device_id, t.enrollment_id, p_command_uuid, p_priority
    FROM unnest(targets) t;
    IF p_push THEN
        PERFORM mdm_internal._announce_pushes(targets);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION mdm_internal._enqueue(enrollment_ids text[], command jsonb, priority integer,
                             allow_unknown_request_type boolean, push boolean)
    RETURNS uuid
    LANGUAGE plpgsql AS $$
DECLARE
    parts record := mdm_internal._command_parts(command);
    rtype text := parts.command->>'RequestType';
    rt mdm.apple_request_types;
    -- a large fan-out's targets are not locked (_queue_command())
    fanout boolean := mdm_internal._queue_fanout(cardinality(enrollment_ids), parts.command->>'RequestType');
    targets mdm_internal._target[] := CASE WHEN NOT fanout THEN mdm_internal._lock_targets(enrollment_ids) END;
    fan record := CASE WHEN fanout THEN mdm_internal._fanout_targets(enrollment_ids) END;
    refused text[];
    need_platform boolean;
BEGIN
    IF priority IS NULL OR allow_unknown_request_type IS NULL OR push IS NULL THEN
        RAISE EXCEPTION '% must not be NULL',
                        CASE WHEN priority IS NULL THEN 'priority'
                             WHEN push IS NULL THEN 'push' ELSE 'allow_unknown_request_type' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO rt FROM mdm.apple_request_types WHERE request_type = rtype;
    IF NOT FOUND THEN
        IF NOT allow_unknown_request_type THEN
            RAISE EXCEPTION 'unrecognized RequestType "%"', rtype
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Apple''s schema (mdm.apple_request_types) has no such command.',
                      HINT = 'Pass allow_unknown_request_type => true for commands newer than the schema.';
        END IF;
    ELSE
        -- a device's platform is read only if the rule depends on it
        -- (_request_allowed() with no platform: allowed on some)
        SELECT bool_or(NOT mdm_internal._request_allowed(rt, x.etype, p.platform)) INTO need_platform
        FROM unnest(ARRAY['Device', 'User Enrollment (Device)']) x(etype),
             unnest(ARRAY['macOS', 'iOS', 'tvOS', 'visionOS', 'watchOS']) p(platform);
        IF fanout THEN
            SELECT array_agg(t.id ORDER BY t.id) INTO refused
            FROM unnest(fan.ids, fan.types) t(id, type)
            WHERE NOT mdm_internal._request_allowed(rt, t.type,
                      CASE WHEN need_platform THEN (SELECT mdm.device_platform(d.model) FROM mdm.nano_devices d
                                                    WHERE d.id = split_part(t.id, ':', 1)) END);
        ELSE
            SELECT array_agg(t.enrollment_id ORDER BY t.enrollment_id) INTO refused
            FROM unnest(targets) t
            WHERE NOT mdm_internal._request_allowed(rt, t.type, coalesce(t.platform,
                      CASE WHEN need_platform THEN (SELECT mdm.device_platform(d.model) FROM mdm.nano_devices d
                                                    WHERE d.id = t.device_id) END));
        END IF;
        IF refused IS NOT NULL THEN
            RAISE EXCEPTION 'RequestType "%" is not supported on the channel of % enrollment(s): %',
                            rtype, cardinality(refused),
                            array_to_string(refused[1:10], ', ') ||
                            CASE WHEN cardinality(refused) > 10 THEN ', ...' ELSE '' END
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Apple''s schema allows %s on: %s. Nothing was queued.', rtype,
                          coalesce(array_to_string(ARRAY[
                              CASE WHEN rt.macos_device_channel THEN 'the macOS device channel' END,
                              CASE WHEN rt.macos_user_channel THEN 'the macOS user channel' END,
                              CASE WHEN rt.ios_device_channel THEN 'iOS and iPadOS devices' END,
                              CASE WHEN rt.shared_ipad_device_channel THEN 'the Shared iPad device channel' END,
                              CASE WHEN rt.shared_ipad_user_channel THEN 'the Shared iPad user channel' END,
                              CASE WHEN rt.tvos_supported THEN 'tvOS' END,
                              CASE WHEN rt.visionos_supported THEN 'visionOS' END,
                              CASE WHEN rt.watchos_supported THEN 'watchOS' END], ', '),
                              'no platform'));
        END IF;
    END IF;
    IF rtype = 'InstallProfile' THEN
        -- the profile's payloads against its scope's channel, as at upload
        -- (the scope against the targets' channels is checked by the queue,
        -- schema/60_profiles.sql)
        PERFORM mdm_internal._installprofile_profile(parts.command, true);
    END IF;

    IF NOT fanout THEN
        PERFORM mdm_internal._queue_command(targets, parts.command_uuid, parts.command, priority, push,
                                            p_locked => NOT mdm_internal._distributed());
    ELSIF cardinality(fan.ids) > mdm_internal._setting('mdm.push_fanout_threshold')::integer THEN
        -- a large fan-out (schema/30_queue.sql, mdm.queue_fanouts)
        PERFORM mdm_internal._check_new_command(parts.command_uuid);
        PERFORM mdm_internal._write_fanout(fan.ids, parts.command_uuid, parts.command, priority, push);
    ELSE
        -- (the same IDs many times: few targets, queued and locked by _queue_command)
        PERFORM mdm_internal._queue_command(ARRAY(SELECT ROW(split_part(t.id, ':', 1), t.id, t.type, NULL)::mdm_internal._target
                                                  FROM unnest(fan.ids, fan.types) t(id, type)),
                                            parts.command_uuid, parts.command, priority, push);
    END IF;
    RETURN parts.command_uuid;
END $$;

CREATE OR REPLACE VIEW mdm.view_queue AS
SELECT q.device_id, q.id AS enrollment_id, q.command_uuid,
       coalesce(q.request_type, c.request_type) AS request_type, q.priority,
       CASE WHEN q.cleared_reason = 'expired' THEN 'expired'
            WHEN q.cleared_at IS NOT NULL THEN 'cleared'
            WHEN r.status IS NOT NULL THEN r.status
            WHEN q.sent_at IS NOT NULL THEN 'sent'
            ELSE 'pending' END AS state,
       q.active, q.created_at AS queued_at, q.sent_at, q.sent_count, q.finished_at,
       r.not_now_tally
FROM mdm.nano_enrollment_queue q
LEFT JOIN mdm.nano_commands c ON q.request_type IS NULL AND c.command_uuid = q.command_uuid
LEFT JOIN mdm.nano_command_results r
       ON r.device_id = q.device_id AND r.id = q.id AND r.command_uuid = q.command_uuid
UNION ALL
-- targets of a large fan-out whose items are not written yet: pending
-- (an enrollment deleted since is skipped, as its expansion skips it)
SELECT e.device_id, e.id, f.command_uuid, c.request_type, f.priority, 'pending', true,
       f.created_at, NULL::timestamptz, 0, NULL::timestamptz, NULL::integer
FROM mdm.queue_fanouts f
JOIN mdm.nano_commands c ON c.command_uuid = f.command_uuid
CROSS JOIN LATERAL unnest(f.enrollment_ids) t(id)
JOIN mdm.nano_enrollments e ON e.device_id = split_part(t.id, ':', 1) AND e.id = t.id;

CREATE OR REPLACE FUNCTION mdm_internal._checkin_authenticate(p_device_id text, msg jsonb, raw bytea,
                                          p_identity_cert bytea) RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
DECLARE
    -- now(), read once: Citus takes no STABLE function inside a CASE of an UPDATE
    at timestamptz := now();
BEGIN
    -- the device's targets still waiting in a large fan-out get their queue
    -- items first, so that the re-enrollment clears them below as it clears
    -- the others (before any lock of this transaction: the expansion waits
    -- for no one that waits for us; schema/30_queue.sql)
    PERFORM mdm_internal._expand_queue_fanouts(p_device_id, p_device_id || ';')
    WHERE EXISTS (SELECT FROM mdm.queue_fanouts f
                  WHERE f.first_id COLLATE "C" <= p_device_id || ';'
                    AND f.last_id COLLATE "C" >= p_device_id);
    INSERT INTO mdm.nano_devices AS d
        (id, serial_number, device_name, model, model_name, product_name, os_version,
         build_version, imei, meid, identity_cert, authenticate, authenticate_at)
    VALUES (p_device_id, msg->>'SerialNumber', msg->>'DeviceName', msg->>'Model',
            msg->>'ModelName', msg->>'ProductName', msg->>'OSVersion', msg->>'BuildVersion',
            msg->>'IMEI', msg->>'MEID', p_identity_cert, raw, now())
    ON CONFLICT (id) DO UPDATE SET
        serial_number = excluded.serial_number, device_name = excluded.device_name,
        model = excluded.model, model_name = excluded.model_name,
        product_name = excluded.product_name, os_version = excluded.os_version,
        build_version = excluded.build_version, imei = excluded.imei, meid = excluded.meid,
        identity_cert = coalesce(excluded.identity_cert, d.identity_cert),
        authenticate = excluded.authenticate, authenticate_at = excluded.authenticate_at,
        checked_out_at = NULL, updated_at = excluded.updated_at;

    -- Serialise with writers that add work for the device's channels: every
    -- row they insert (queue items, push jobs, profile deliveries) holds a
    -- foreign-key lock (FOR KEY SHARE) on its enrollment until they commit,
    -- and FOR UPDATE waits for it, so the statements below see that work
    -- and clear it; a writer that comes later waits for this transaction
    -- and sees the channels disabled.  In id order, as writers insert in
    -- (device_id, id) order, so neither can hold one lock the other waits
    -- for while waiting for another.  See docs/queue.md (concurrency).
    PERFORM FROM mdm.nano_enrollments WHERE device_id = p_device_id ORDER BY id FOR UPDATE;
    -- a re-enrollment: every channel waits for its next TokenUpdate; the
    -- device channel, which this message came on, was seen now
    UPDATE mdm.nano_enrollments
    SET enabled = false, updated_at = now(),
        last_seen_at = CASE WHEN id = p_device_id THEN at ELSE last_seen_at END
    WHERE device_id = p_device_id AND (enabled OR id = p_device_id);
    UPDATE mdm.device_secrets SET bootstrap_token = NULL, bootstrap_token_at = now()
    WHERE device_id = p_device_id AND bootstrap_token IS NOT NULL;
    -- and the commands still waiting for any of its channels are dropped,
    -- with the pushes for them (the old tokens are void)
    UPDATE mdm.nano_enrollment_queue SET active = false, cleared_at = now(),
           cleared_reason = 're-enrollment'
    WHERE device_id = p_device_id AND active;
    UPDATE mdm.push_jobs SET state = 'superseded', finished_at = now(), apns_reason = 're-enrollment'
    WHERE device_id = p_device_id AND state = 'pending';
    -- a new enrollment starts without managed profiles: reconcile delivers
    -- them again once its channels have their TokenUpdate
    DELETE FROM mdm.profile_deliveries WHERE device_id = p_device_id;
    RETURN mdm_internal._reply_empty();
END $$;

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
        -- the commands these targets wait for in large fan-outs get their
        -- queue items now, before their pushes go out (in this transaction:
        -- the poll a push brings finds them; a chunk someone else is
        -- expanding is left to them, and the poll waits for it)
        PERFORM mdm_internal._expand_queue_fanouts(r.lo, r.hi, skip_locked => true)
        FROM (SELECT min(t.id COLLATE "C") AS lo, max(t.id COLLATE "C") AS hi
              FROM unnest(f.enrollment_ids[f.next_target:last]) t(id)) r
        WHERE EXISTS (SELECT FROM mdm.queue_fanouts q
                      WHERE q.first_id COLLATE "C" <= r.hi AND q.last_id COLLATE "C" >= r.lo);
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

CREATE OR REPLACE FUNCTION mdm_internal._enrollment_key_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM mdm.nano_enrollment_queue q
               WHERE q.device_id = OLD.device_id AND q.id = OLD.id)
       OR EXISTS (SELECT FROM mdm.nano_command_results r
                  WHERE r.device_id = OLD.device_id AND r.id = OLD.id)
       OR EXISTS (SELECT FROM mdm.push_jobs j
                  WHERE j.device_id = OLD.device_id AND j.enrollment_id = OLD.id)
       OR EXISTS (SELECT FROM mdm.queue_fanouts f
                  WHERE f.first_id COLLATE "C" <= OLD.id AND f.last_id COLLATE "C" >= OLD.id
                    AND OLD.id = ANY (f.enrollment_ids)) THEN
        RAISE EXCEPTION 'cannot change the key of enrollment (%, %): queue items, results or push jobs refer to it',
                        OLD.device_id, OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION mdm_internal._prune_history(batch_size integer) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - make_interval(secs => mdm_internal._setting('mdm.history_retention')::integer);
    n_messages integer;
    n_queue integer;
    n_orphans integer;
    n_pushes integer;
    n_commands integer;
    doomed_commands uuid[];
BEGIN
    WITH doomed AS (SELECT device_id, id FROM mdm.checkin_messages
                    WHERE received_at < cutoff LIMIT batch_size),
         gone AS (DELETE FROM mdm.checkin_messages m USING doomed d
                  WHERE m.device_id = d.device_id AND m.id = d.id RETURNING 1)
    SELECT count(*) INTO n_messages FROM gone;

    -- finished or cleared queue items, with their results (no foreign key
    -- cascades: schema/30_queue.sql)
    WITH doomed AS (SELECT device_id, id, command_uuid FROM mdm.nano_enrollment_queue
                    WHERE NOT active AND coalesce(finished_at, cleared_at) < cutoff
                    LIMIT batch_size),
         gone AS (DELETE FROM mdm.nano_enrollment_queue q USING doomed d
                  WHERE q.device_id = d.device_id AND q.id = d.id
                    AND q.command_uuid = d.command_uuid
                  RETURNING q.device_id, q.id, q.command_uuid),
         results AS (DELETE FROM mdm.nano_command_results r USING gone g
                     WHERE r.device_id = g.device_id AND r.id = g.id AND r.command_uuid = g.command_uuid)
    SELECT count(*) INTO n_queue FROM gone;

    WITH doomed AS (SELECT device_id, id FROM mdm.orphan_reports
                    WHERE received_at < cutoff LIMIT batch_size),
         gone AS (DELETE FROM mdm.orphan_reports o USING doomed d
                  WHERE o.device_id = d.device_id AND o.id = d.id RETURNING 1)
    SELECT count(*) INTO n_orphans FROM gone;

    -- (a job finishes after it is created: the old ones are found by their
    -- creation, through the BRIN index), with their attempts; and pending
    -- jobs whose enrollment is gone (a hand delete racing a fan-out's
    -- claim can leave one: no foreign key, schema/30_queue.sql), through
    -- the index of pending jobs
    WITH finished AS (SELECT device_id, id FROM mdm.push_jobs
                      WHERE created_at < cutoff
                        AND state IN ('sent', 'failed', 'superseded') AND finished_at < cutoff
                      LIMIT batch_size),
         orphaned AS (SELECT j.device_id, j.id FROM mdm.push_jobs j
                      WHERE j.state = 'pending'
                        AND NOT EXISTS (SELECT FROM mdm.nano_enrollments e
                                        WHERE e.device_id = j.device_id AND e.id = j.enrollment_id)
                      LIMIT batch_size),
         doomed AS (SELECT device_id, id FROM finished UNION SELECT device_id, id FROM orphaned),
         gone AS (DELETE FROM mdm.push_jobs j USING doomed d
                  WHERE j.device_id = d.device_id AND j.id = d.id RETURNING j.device_id, j.id),
         attempts AS (DELETE FROM mdm.push_attempts a USING gone g
                      WHERE a.device_id = g.device_id AND a.job_id = g.id)
    SELECT count(*) INTO n_pushes FROM gone;

    -- commands no queue item refers to any more
    IF mdm_internal._distributed() THEN
        -- on Citus (docs/citus.md): no sub-select from a reference table
        -- correlated with a distributed one; the old commands' items are
        -- looked up in one pass over the shards instead
        doomed_commands := ARRAY(SELECT c.command_uuid FROM mdm.nano_commands c
                                 WHERE c.created_at < cutoff);
        doomed_commands := ARRAY(SELECT u FROM unnest(doomed_commands) u
                                 EXCEPT
                                 SELECT q.command_uuid FROM mdm.nano_enrollment_queue q
                                 WHERE q.command_uuid = ANY (doomed_commands));
        DELETE FROM mdm.nano_commands c
        WHERE c.command_uuid = ANY (doomed_commands[1:batch_size]);
        GET DIAGNOSTICS n_commands = ROW_COUNT;
    ELSE
        WITH doomed AS (SELECT c.command_uuid FROM mdm.nano_commands c
                        WHERE c.created_at < cutoff
                          AND NOT EXISTS (SELECT FROM mdm.nano_enrollment_queue q
                                          WHERE q.command_uuid = c.command_uuid)
                          -- (nor a chunk of targets still waiting: schema/30_queue.sql)
                          AND NOT EXISTS (SELECT FROM mdm.queue_fanouts f
                                          WHERE f.command_uuid = c.command_uuid)
                        LIMIT batch_size),
             gone AS (DELETE FROM mdm.nano_commands c USING doomed d
                      WHERE c.command_uuid = d.command_uuid RETURNING 1)
        SELECT count(*) INTO n_commands FROM gone;
    END IF;

    RETURN jsonb_build_object('checkin_messages', n_messages, 'queue_items', n_queue,
                              'orphan_reports', n_orphans, 'push_jobs', n_pushes,
                              'commands', n_commands);
END $$;

CREATE OR REPLACE FUNCTION mdm.run_maintenance(batch_size integer DEFAULT 10000) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result jsonb;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1, not %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_is_in_recovery() THEN
        RETURN jsonb_build_object('skipped', 'standby');
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('mdm.run_maintenance')) THEN
        RETURN jsonb_build_object('skipped', 'another run_maintenance() is running');
    END IF;
    -- first: what follows (expiry, re-push) reads queue items
    result := jsonb_build_object('expanded_fanouts',
                                 mdm_internal._expand_old_queue_fanouts(greatest(batch_size / 1000, 1)))
              || jsonb_build_object('released_push_claims', mdm_internal._release_stale_claims(),
                                 'expired_commands', mdm_internal._expire_pending(batch_size),
                                 'repushed', mdm_internal._repush(batch_size))
              || mdm_internal._prune_history(batch_size)
              || jsonb_build_object('events', mdm_internal._prune_events(batch_size));
    -- last: it holds its lock until the end of the transaction
    RETURN result || jsonb_build_object('reconciled', mdm_internal._reconcile_slice(batch_size));
END $$;

CREATE OR REPLACE VIEW mdm.view_enrollments AS
SELECT e.id AS enrollment_id, e.device_id, d.serial_number,
       CASE WHEN e.user_id IS NULL THEN 'device' ELSE 'user' END AS channel,
       e.type, u.user_short_name, u.user_long_name,
       coalesce(e.enabled AND e.token_invalid_at IS NULL AND c.not_after > now(), false) AS pushable,
       CASE WHEN NOT e.enabled AND d.checked_out_at IS NOT NULL THEN 'checked out'
            WHEN NOT e.enabled THEN 'waiting for its TokenUpdate (re-enrolled)'
            WHEN e.token_invalid_at IS NOT NULL
            THEN pg_catalog.format('APNs invalidated the token (%s) at %s', e.token_invalid_reason,
                                   e.token_invalid_at)
            WHEN c.topic IS NULL THEN pg_catalog.format('no push certificate for topic %s', e.topic)
            WHEN c.not_after <= now() THEN pg_catalog.format('push certificate expired at %s', c.not_after)
       END AS not_pushable_because,
       e.last_seen_at,
       (SELECT count(*) FROM mdm.nano_enrollment_queue q
        WHERE q.device_id = e.device_id AND q.id = e.id AND q.active)
       -- and those waiting in a large fan-out (schema/30_queue.sql)
       + (SELECT count(*) FROM mdm.queue_fanouts f
          WHERE f.first_id COLLATE "C" <= e.id AND f.last_id COLLATE "C" >= e.id
            AND e.id = ANY (f.enrollment_ids)) AS pending_commands,
       (SELECT array_agg(l.name ORDER BY l.name) FROM mdm.label_enrollments le
        JOIN mdm.labels l ON l.id = le.label_id
        WHERE le.device_id = e.device_id AND le.enrollment_id IN (e.id, e.device_id)) AS labels,
       e.topic, e.token_update_at, e.created_at AS enrolled_at
FROM mdm.nano_enrollments e
JOIN mdm.nano_devices d ON d.id = e.device_id
LEFT JOIN mdm.nano_users u ON u.device_id = e.device_id AND u.id = e.user_id
LEFT JOIN mdm.push_certs c ON c.topic = e.topic;

CREATE OR REPLACE FUNCTION mdm.distribute() RETURNS text
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fkeys text[];
    r record;
    t text;
    failed text;
    reference_tables text[] := ARRAY[
        'apple_schema_source', 'apple_checkin_messages', 'apple_request_types', 'apple_payload_types',
        'maintenance_state', 'push_certs', 'trust_anchors', 'nano_commands', 'profiles',
        'profile_payloads', 'profile_bindings', 'labels', 'idp_groups', 'idp_group_members',
        'label_idp_users', 'profile_assignments'];
    device_tables text[] := ARRAY[
        'device_secrets', 'nano_users', 'nano_enrollments', 'checkin_messages', 'device_identities',
        'nano_enrollment_queue', 'nano_command_results', 'orphan_reports', 'push_jobs',
        'push_attempts', 'enrollment_values', 'label_enrollments', 'idp_user_enrollments',
        'idp_user_logins', 'profile_deliveries', 'device_inventory', 'events'];
BEGIN
    IF to_regproc('pg_catalog.create_distributed_table') IS NULL THEN
        RAISE EXCEPTION 'Citus is not installed in this database'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Load citus (shared_preload_libraries) and CREATE EXTENSION citus first; see docs/citus.md.';
    ELSIF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'mdm.distribute() runs on the Citus coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSIF mdm_internal._distributed() THEN
        RAISE EXCEPTION 'mdm_user is distributed already'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Workers added later get shards with citus_rebalance_start(); see docs/citus.md.';
    ELSIF NOT EXISTS (SELECT FROM pg_dist_node WHERE shouldhaveshards AND isactive) THEN
        RAISE EXCEPTION 'the Citus cluster has no worker for shards'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the workers with citus_add_node() first.';
    ELSIF EXISTS (SELECT FROM mdm.push_fanouts) THEN
        -- distributed, claim_pushes never expands them (schema/40_push.sql)
        RAISE EXCEPTION 'push fan-outs are waiting in mdm.push_fanouts'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Let the push sender claim them (mdm.claim_pushes()) first.';
    ELSIF EXISTS (SELECT FROM mdm.queue_fanouts) THEN
        -- distributed, every queue item is on its device's shard and no
        -- poll or claim expands a chunk (schema/30_queue.sql)
        RAISE EXCEPTION 'large fan-outs are waiting in mdm.queue_fanouts'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run mdm.run_maintenance() until mdm.queue_fanouts is empty first.';
    END IF;

    -- the foreign keys to put back, except reference -> distributed, which
    -- Citus does not support (profile_bindings -> nano_enrollments)
    fkeys := ARRAY(SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
                                 pg_get_constraintdef(c.oid))
                   FROM pg_constraint c
                   WHERE c.contype = 'f' AND c.connamespace = 'mdm'::regnamespace
                     AND c.conrelid <> 'mdm.profile_bindings'::regclass
                   ORDER BY c.conrelid::regclass::text, c.conname);
    PERFORM mdm_internal._citus_prepare_node();
    FOR r IN SELECT * FROM run_command_on_workers('SELECT mdm_internal._citus_prepare_node()') LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'could not prepare worker %:%', r.nodename, r.nodeport
                USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = r.result;
        END IF;
    END LOOP;

    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    -- (not a NOTICE per table about the local rows it copies)
    PERFORM set_config('client_min_messages', 'warning', true);
    -- nano_commands keeps its row trigger (the derived profile columns)
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    FOREACH t IN ARRAY reference_tables LOOP
        PERFORM create_reference_table(format('mdm.%I', t)::regclass);
    END LOOP;
    -- the rows were copied to the placements; the coordinator's local copy
    -- is no longer read
    FOREACH t IN ARRAY reference_tables LOOP
        PERFORM truncate_local_data_after_distributing_table(format('mdm.%I', t)::regclass);
    END LOOP;
    PERFORM create_distributed_table('mdm.nano_devices', 'id', colocate_with => 'none');
    FOREACH t IN ARRAY device_tables LOOP
        PERFORM create_distributed_table(format('mdm.%I', t)::regclass, 'device_id',
                                         colocate_with => 'mdm.nano_devices');
    END LOOP;
    PERFORM create_distributed_table('mdm.identity_certs', 'cert_sha256', colocate_with => 'none');
    FOREACH t IN ARRAY fkeys LOOP
        EXECUTE t;
    END LOOP;
    -- the derived rows have no foreign keys on a single server (their
    -- writers check them: schema/30_queue.sql); here, where a writer cannot
    -- lock the targets of a fan-out across shards, their keys take the
    -- locks and cascade, on each worker's local shards
    ALTER TABLE mdm.nano_enrollment_queue ADD CONSTRAINT nano_enrollment_queue_enrollment_fkey
        FOREIGN KEY (device_id, id) REFERENCES mdm.nano_enrollments ON DELETE CASCADE;
    ALTER TABLE mdm.nano_command_results ADD CONSTRAINT nano_command_results_item_fkey
        FOREIGN KEY (device_id, id, command_uuid) REFERENCES mdm.nano_enrollment_queue ON DELETE CASCADE;
    ALTER TABLE mdm.push_jobs ADD CONSTRAINT push_jobs_enrollment_fkey
        FOREIGN KEY (device_id, enrollment_id) REFERENCES mdm.nano_enrollments ON DELETE CASCADE;
    ALTER TABLE mdm.push_attempts ADD CONSTRAINT push_attempts_job_fkey
        FOREIGN KEY (device_id, job_id) REFERENCES mdm.push_jobs (device_id, id) ON DELETE CASCADE;
    -- the queue's INSERT guard row by row (schema/60_profiles.sql); not for
    -- the one-target commands kept in their item, which are no profiles
    CREATE TRIGGER check_item AFTER INSERT ON mdm.nano_enrollment_queue
        FOR EACH ROW WHEN (NEW.active AND NEW.request_type IS NULL)
        EXECUTE FUNCTION mdm_internal._queue_check_item();

    PERFORM create_distributed_function('mdm.checkin_routed(text, bytea, bytea, text)', 'device_id',
                                        colocate_with => 'mdm.nano_devices');
    PERFORM create_distributed_function('mdm.connect_routed(text, bytea, bytea, text)', 'device_id',
                                        colocate_with => 'mdm.nano_devices');
    PERFORM create_distributed_function('mdm.enqueue_routed(text, text[], jsonb, integer, boolean, boolean)',
                                        'device_id', colocate_with => 'mdm.nano_devices');
    RETURN format('distributed: %s reference tables, %s tables by device, mdm.identity_certs by certificate',
                  cardinality(reference_tables), cardinality(device_tables) + 1);
END $$;

-- Issue 16, bytes per Mac: an identity certificate is kept once.  The bound
-- certificate is in mdm.device_identities.cert_der; nano_devices.identity_cert
-- keeps only an Authenticate's certificate that is not the bound one.  Rows
-- written before keep their copy until the device's next Authenticate.
-- Authenticate: (re-)enrollment of a device.  raw is NULL when the message
-- is logged (src/checkin_path.c): a message is kept in one place only.  So
-- is its identity certificate: the bound one (checked or bound before this
-- runs) is in mdm.device_identities, and nano_devices.identity_cert keeps
-- only one that is not.
CREATE OR REPLACE FUNCTION mdm_internal._checkin_authenticate(p_device_id text, msg jsonb, raw bytea,
                                          p_identity_cert bytea) RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
DECLARE
    -- now(), read once: Citus takes no STABLE function inside a CASE of an UPDATE
    at timestamptz := now();
    unbound_cert bytea := p_identity_cert;
BEGIN
    -- the device's targets still waiting in a large fan-out get their queue
    -- items first, so that the re-enrollment clears them below as it clears
    -- the others (before any lock of this transaction: the expansion waits
    -- for no one that waits for us; schema/30_queue.sql)
    PERFORM mdm_internal._expand_queue_fanouts(p_device_id, p_device_id || ';')
    WHERE EXISTS (SELECT FROM mdm.queue_fanouts f
                  WHERE f.first_id COLLATE "C" <= p_device_id || ';'
                    AND f.last_id COLLATE "C" >= p_device_id);
    IF p_identity_cert IS NOT NULL THEN
        PERFORM FROM mdm.device_identities i
        WHERE i.device_id = p_device_id AND i.cert_sha256 = sha256(p_identity_cert);
        IF FOUND THEN
            unbound_cert := NULL;
        END IF;
    END IF;
    INSERT INTO mdm.nano_devices AS d
        (id, serial_number, device_name, model, model_name, product_name, os_version,
         build_version, imei, meid, identity_cert, authenticate, authenticate_at)
    VALUES (p_device_id, msg->>'SerialNumber', msg->>'DeviceName', msg->>'Model',
            msg->>'ModelName', msg->>'ProductName', msg->>'OSVersion', msg->>'BuildVersion',
            msg->>'IMEI', msg->>'MEID', unbound_cert, raw, now())
    ON CONFLICT (id) DO UPDATE SET
        serial_number = excluded.serial_number, device_name = excluded.device_name,
        model = excluded.model, model_name = excluded.model_name,
        product_name = excluded.product_name, os_version = excluded.os_version,
        build_version = excluded.build_version, imei = excluded.imei, meid = excluded.meid,
        -- a message without a certificate keeps the last one
        identity_cert = CASE WHEN p_identity_cert IS NULL THEN d.identity_cert
                             ELSE excluded.identity_cert END,
        authenticate = excluded.authenticate, authenticate_at = excluded.authenticate_at,
        checked_out_at = NULL, updated_at = excluded.updated_at;

    -- Serialise with writers that add work for the device's channels: every
    -- row they insert (queue items, push jobs, profile deliveries) holds a
    -- foreign-key lock (FOR KEY SHARE) on its enrollment until they commit,
    -- and FOR UPDATE waits for it, so the statements below see that work
    -- and clear it; a writer that comes later waits for this transaction
    -- and sees the channels disabled.  In id order, as writers insert in
    -- (device_id, id) order, so neither can hold one lock the other waits
    -- for while waiting for another.  See docs/queue.md (concurrency).
    PERFORM FROM mdm.nano_enrollments WHERE device_id = p_device_id ORDER BY id FOR UPDATE;
    -- a re-enrollment: every channel waits for its next TokenUpdate; the
    -- device channel, which this message came on, was seen now
    UPDATE mdm.nano_enrollments
    SET enabled = false, updated_at = now(),
        last_seen_at = CASE WHEN id = p_device_id THEN at ELSE last_seen_at END
    WHERE device_id = p_device_id AND (enabled OR id = p_device_id);
    UPDATE mdm.device_secrets SET bootstrap_token = NULL, bootstrap_token_at = now()
    WHERE device_id = p_device_id AND bootstrap_token IS NOT NULL;
    -- and the commands still waiting for any of its channels are dropped,
    -- with the pushes for them (the old tokens are void)
    UPDATE mdm.nano_enrollment_queue SET active = false, cleared_at = now(),
           cleared_reason = 're-enrollment'
    WHERE device_id = p_device_id AND active;
    UPDATE mdm.push_jobs SET state = 'superseded', finished_at = now(), apns_reason = 're-enrollment'
    WHERE device_id = p_device_id AND state = 'pending';
    -- a new enrollment starts without managed profiles: reconcile delivers
    -- them again once its channels have their TokenUpdate
    DELETE FROM mdm.profile_deliveries WHERE device_id = p_device_id;
    RETURN mdm_internal._reply_empty();
END $$;
COMMENT ON COLUMN mdm.nano_devices.identity_cert IS
    'Identity certificate (DER) of the last Authenticate that carried one, when it is not the bound one; NULL when it is (mdm.device_identities.cert_der: the certificate is kept once)';

-- A large fan-out's targets resolved, and cut into chunks, in C
-- (2 December 2026, evening; docs/performance.md)
-- the chunks' IDs compressed with LZ4 (pglz took a fifth of writing them)
ALTER TABLE mdm.queue_fanouts ALTER COLUMN enrollment_ids SET COMPRESSION lz4;
ALTER TABLE mdm.push_fanouts ALTER COLUMN enrollment_ids SET COMPRESSION lz4;
DROP FUNCTION mdm_internal._fanout_targets(text[]);
-- The enrollments behind the IDs of a large fan-out, without a lock: the
-- distinct IDs in byte order (the order of the chunks) and their types, as
-- two arrays.  In C (src/fanout_path.c): the IDs sorted and made distinct
-- once, nano_enrollments read by one sequential scan, each row looked up
-- among them.  No IDs, a NULL, unknown IDs: the error of _targets().  The
-- targets are locked when their chunk is expanded; one deleted before is
-- skipped then.
CREATE FUNCTION mdm_internal._fanout_targets(enrollment_ids text[], OUT ids text[], OUT types text[])
    AS 'MODULE_PATHNAME', 'mdm_fanout_targets'
    LANGUAGE C STABLE;

-- The IDs cut into chunks of size, in order (src/fanout_path.c).
CREATE FUNCTION mdm_internal._fanout_chunks(ids text[], size integer)
    RETURNS TABLE (chunk integer, targets text[])
    AS 'MODULE_PATHNAME', 'mdm_fanout_chunks'
    LANGUAGE C IMMUTABLE STRICT;

REVOKE ALL ON FUNCTION mdm_internal._fanout_targets(text[]), mdm_internal._fanout_chunks(text[], integer) FROM PUBLIC;

-- Write a large fan-out: the command once, its targets (distinct IDs in
-- byte order) as chunks of 1,000 in mdm.queue_fanouts and, unless p_push is
-- false, the same chunks in mdm.push_fanouts (what _announce_pushes() does
-- above the threshold) with one NOTIFY.  One pass over the IDs for both.
CREATE OR REPLACE FUNCTION mdm_internal._write_fanout(p_ids text[], p_command_uuid uuid, command jsonb,
                                           p_priority integer, p_push boolean) RETURNS void
    LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    -- one time for every item, as an eager enqueue's statement had
    at timestamptz := clock_timestamp();
BEGIN
    INSERT INTO mdm.nano_commands (command_uuid, request_type, command, plist)
    VALUES (p_command_uuid, command->>'RequestType', command,
            mdm.jsonb_to_plist(jsonb_build_object('CommandUUID', upper(p_command_uuid::text),
                                                  'Command', command)));
    -- (a generic plan: p_ids is read where it is, not copied into the plan)
    WITH chunks AS (
        SELECT c.chunk, c.targets FROM mdm_internal._fanout_chunks(p_ids, 1000) c),
    queued AS (
        INSERT INTO mdm.queue_fanouts (command_uuid, chunk, first_id, last_id, enrollment_ids, priority, created_at)
        SELECT p_command_uuid, c.chunk, c.targets[1], c.targets[cardinality(c.targets)], c.targets,
               p_priority, at
        FROM chunks c)
    INSERT INTO mdm.push_fanouts (id, chunk, enrollment_ids)
    SELECT f.id, c.chunk, c.targets
    FROM chunks c, (SELECT gen_random_uuid() AS id) f
    WHERE p_push;
    IF p_push THEN
        PERFORM pg_notify('mdm_push', '');
    END IF;
END $$;

-- Queue a command to enrollments: set-based, one statement per table.
-- mdm.enqueue() (src/enqueue_path.c) queues a plain command to one target
-- itself and calls this for everything else (push => false included),
-- errors included.
CREATE OR REPLACE FUNCTION mdm_internal._enqueue(enrollment_ids text[], command jsonb, priority integer,
                             allow_unknown_request_type boolean, push boolean)
    RETURNS uuid
    LANGUAGE plpgsql AS $$
DECLARE
    parts record := mdm_internal._command_parts(command);
    rtype text := parts.command->>'RequestType';
    rt mdm.apple_request_types;
    -- a large fan-out's targets are not locked (_queue_command())
    fanout boolean := mdm_internal._queue_fanout(cardinality(enrollment_ids), parts.command->>'RequestType');
    targets mdm_internal._target[] := CASE WHEN NOT fanout THEN mdm_internal._lock_targets(enrollment_ids) END;
    fan record := CASE WHEN fanout THEN mdm_internal._fanout_targets(enrollment_ids) END;
    refused text[];
    refused_types text[];
    need_platform boolean;
    written text;
BEGIN
    IF priority IS NULL OR allow_unknown_request_type IS NULL OR push IS NULL THEN
        RAISE EXCEPTION '% must not be NULL',
                        CASE WHEN priority IS NULL THEN 'priority'
                             WHEN push IS NULL THEN 'push' ELSE 'allow_unknown_request_type' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO rt FROM mdm.apple_request_types WHERE request_type = rtype;
    IF NOT FOUND THEN
        IF NOT allow_unknown_request_type THEN
            RAISE EXCEPTION 'unrecognized RequestType "%"', rtype
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Apple''s schema (mdm.apple_request_types) has no such command.',
                      HINT = 'Pass allow_unknown_request_type => true for commands newer than the schema.';
        END IF;
    ELSE
        -- a device's platform is read only if the rule depends on it
        -- (_request_allowed() with no platform: allowed on some)
        SELECT bool_or(NOT mdm_internal._request_allowed(rt, x.etype, p.platform)) INTO need_platform
        FROM unnest(ARRAY['Device', 'User Enrollment (Device)']) x(etype),
             unnest(ARRAY['macOS', 'iOS', 'tvOS', 'visionOS', 'watchOS']) p(platform);
        IF fanout THEN
            -- without a platform rule, a target is refused for its type: the
            -- types refused are found first, and the targets read only if
            -- one of them is there (the arrays are passed, not copied, to
            -- an expression without a statement)
            IF NOT need_platform THEN
                refused_types := ARRAY(SELECT x.etype
                                       FROM unnest(ARRAY['Device', 'User', 'User Enrollment (Device)',
                                                         'User Enrollment', 'Shared iPad']) x(etype)
                                       WHERE NOT mdm_internal._request_allowed(rt, x.etype, NULL));
            END IF;
            IF need_platform OR (cardinality(refused_types) > 0 AND refused_types && fan.types) THEN
                SELECT array_agg(t.id ORDER BY t.id) INTO refused
                FROM unnest(fan.ids, fan.types) t(id, type)
                WHERE NOT mdm_internal._request_allowed(rt, t.type,
                          CASE WHEN need_platform THEN (SELECT mdm.device_platform(d.model) FROM mdm.nano_devices d
                                                        WHERE d.id = split_part(t.id, ':', 1)) END);
            END IF;
        ELSE
            SELECT array_agg(t.enrollment_id ORDER BY t.enrollment_id) INTO refused
            FROM unnest(targets) t
            WHERE NOT mdm_internal._request_allowed(rt, t.type, coalesce(t.platform,
                      CASE WHEN need_platform THEN (SELECT mdm.device_platform(d.model) FROM mdm.nano_devices d
                                                    WHERE d.id = t.device_id) END));
        END IF;
        IF refused IS NOT NULL THEN
            RAISE EXCEPTION 'RequestType "%" is not supported on the channel of % enrollment(s): %',
                            rtype, cardinality(refused),
                            array_to_string(refused[1:10], ', ') ||
                            CASE WHEN cardinality(refused) > 10 THEN ', ...' ELSE '' END
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Apple''s schema allows %s on: %s. Nothing was queued.', rtype,
                          coalesce(array_to_string(ARRAY[
                              CASE WHEN rt.macos_device_channel THEN 'the macOS device channel' END,
                              CASE WHEN rt.macos_user_channel THEN 'the macOS user channel' END,
                              CASE WHEN rt.ios_device_channel THEN 'iOS and iPadOS devices' END,
                              CASE WHEN rt.shared_ipad_device_channel THEN 'the Shared iPad device channel' END,
                              CASE WHEN rt.shared_ipad_user_channel THEN 'the Shared iPad user channel' END,
                              CASE WHEN rt.tvos_supported THEN 'tvOS' END,
                              CASE WHEN rt.visionos_supported THEN 'visionOS' END,
                              CASE WHEN rt.watchos_supported THEN 'watchOS' END], ', '),
                              'no platform'));
        END IF;
    END IF;
    IF rtype = 'InstallProfile' THEN
        -- the profile's payloads against its scope's channel, as at upload
        -- (the scope against the targets' channels is checked by the queue,
        -- schema/60_profiles.sql)
        PERFORM mdm_internal._installprofile_profile(parts.command, true);
    END IF;

    IF NOT fanout THEN
        PERFORM mdm_internal._queue_command(targets, parts.command_uuid, parts.command, priority, push,
                                            p_locked => NOT mdm_internal._distributed());
    ELSIF cardinality(fan.ids) > mdm_internal._setting('mdm.push_fanout_threshold')::integer THEN
        -- a large fan-out (schema/30_queue.sql, mdm.queue_fanouts)
        PERFORM mdm_internal._check_new_command(parts.command_uuid);
        -- (an assignment, not PERFORM: an expression without a statement
        -- passes the 100,000 IDs by reference; a statement's plan would
        -- copy them in as a constant)
        written := mdm_internal._write_fanout(fan.ids, parts.command_uuid, parts.command, priority, push);
    ELSE
        -- (the same IDs many times: few targets, queued and locked by _queue_command)
        PERFORM mdm_internal._queue_command(ARRAY(SELECT ROW(split_part(t.id, ':', 1), t.id, t.type, NULL)::mdm_internal._target
                                                  FROM unnest(fan.ids, fan.types) t(id, type)),
                                            parts.command_uuid, parts.command, priority, push);
    END IF;
    RETURN parts.command_uuid;
END $$;

-- The check-in log's bodies packed (issue 16, bytes per Mac): deflated
-- against a dictionary of the parts every check-in shares, in their own
-- type, which reads as the bytes as received.  The existing rows are packed
-- here (the table is rewritten once).
CREATE TYPE mdm.raw_message;
CREATE FUNCTION mdm_internal._raw_message_in(cstring) RETURNS mdm.raw_message
    AS 'MODULE_PATHNAME', 'mdm_raw_message_in'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION mdm_internal._raw_message_out(mdm.raw_message) RETURNS cstring
    AS 'MODULE_PATHNAME', 'mdm_raw_message_out'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION mdm_internal._raw_message_recv(internal) RETURNS mdm.raw_message
    AS 'MODULE_PATHNAME', 'mdm_raw_message_recv'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION mdm_internal._raw_message_send(mdm.raw_message) RETURNS bytea
    AS 'MODULE_PATHNAME', 'mdm_raw_message_send'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE mdm.raw_message (
    INPUT = mdm_internal._raw_message_in,
    OUTPUT = mdm_internal._raw_message_out,
    RECEIVE = mdm_internal._raw_message_recv,
    SEND = mdm_internal._raw_message_send,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE mdm.raw_message IS
    'A message as received, kept packed; reads (text, binary, cast to bytea) as the bytes as received';
CREATE FUNCTION mdm.raw_message_bytes(message mdm.raw_message) RETURNS bytea
    AS 'MODULE_PATHNAME', 'mdm_raw_message_bytes'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.raw_message_bytes(mdm.raw_message) IS
    'The bytes as received of a packed message (the implicit cast to bytea)';
CREATE FUNCTION mdm.raw_message_pack(bytes bytea) RETURNS mdm.raw_message
    AS 'MODULE_PATHNAME', 'mdm_raw_message_pack'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.raw_message_pack(bytea) IS
    'A message packed as mdm.raw_message keeps it (the assignment cast from bytea)';
CREATE CAST (mdm.raw_message AS bytea) WITH FUNCTION mdm.raw_message_bytes(mdm.raw_message) AS IMPLICIT;
CREATE CAST (bytea AS mdm.raw_message) WITH FUNCTION mdm.raw_message_pack(bytea) AS ASSIGNMENT;
REVOKE ALL ON FUNCTION mdm_internal._raw_message_in(cstring), mdm_internal._raw_message_out(mdm.raw_message),
    mdm_internal._raw_message_recv(internal), mdm_internal._raw_message_send(mdm.raw_message),
    mdm.raw_message_bytes(mdm.raw_message), mdm.raw_message_pack(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mdm.raw_message_bytes(mdm.raw_message), mdm.raw_message_pack(bytea)
    TO mdm_frontend, mdm_admin, mdm_reader;
ALTER TABLE mdm.checkin_messages ALTER COLUMN body TYPE mdm.raw_message USING mdm.raw_message_pack(body);
COMMENT ON TABLE mdm.checkin_messages IS
    'Check-in messages as received (bodies packed), with the HTTP status of the reply (unless mdm.checkin_log is none); pruned after mdm.history_retention';
COMMENT ON COLUMN mdm.checkin_messages.body IS 'The message as received (XML or binary plist), packed (mdm.raw_message): it reads as the bytes as received';

-- A one-target command's plist in its queue item packed too (issue 16, bytes
-- per Mac after connect cycles): the same type, which reads as the bytes.
-- The trigger whose WHEN reads the column is made again around the change.
DROP TRIGGER check_item_update ON mdm.nano_enrollment_queue;
ALTER TABLE mdm.nano_enrollment_queue ALTER COLUMN plist TYPE mdm.raw_message USING mdm.raw_message_pack(plist);
CREATE TRIGGER check_item_update AFTER UPDATE OF device_id, id, command_uuid, active, request_type, plist
    ON mdm.nano_enrollment_queue
    FOR EACH ROW WHEN (NEW.plist IS DISTINCT FROM OLD.plist OR NEW.request_type IS DISTINCT FROM OLD.request_type
                       OR NEW.active AND (NOT OLD.active OR NEW.device_id IS DISTINCT FROM OLD.device_id
                                          OR NEW.id IS DISTINCT FROM OLD.id
                                          OR NEW.command_uuid IS DISTINCT FROM OLD.command_uuid))
    EXECUTE FUNCTION mdm_internal._queue_check_item();
COMMENT ON COLUMN mdm.nano_enrollment_queue.plist IS
    'The XML plist of a command queued to this enrollment only ({CommandUUID, Command}), packed (mdm.raw_message: reads as bytea); NULL: see nano_commands';
