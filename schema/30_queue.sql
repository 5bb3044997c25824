-- The command queue and the connect endpoint (command reports to the ServerURL).
--
-- One nano_enrollment_queue row per target, one nano_command_results row
-- per target that answered.  A command that mdm.enqueue() queues to one
-- enrollment by its one-target path (src/enqueue_path.c: the inner command
-- dictionary, not an InstallProfile) is kept in its queue item
-- (request_type and plist: one row, on the device's own shard under
-- Citus); every other command in one nano_commands row however many
-- targets.  The derived rows (queue items, results) have no foreign
-- keys: the functions that write them check what a key would (see
-- _queue_command, and docs/data-model.md, "Integrity"), and
-- integrity() in sql/00_setup.sql checks that every path left them whole.  An exchange runs from an Idle report to the empty
-- reply that ends it: an item handed out in the current exchange (and so
-- one answered NotNow) is not offered again until the next Idle.

CREATE TABLE mdm.nano_commands (
    command_uuid uuid PRIMARY KEY,
    request_type text NOT NULL,
    command jsonb NOT NULL,
    plist bytea NOT NULL,
    payload_identifier text,
    payload_scope text CHECK (payload_scope IN ('System', 'User')),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- maintenance prunes commands by age: rows arrive in time order
CREATE INDEX nano_commands_created_at ON mdm.nano_commands USING brin (created_at);
COMMENT ON TABLE mdm.nano_commands IS 'Commands, one row however many enrollments they are queued to';
COMMENT ON COLUMN mdm.nano_commands.command IS 'The inner command dictionary ({"RequestType": ..., ...})';
COMMENT ON COLUMN mdm.nano_commands.plist IS 'The XML plist the device receives: {CommandUUID, Command}';
COMMENT ON COLUMN mdm.nano_commands.payload_identifier IS
    'InstallProfile: the PayloadIdentifier of the profile it carries (set by a trigger, schema/60_profiles.sql)';
COMMENT ON COLUMN mdm.nano_commands.payload_scope IS
    'InstallProfile: the scope of the profile it carries, System or User (set by the same trigger)';

CREATE TABLE mdm.nano_enrollment_queue (
    device_id text NOT NULL,
    id text NOT NULL,
    command_uuid uuid NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at timestamptz,
    sent_count integer NOT NULL DEFAULT 0,
    finished_at timestamptz,
    cleared_at timestamptz,
    cleared_reason text CHECK (cleared_reason IN ('re-enrollment', 'expired', 'command missing')),
    request_type text,
    plist mdm.raw_message,
    PRIMARY KEY (device_id, id, command_uuid),
    CHECK (active = (finished_at IS NULL AND cleared_at IS NULL)),
    CHECK ((request_type IS NULL) = (plist IS NULL) AND request_type IS DISTINCT FROM 'InstallProfile')
);
-- pending work only: poll cost does not grow with history
CREATE INDEX nano_enrollment_queue_pending
    ON mdm.nano_enrollment_queue (device_id, id, priority DESC, created_at)
    WHERE active;
CREATE INDEX nano_enrollment_queue_finished
    ON mdm.nano_enrollment_queue (finished_at) WHERE NOT active;
CREATE INDEX nano_enrollment_queue_command ON mdm.nano_enrollment_queue (command_uuid);
COMMENT ON TABLE mdm.nano_enrollment_queue IS 'One row per command and target enrollment';
COMMENT ON COLUMN mdm.nano_enrollment_queue.active IS 'Not yet answered (or answered NotNow) and not cleared';
COMMENT ON COLUMN mdm.nano_enrollment_queue.sent_at IS 'Last time the command was handed to the device';
COMMENT ON COLUMN mdm.nano_enrollment_queue.finished_at IS 'When a final result (Acknowledged, Error, CommandFormatError) arrived';
COMMENT ON COLUMN mdm.nano_enrollment_queue.created_at IS 'When it was queued (clock time: FIFO holds within a transaction)';
COMMENT ON COLUMN mdm.nano_enrollment_queue.cleared_at IS 'When the item was dropped unanswered';
COMMENT ON COLUMN mdm.nano_enrollment_queue.request_type IS
    'RequestType of a command queued to this enrollment only (kept here, not in nano_commands); NULL otherwise';
COMMENT ON COLUMN mdm.nano_enrollment_queue.plist IS
    'The XML plist of a command queued to this enrollment only ({CommandUUID, Command}), packed (mdm.raw_message: reads as bytea); NULL: see nano_commands';
COMMENT ON COLUMN mdm.nano_enrollment_queue.cleared_reason IS
    're-enrollment (Authenticate), expired (older than mdm.pending_command_lifetime), or command missing (its nano_commands row was gone when a poll reached it)';

-- The targets of a large fan-out (more than mdm.push_fanout_threshold
-- enrollments, on a single server, any command but InstallProfile), kept
-- as chunks of sorted enrollment IDs rather than a queue item each: the
-- enqueue writes the command once and one row per 1,000 targets, with no
-- lock on the targets.  A chunk becomes its queue items (with the
-- enqueue's time and priority, so the order of the queue is as if they
-- had been written then) when it is first needed, whole and once:
-- by mdm.claim_pushes() before it hands out the pushes of those targets,
-- by a poll (mdm.connect()) or an Authenticate of a device whose ID falls
-- inside it, and by mdm.run_maintenance().  The chunk's row lock
-- serialises its expanders; an expansion locks the targets FOR KEY SHARE
-- as an eager enqueue did, and skips those deleted since.  See
-- mdm_internal._expand_queue_fanout().
CREATE TABLE mdm.queue_fanouts (
    command_uuid uuid NOT NULL,
    chunk integer NOT NULL,
    first_id text NOT NULL,
    last_id text NOT NULL,
    enrollment_ids text[] COMPRESSION lz4 NOT NULL,
    priority integer NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (command_uuid, chunk),
    CHECK (first_id = enrollment_ids[1] AND last_id = enrollment_ids[cardinality(enrollment_ids)])
);
-- a poll asks "does a waiting chunk cover my ID?": one probe of an index
-- that is usually empty (byte order: the order of enrollment_ids)
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

CREATE TABLE mdm.nano_command_results (
    device_id text NOT NULL,
    id text NOT NULL,
    command_uuid uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('Acknowledged', 'Error', 'CommandFormatError', 'NotNow')),
    result jsonb NOT NULL,
    not_now_at timestamptz,
    not_now_tally integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, id, command_uuid)
);
COMMENT ON TABLE mdm.nano_command_results IS 'The latest report of each target about each command';
COMMENT ON COLUMN mdm.nano_command_results.result IS 'The report as jsonb (mdm.plist_to_jsonb mapping), ErrorChain included';
COMMENT ON COLUMN mdm.nano_command_results.not_now_at IS 'The first NotNow';
COMMENT ON COLUMN mdm.nano_command_results.not_now_tally IS 'How many NotNow reports arrived';

