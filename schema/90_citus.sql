-- Past one server: the routed entry points, and mdm.distribute(), which
-- lays the schema out on a Citus cluster (docs/citus.md).
--
-- Layout: every per-device table is distributed by its device ID, all
-- co-located, so one device's rows live on one worker; the shared tables
-- (commands, profiles, labels, certificates, Apple's schema) are reference
-- tables, copied to every node; mdm.identity_certs is distributed by the
-- certificate hash.  The per-message entry points are distributed
-- functions: Citus sends the whole call to the worker that holds the
-- device, where every statement runs on local shards.

-- The device of a message, for routing (src/routing.c).  IMMUTABLE so that
-- the planner computes it from the message (docs/front-end.md).
CREATE FUNCTION mdm.message_device_id(message bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'mdm_message_device_id'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.message_device_id(bytea) IS
    'The device channel ID (UDID or EnrollmentID) of a check-in message; an error for what mdm.checkin would refuse as unreadable';

CREATE FUNCTION mdm.report_device_id(message bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'mdm_report_device_id'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.report_device_id(bytea) IS
    'The device channel ID (UDID or EnrollmentID) of a command report; an error for what mdm.connect would refuse as unreadable';

-- The calls a front end makes, with the device ID in front:
--   SELECT * FROM mdm.checkin_routed(mdm.message_device_id($1), $1, $2, $3)
--   SELECT * FROM mdm.connect_routed(mdm.report_device_id($1), $1, $2, $3)
-- device_id only routes the call; the message decides what is done.
CREATE FUNCTION mdm.checkin_routed(device_id text, message bytea, identity_cert bytea DEFAULT NULL,
                                   mdm_signature text DEFAULT NULL)
    RETURNS mdm.reply
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN mdm.checkin(message, identity_cert, mdm_signature);
END $$;
COMMENT ON FUNCTION mdm.checkin_routed(text, bytea, bytea, text) IS
    'mdm.checkin, routed by device: call it as checkin_routed(mdm.message_device_id($1), $1, $2, $3)';

CREATE FUNCTION mdm.connect_routed(device_id text, message bytea, identity_cert bytea DEFAULT NULL,
                                   mdm_signature text DEFAULT NULL)
    RETURNS mdm.reply
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN mdm.connect(message, identity_cert, mdm_signature);
END $$;
COMMENT ON FUNCTION mdm.connect_routed(text, bytea, bytea, text) IS
    'mdm.connect, routed by device: call it as connect_routed(mdm.report_device_id($1), $1, $2, $3)';

-- mdm.enqueue, routed by the device of its one target:
--   SELECT mdm.enqueue_routed($device_id, ARRAY[$enrollment_id], $command, 0, false, true)
-- A one-target enqueue writes only the device's rows (its queue item, with
-- the command in it, and its push job: src/enqueue_path.c), so the whole
-- call runs on the worker that holds the device.  device_id only routes
-- the call (any other call still works, run from wherever it lands).  Its
-- NOTIFY is raised on that worker: a front end that LISTENs on the
-- coordinator finds the push job by its timed poll (docs/citus.md).
-- (No defaults: Citus delegates a call only with every argument given.)
CREATE FUNCTION mdm.enqueue_routed(device_id text, enrollment_ids text[], command jsonb,
                                   priority integer, allow_unknown_request_type boolean,
                                   push boolean)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN mdm.enqueue(enrollment_ids, command, priority, allow_unknown_request_type, push);
END $$;
COMMENT ON FUNCTION mdm.enqueue_routed(text, text[], jsonb, integer, boolean, boolean) IS
    'mdm.enqueue, routed by device: enqueue_routed(<device ID of the one target>, ARRAY[<enrollment ID>], <command>, priority, allow_unknown_request_type, push)';

-- mdm.claim_pushes() on Citus, where a row lock cannot span shards: the
-- candidates are read without a lock, then each is claimed by its whole
-- key, in one statement on its own shard that claims it only if it is
-- still pending.  A front end claiming at the same time waits for that row
-- instead of skipping it, and then finds it claimed.
CREATE FUNCTION mdm_internal._claim_pushes_by_job(max_jobs integer)
    RETURNS TABLE (job_id bigint, enrollment_id text, token_hex text, push_magic text,
                   topic text, cert_pem text, key_pem text, apns_expiration bigint,
                   apns_priority integer, apns_push_type text)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    candidate record;
    claimed_enrollment text;
    expiration bigint := mdm_internal._apns_expiration();
    at timestamptz := now();
BEGIN
    PERFORM mdm_internal._release_stale_claims();
    FOR candidate IN
        SELECT j.device_id, j.id
        FROM mdm.push_jobs j
        JOIN mdm.nano_enrollments e ON e.device_id = j.device_id AND e.id = j.enrollment_id
        JOIN mdm.push_certs c ON c.topic = e.topic
        WHERE j.state = 'pending' AND j.not_before <= at
          -- as mdm.claim_pushes(): never a channel waiting for its
          -- TokenUpdate or with a dead token
          AND e.enabled AND e.token_invalid_at IS NULL
        ORDER BY j.not_before, j.id
        LIMIT max_jobs
    LOOP
        UPDATE mdm.push_jobs j
        SET state = 'claimed', claimed_at = at, attempts = j.attempts + 1, token_hex = e.token_hex
        FROM mdm.nano_enrollments e
        WHERE j.device_id = candidate.device_id AND j.id = candidate.id AND j.state = 'pending'
          AND e.device_id = j.device_id AND e.id = j.enrollment_id
          AND e.enabled AND e.token_invalid_at IS NULL
        RETURNING j.enrollment_id INTO claimed_enrollment;
        CONTINUE WHEN NOT FOUND;
        RETURN QUERY
        SELECT candidate.id, e.id, e.token_hex, e.push_magic, e.topic, pc.cert_pem, pc.key_pem,
               expiration,
               10, 'mdm'::text
        FROM mdm.nano_enrollments e JOIN mdm.push_certs pc ON pc.topic = e.topic
        WHERE e.device_id = candidate.device_id AND e.id = claimed_enrollment;
    END LOOP;
END $$;

-- mdm_internal._release_stale_claims() on Citus, job by job in the same way.
CREATE FUNCTION mdm_internal._release_stale_claims_by_job() RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    stale record;
    ended record;
    released integer := 0;
    renewed integer := 0;
    max_attempts integer := mdm_internal._setting('mdm.push_max_attempts')::integer;
    cutoff timestamptz := now() - make_interval(secs => mdm_internal._setting('mdm.push_claim_timeout')::integer);
    at timestamptz := now();
BEGIN
    FOR stale IN
        SELECT j.device_id, j.id FROM mdm.push_jobs j
        WHERE j.state = 'claimed' AND j.claimed_at < cutoff
        ORDER BY j.claimed_at
        LIMIT 10000
    LOOP
        UPDATE mdm.push_jobs j
        SET state = CASE WHEN j.attempts >= max_attempts THEN 'failed' ELSE 'superseded' END,
            finished_at = at,
            apns_reason = CASE WHEN j.attempts >= max_attempts THEN 'claim timed out on every attempt'
                               ELSE 'claim timed out' END
        WHERE j.device_id = stale.device_id AND j.id = stale.id
          AND j.state = 'claimed' AND j.claimed_at < cutoff
        RETURNING j.device_id, j.enrollment_id, j.attempts, j.state INTO ended;
        CONTINUE WHEN NOT FOUND;
        released := released + 1;
        IF ended.state = 'superseded' THEN
            -- (counted through a CTE: Citus counts a row that met the
            -- conflict as inserted)
            WITH created AS (
                INSERT INTO mdm.push_jobs AS p (device_id, enrollment_id, attempts)
                SELECT e.device_id, e.id, ended.attempts
                FROM mdm.nano_enrollments e
                WHERE e.device_id = ended.device_id AND e.id = ended.enrollment_id
                  AND e.enabled AND e.token_invalid_at IS NULL
                ON CONFLICT (device_id, enrollment_id) WHERE state = 'pending'
                    DO UPDATE SET not_before = p.not_before WHERE false
                RETURNING 1)
            SELECT renewed + count(*) INTO renewed FROM created;
        END IF;
    END LOOP;
    IF renewed > 0 THEN
        PERFORM pg_notify('mdm_push', '');
    END IF;
    RETURN released;
END $$;

-- mdm.claim_events() on Citus, the way of mdm_internal._claim_pushes_by_job(): the
-- heads (the oldest due undelivered event of each enrollment, not leased)
-- are read without a lock, then each is leased by its whole key in one
-- statement on its shard, only if it is still due and not leased.  A
-- claimer racing for the same event waits for that row, then finds it
-- leased.  The event's JSON is built here from the leased row (a whole row
-- passed to a function in a statement on a shard would take the shard's
-- row type).
CREATE FUNCTION mdm_internal._claim_events_by_event(max_events integer)
    RETURNS TABLE (device_id text, id bigint, attempt integer, enrollment_id text, event jsonb)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    head record;
    leased mdm.events;
    at timestamptz := now();
    lease_until timestamptz := now() + make_interval(secs => mdm_internal._setting('mdm.event_claim_timeout')::integer);
BEGIN
    FOR head IN
        SELECT e.device_id, e.id FROM mdm.events e
        WHERE e.delivered_at IS NULL AND e.next_attempt_at <= at
          AND (e.claimed_until IS NULL OR e.claimed_until < at)
          AND NOT EXISTS (SELECT FROM mdm.events p
                          WHERE p.device_id = e.device_id AND p.enrollment_id = e.enrollment_id
                            AND p.delivered_at IS NULL AND p.id < e.id)
        ORDER BY e.id
        LIMIT max_events
    LOOP
        UPDATE mdm.events e
        SET attempts = e.attempts + 1, claimed_until = lease_until
        WHERE e.device_id = head.device_id AND e.id = head.id
          AND e.delivered_at IS NULL AND e.next_attempt_at <= at
          AND (e.claimed_until IS NULL OR e.claimed_until < at)
        RETURNING e.* INTO leased;
        CONTINUE WHEN NOT FOUND;
        device_id := leased.device_id;
        id := leased.id;
        attempt := leased.attempts;
        enrollment_id := leased.enrollment_id;
        event := mdm_internal._event_json(leased);
        RETURN NEXT;
    END LOOP;
END $$;

-- mdm.push_results() on Citus: the devices of the batch's jobs are read
-- in one statement over the shards (no lock), then each outcome is
-- recorded on its job's shard by mdm_internal._push_result_on(), as
-- mdm.push_result() records it.
CREATE FUNCTION mdm_internal._push_results_by_job(job_ids bigint[], apns_statuses integer[],
                                         apns_reasons text[], apns_ids text[])
    RETURNS TABLE (job_id bigint, state text)
    LANGUAGE plpgsql AS $$
DECLARE
    r record;
    found_ids bigint[];
    found_devices text[];
BEGIN
    SELECT array_agg(p.id), array_agg(p.device_id) INTO found_ids, found_devices
    FROM mdm.push_jobs p WHERE p.id = ANY (job_ids);
    FOR r IN SELECT t.j, t.s, t.n FROM unnest(job_ids, apns_statuses) WITH ORDINALITY AS t(j, s, n) ORDER BY t.n
    LOOP
        job_id := r.j;
        state := mdm_internal._push_result_on(found_devices[array_position(found_ids, r.j)], r.j, r.s,
                                     apns_reasons[r.n], apns_ids[r.n]);
        RETURN NEXT;
    END LOOP;
END $$;

-- Is the schema laid out on Citus?
CREATE FUNCTION mdm_internal._distributed() RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;           -- no Citus (the statement below is planned only with it)
    END IF;
    RETURN EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'mdm.nano_devices'::regclass);