-- Reports about commands that were never queued to the reporting enrollment.
CREATE SEQUENCE mdm.orphan_reports_id_seq;
CREATE TABLE mdm.orphan_reports (
    device_id text NOT NULL,
    id bigint NOT NULL DEFAULT nextval('mdm.orphan_reports_id_seq'),
    enrollment_id text NOT NULL,
    command_uuid text NOT NULL,
    status text NOT NULL,
    result jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, id)
);
ALTER SEQUENCE mdm.orphan_reports_id_seq OWNED BY mdm.orphan_reports.id;
CREATE INDEX orphan_reports_received_at ON mdm.orphan_reports USING brin (received_at);
COMMENT ON TABLE mdm.orphan_reports IS 'Command reports whose CommandUUID was never queued to the reporting enrollment';

SELECT pg_catalog.pg_extension_config_dump('mdm.nano_commands', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.nano_enrollment_queue', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.queue_fanouts', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.nano_command_results', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.orphan_reports', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.orphan_reports_id_seq', '');

-- Each enrollment's queue, for DBAs.
CREATE VIEW mdm.view_queue AS
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
COMMENT ON VIEW mdm.view_queue IS
    'Queue items with their state: pending, sent, NotNow, Acknowledged, Error, CommandFormatError, cleared (re-enrollment) or expired';

-- Each command's results, with the ErrorChain as jsonb.
CREATE VIEW mdm.view_command_results AS
SELECT r.command_uuid, coalesce(q.request_type, c.request_type) AS request_type, r.device_id,
       r.id AS enrollment_id, r.status,
       r.result -> 'ErrorChain' AS error_chain, r.result, r.not_now_tally, r.not_now_at,
       r.created_at, r.updated_at
FROM mdm.nano_command_results r
JOIN mdm.nano_enrollment_queue q
  ON q.device_id = r.device_id AND q.id = r.id AND q.command_uuid = r.command_uuid
LEFT JOIN mdm.nano_commands c ON q.request_type IS NULL AND c.command_uuid = r.command_uuid;
COMMENT ON VIEW mdm.view_command_results IS 'Results of commands; error_chain is the ErrorChain of Error reports';

-- The platform of a device, from the model it reported in Authenticate.
CREATE FUNCTION mdm.device_platform(model text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN model ~ '^(Mac|iMac|VirtualMac)' THEN 'macOS'
        WHEN model ~ '^(iPhone|iPad|iPod)' THEN 'iOS'
        WHEN model ~ '^AppleTV' THEN 'tvOS'
        WHEN model ~ '^RealityDevice' THEN 'visionOS'
        WHEN model ~ '^Watch' THEN 'watchOS'
    END;
COMMENT ON FUNCTION mdm.device_platform(text) IS
    'macOS, iOS (iPhone, iPad), tvOS, visionOS or watchOS from a model identifier such as MacBookPro18,3; NULL if unknown';

-- May request type t go to a channel of enrollment type etype on a device
-- of this platform?  From Apple's schema (mdm.apple_request_types).
CREATE FUNCTION mdm_internal._request_allowed(t mdm.apple_request_types, etype text, platform text)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE etype
        WHEN 'User' THEN t.macos_user_channel
        WHEN 'Shared iPad' THEN t.shared_ipad_user_channel
        WHEN 'User Enrollment' THEN t.macos_user_channel
                                    AND t.macos_user_enrollment IS DISTINCT FROM 'forbidden'
        ELSE (CASE platform
                WHEN 'macOS' THEN t.macos_device_channel
                WHEN 'iOS' THEN t.ios_device_channel OR t.shared_ipad_device_channel
                WHEN 'tvOS' THEN t.tvos_supported
                WHEN 'visionOS' THEN t.visionos_supported
                WHEN 'watchOS' THEN t.watchos_supported
                ELSE t.macos_device_channel OR t.ios_device_channel OR t.shared_ipad_device_channel
                     OR t.tvos_supported OR t.visionos_supported OR t.watchos_supported
              END)
             AND (etype <> 'User Enrollment (Device)' OR
                  (CASE platform WHEN 'iOS' THEN t.ios_user_enrollment ELSE t.macos_user_enrollment END)
                      IS DISTINCT FROM 'forbidden')
    END;

-- The command dictionary and CommandUUID of what a caller passed: the inner
-- command ({"RequestType": ...}) or the full {CommandUUID, Command} form.
CREATE FUNCTION mdm_internal._command_parts(cmd jsonb, OUT command jsonb, OUT command_uuid uuid)
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF jsonb_typeof(cmd) <> 'object' THEN
        RAISE EXCEPTION 'command must be a JSON object, not %', jsonb_typeof(cmd)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cmd ? 'Command' THEN
        command := cmd->'Command';
        IF jsonb_typeof(cmd->'CommandUUID') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'command has "Command" but no CommandUUID string'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass the inner command dictionary, or {"CommandUUID": "<uuid>", "Command": {...}}.';
        END IF;
        BEGIN
            command_uuid := (cmd->>'CommandUUID')::uuid;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'CommandUUID "%" is not a UUID', cmd->>'CommandUUID'
                USING ERRCODE = 'invalid_parameter_value';
        END;
        IF (SELECT count(*) FROM jsonb_object_keys(cmd)) > 2 THEN
            RAISE EXCEPTION 'command has keys besides CommandUUID and Command'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSE
        command := cmd;
        command_uuid := gen_random_uuid();
    END IF;
    IF jsonb_typeof(command) IS DISTINCT FROM 'object'
       OR jsonb_typeof(command->'RequestType') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'command has no RequestType'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A command is a dictionary such as {"RequestType": "DeviceInformation", "Queries": ["OSVersion"]}.';
    END IF;
END $$;

-- A target of an enqueue or a push.
CREATE TYPE mdm_internal._target AS (device_id text, enrollment_id text, type text, platform text);
REVOKE ALL ON TYPE mdm_internal._target FROM PUBLIC;

-- The enrollments behind a list of IDs; unknown IDs are an error naming them.
-- One pass over the IDs: each is looked up once, and the unknown ones are
-- the rows the outer join found nothing for.  An array, as every caller
-- wants one (a set turned back into an array cost 0.3 s for 100,000).
-- Generic plans: with custom ones (the default, as a custom plan for a
-- one-element array always looks cheaper than the generic plan for
-- unnest()'s default 100 rows) the query was planned again on every call,
-- about 0.3 ms per enqueue.  The generic plan (nested loops over the
-- primary keys) also suits large fan-outs.
CREATE FUNCTION mdm_internal._targets(enrollment_ids text[]) RETURNS mdm_internal._target[]
    LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    found_targets mdm_internal._target[];
    missing text[];
BEGIN
    IF enrollment_ids IS NULL OR cardinality(enrollment_ids) = 0 THEN
        RAISE EXCEPTION 'no enrollment IDs given' USING ERRCODE = 'invalid_parameter_value';
    ELSIF array_position(enrollment_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'enrollment ID number % is NULL', array_position(enrollment_ids, NULL)
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT array_agg(ROW(e.device_id, e.id, e.type, mdm.device_platform(d.model))::mdm_internal._target
                     ORDER BY e.device_id, e.id)
               FILTER (WHERE e.id IS NOT NULL),
           array_agg(t.id ORDER BY t.id) FILTER (WHERE e.id IS NULL)
    INTO found_targets, missing
    FROM (SELECT DISTINCT x.id FROM unnest(enrollment_ids) AS x(id)) t
    LEFT JOIN mdm.nano_enrollments e ON e.device_id = split_part(t.id, ':', 1) AND e.id = t.id
    LEFT JOIN mdm.nano_devices d ON d.id = e.device_id;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% unknown enrollment ID(s): %', cardinality(missing),
                        array_to_string(missing[1:10], ', ') ||
                        CASE WHEN cardinality(missing) > 10 THEN ', ...' ELSE '' END
            USING ERRCODE = 'undefined_object',
                  DETAIL = 'Nothing was done: no command queued, no push created.';
    END IF;
    RETURN found_targets;
END $$;

-- The enrollments behind a list of IDs, locked FOR KEY SHARE (the lock a
-- foreign key from their queue items would take: _queue_command), in one
-- pass: each ID is looked up once, and locked in (device_id, id) order.
-- The platform is left NULL (mdm_internal._enqueue() reads it only where the
-- RequestType's rule needs it).  Unknown IDs: the error of _targets().
-- On Citus, where a row lock cannot span shards, _targets() (the queue's
-- foreign key takes the locks there).
CREATE FUNCTION mdm_internal._lock_targets(enrollment_ids text[]) RETURNS mdm_internal._target[]
    LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    found_targets mdm_internal._target[];
BEGIN
    IF enrollment_ids IS NULL OR cardinality(enrollment_ids) = 0
       OR array_position(enrollment_ids, NULL) IS NOT NULL OR mdm_internal._distributed() THEN
        RETURN mdm_internal._targets(enrollment_ids);   -- (its errors)
    END IF;
    SELECT array_agg(ROW(l.device_id, l.id, l.type, NULL)::mdm_internal._target) INTO found_targets
    FROM (SELECT e.device_id, e.id, e.type
          FROM (SELECT DISTINCT x.id FROM unnest(enrollment_ids) AS x(id)) t
          JOIN mdm.nano_enrollments e ON e.device_id = split_part(t.id, ':', 1) AND e.id = t.id
          ORDER BY e.device_id, e.id
          FOR KEY SHARE OF e) l;
    IF coalesce(cardinality(found_targets), 0) <> cardinality(enrollment_ids) THEN
        -- unknown IDs (the error), or only the same ID twice
        PERFORM mdm_internal._targets(enrollment_ids);
    END IF;
    RETURN found_targets;
END $$;

-- Does a command to n targets keep them as chunks (mdm.queue_fanouts)
-- rather than a queue item each?  Above mdm.push_fanout_threshold, on a
-- single server (on Citus every item is on its device's shard), and not an
-- InstallProfile (the profile checks run on the queue's inserts:
-- schema/60_profiles.sql).
CREATE FUNCTION mdm_internal._queue_fanout(n integer, request_type text) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN n > mdm_internal._setting('mdm.push_fanout_threshold')::integer
           AND request_type IS DISTINCT FROM 'InstallProfile' AND NOT mdm_internal._distributed();
END $$;

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

-- Refuse a CommandUUID that is taken (a command kept in a queue item
-- too; plain SELECTs: Citus plans no EXISTS sub-select over all shards of
-- a distributed table).
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

-- Write a large fan-out: the command once, its targets (distinct IDs in
-- byte order) as chunks of 1,000 in mdm.queue_fanouts and, unless p_push is
-- false, the same chunks in mdm.push_fanouts (what _announce_pushes() does
-- above the threshold) with one NOTIFY.  One pass over the IDs for both.
CREATE FUNCTION mdm_internal._write_fanout(p_ids text[], p_command_uuid uuid, command jsonb,
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

-- Write the queue items of one waiting chunk, locked by the caller, and
-- delete it: one insert for the chunk.  Its targets are locked FOR KEY
-- SHARE (the lock an eager enqueue took), in (device_id, id) order, so
-- that a concurrent delete or Authenticate of one of them either waits for
-- this transaction and then sees (and clears) its item, or is waited for
-- and the item is not written (deleted) or is written for the re-enrolled
-- channel (an Authenticate expands the chunks of its device first:
-- _checkin_authenticate()).  Returns how many items it wrote.
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

-- Expand the waiting chunks that may hold an enrollment ID between lo and
-- hi (byte order), oldest command first.  A chunk another transaction is
-- expanding is waited for (and is gone when it commits), or skipped with
-- skip_locked (mdm.claim_pushes(): whoever holds it writes its items; a
-- poll of one of its targets waits for it).  With no chunk waiting (the
-- usual case) one probe of an empty index.  Returns the items written.
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

-- Expand up to max_chunks of the oldest waiting chunks (mdm.run_maintenance():
-- a chunk of a command queued with push => false waits until its targets
-- poll; after this, the queue's other readers see its items).  Chunks
-- being expanded are skipped.  Returns the items written.
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

-- Store a command and queue it to targets, set-based (one statement per
-- table however many targets), and announce the pushes (unless p_push is
-- false: enqueue(push => false), NanoMDM's nopush).  Every path that
-- queues commands (enqueue, profiles, reconcile) goes through here.
--
-- The queue items have no foreign keys (schema/30_queue.sql, top): this
-- function is what keeps them whole.  Its targets come from _targets() (or
-- a caller that read them from nano_enrollments), and their enrollments
-- are locked FOR KEY SHARE here, the lock a foreign key would have taken,
-- in one statement: Authenticate and CheckOut (FOR UPDATE of the device's
-- enrollments) wait for this transaction and then see its items, and an
-- enrollment cannot go away under them.  In (device_id, id) order, as
-- Authenticate locks them.  The command row is written before its items.
-- (p_locked: the caller took the locks, with _lock_targets().)
CREATE FUNCTION mdm_internal._queue_command(targets mdm_internal._target[], p_command_uuid uuid, command jsonb,
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

-- Queue a command to enrollments: set-based, one statement per table.
-- mdm.enqueue() (src/enqueue_path.c) queues a plain command to one target
-- itself and calls this for everything else (push => false included),
-- errors included.
CREATE FUNCTION mdm_internal._enqueue(enrollment_ids text[], command jsonb, priority integer,
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
CREATE FUNCTION mdm.enqueue(enrollment_ids text[], command jsonb, priority integer DEFAULT 0,
                            allow_unknown_request_type boolean DEFAULT false, push boolean DEFAULT true)
    RETURNS uuid
    AS 'MODULE_PATHNAME', 'mdm_enqueue'
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION mdm.enqueue(text[], jsonb, integer, boolean, boolean) IS
    'Queue a command (inner dictionary, or {CommandUUID, Command}) to enrollments; returns its CommandUUID. push => false: no push jobs';

CREATE FUNCTION mdm.enqueue(enrollment_ids text[], command bytea, priority integer DEFAULT 0,
                            allow_unknown_request_type boolean DEFAULT false, push boolean DEFAULT true)
    RETURNS uuid
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    RETURN mdm.enqueue(enrollment_ids, mdm_internal._plist_to_jsonb_strict(command), priority, allow_unknown_request_type, push);
COMMENT ON FUNCTION mdm.enqueue(text[], bytea, integer, boolean, boolean) IS
    'Queue a command given as a plist (inner dictionary, or {CommandUUID, Command})';

-- JSON text, so that an untyped literal resolves here rather than being
-- ambiguous between jsonb and bytea: for an argument of unknown type,
-- PostgreSQL prefers the candidate of the string category.
CREATE FUNCTION mdm.enqueue(enrollment_ids text[], command text, priority integer DEFAULT 0,
                            allow_unknown_request_type boolean DEFAULT false, push boolean DEFAULT true)
    RETURNS uuid
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    RETURN mdm.enqueue(enrollment_ids, command::jsonb, priority, allow_unknown_request_type, push);
COMMENT ON FUNCTION mdm.enqueue(text[], text, integer, boolean, boolean) IS
    'Queue a command given as JSON text (an untyped literal lands here), as mdm.enqueue(text[], jsonb, ...)';

-- The handler behind mdm.connect() runs in C (src/connect_path.c): the
-- identity, the enrollment row (locked: reports of one channel are handled
-- one at a time), the result or orphan report, the profile delivery
-- outcome (schema/60_profiles.sql), and the next command of the exchange.

-- The front end's call for every request to the ServerURL.
CREATE FUNCTION mdm.connect(message bytea, identity_cert bytea DEFAULT NULL,
                            mdm_signature text DEFAULT NULL)
    RETURNS mdm.reply
    AS 'MODULE_PATHNAME', 'mdm_connect'
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION mdm.connect(bytea, bytea, text) IS
    'Handle one command report (XML or binary plist); returns the next command or an empty 200';
REVOKE ALL ON FUNCTION mdm.connect(bytea, bytea, text) FROM PUBLIC;