END $$;

-- What each node needs before the tables are distributed, run on the
-- coordinator and on every worker (each has its own copy of the
-- extension's objects):
--   - the foreign keys go (mdm.distribute() adds them back once, on the
--     distributed tables), and with them the queue's statement triggers and
--     the one trigger that updates many devices' queue items at once;
--   - function settings for Citus: no forced generic plans (Citus cannot
--     plan a parameterized multi-shard join), and sequential multi-shard
--     writes in the functions that write reference tables after reading
--     distributed ones;
--   - every sequence starts at (node group << 48) on a worker, so that rows
--     inserted there never take an ID another node gives out.
CREATE FUNCTION mdm_internal._citus_prepare_node() RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    r record;
    grp bigint;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
        RAISE EXCEPTION 'Citus is not installed in this database'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'This prepares a Citus node for mdm.distribute(); it changes nothing elsewhere.';
    END IF;
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    FOR r IN SELECT c.conrelid::regclass AS tbl, c.conname
             FROM pg_constraint c
             WHERE c.contype = 'f' AND c.connamespace = 'mdm'::regnamespace
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
    DROP TRIGGER IF EXISTS check_bindings_insert ON mdm.nano_enrollment_queue;
    DROP TRIGGER IF EXISTS recheck_queue ON mdm.nano_commands;
    -- the derived rows' cascade on a deleted enrollment (statement trigger),
    -- refusal of a TRUNCATE and of a key update that would orphan them:
    -- the foreign keys that mdm.distribute() adds do it
    DROP TRIGGER IF EXISTS delete_derived ON mdm.nano_enrollments;
    DROP TRIGGER IF EXISTS truncate_derived ON mdm.nano_enrollments;
    DROP TRIGGER IF EXISTS update_key_derived ON mdm.nano_enrollments;
    FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
             WHERE p.pronamespace IN ('mdm'::regnamespace, 'mdm_internal'::regnamespace)
               AND 'plan_cache_mode=force_generic_plan' = ANY (p.proconfig)
    LOOP
        EXECUTE format('ALTER FUNCTION %s RESET plan_cache_mode', r.fn);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
             WHERE p.pronamespace IN ('mdm'::regnamespace, 'mdm_internal'::regnamespace)
               AND p.proname IN ('enqueue', 'push', 'install_profile', 'remove_profile', 'bind_profile',
                                 'reconcile', 'run_maintenance', 'claim_pushes', 'upload_push_cert',
                                 '_reconcile_devices')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET citus.multi_shard_modify_mode = sequential', r.fn);
    END LOOP;
    SELECT groupid INTO grp FROM pg_dist_local_group;
    IF grp > 0 THEN
        FOR r IN SELECT format('%I.%I', s.schemaname, s.sequencename) AS seq, s.last_value
                 FROM pg_sequences s WHERE s.schemaname = 'mdm'
        LOOP
            IF coalesce(r.last_value, 0) < grp << 48 THEN
                PERFORM setval(r.seq, grp << 48, true);
            END IF;
        END LOOP;
    END IF;
    RETURN 'prepared';
END $$;

-- Lay the schema out on Citus: run once on the coordinator, with the
-- workers added (citus_add_node), after CREATE EXTENSION mdm_user.
CREATE FUNCTION mdm.distribute() RETURNS text
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
COMMENT ON FUNCTION mdm.distribute() IS
    'Lay mdm_user out on a Citus cluster (run on the coordinator once the workers are added): per-device tables distributed by device, shared tables as reference tables, routed entry points distributed by device';

REVOKE ALL ON FUNCTION mdm.distribute(), mdm_internal._citus_prepare_node(), mdm_internal._distributed(),
    mdm_internal._claim_pushes_by_job(integer), mdm_internal._release_stale_claims_by_job(),
    mdm_internal._claim_events_by_event(integer), mdm_internal._push_results_by_job(bigint[], integer[], text[], text[]),
    mdm_internal._queue_check_item(), mdm.checkin_routed(text, bytea, bytea, text),
    mdm.connect_routed(text, bytea, bytea, text), mdm.message_device_id(bytea),
    mdm.report_device_id(bytea), mdm.enqueue_routed(text, text[], jsonb, integer, boolean, boolean)
    FROM PUBLIC;
-- (to whom may call mdm.enqueue: schema/70_security.sql)
GRANT EXECUTE ON FUNCTION mdm.enqueue_routed(text, text[], jsonb, integer, boolean, boolean) TO mdm_admin;
GRANT EXECUTE ON FUNCTION mdm.checkin_routed(text, bytea, bytea, text),
    mdm.connect_routed(text, bytea, bytea, text) TO mdm_frontend;
GRANT EXECUTE ON FUNCTION mdm.message_device_id(bytea), mdm.report_device_id(bytea)
    TO mdm_frontend, mdm_admin, mdm_reader;
