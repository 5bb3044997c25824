-- psql as the console: the views an operator reads, the inventory kept
-- from DeviceInformation and SecurityInfo answers, selecting enrollments
-- by serial number, label or user, and the health check
-- (docs/console.md).
--
-- The views leave out wide binary columns (raw messages, certificates,
-- tokens, keys) so that a row fits a terminal, in \x mode too.

-- Inventory: the latest value of each key a device reported in a
-- DeviceInformation (QueryResponses) or SecurityInfo answer.
CREATE TABLE mdm.device_inventory (
    device_id text NOT NULL REFERENCES mdm.nano_devices ON DELETE CASCADE,
    source text NOT NULL CHECK (source IN ('DeviceInformation', 'SecurityInfo')),
    key text NOT NULL,
    value jsonb NOT NULL,
    command_uuid uuid NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, source, key)
);
COMMENT ON TABLE mdm.device_inventory IS
    'Latest value of each query key a device answered in DeviceInformation (QueryResponses) or SecurityInfo';
SELECT pg_catalog.pg_extension_config_dump('mdm.device_inventory', '');

-- Called by the report path (src/connect_path.c) for an Acknowledged report
-- that carries QueryResponses or SecurityInfo; it checks that the command
-- was a DeviceInformation or SecurityInfo itself.  One statement: each key
-- of the answer replaces the device's earlier value of it.
-- (PL/pgSQL, and excluded.reported_at for now(): Citus plans no
-- parameterized SQL-function statement, and no STABLE function in DO UPDATE.)
CREATE FUNCTION mdm_internal._store_inventory(p_device_id text, p_command_uuid uuid, msg jsonb)
    RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mdm.device_inventory AS i (device_id, source, key, value, command_uuid)
    SELECT p_device_id, c.request_type, kv.key, kv.value, p_command_uuid
    -- (the RequestType is in the queue item for a command of one target)
    FROM (SELECT coalesce(q.request_type, x.request_type) AS request_type
          FROM mdm.nano_enrollment_queue q
          LEFT JOIN mdm.nano_commands x ON q.request_type IS NULL AND x.command_uuid = q.command_uuid
          WHERE q.device_id = p_device_id AND q.command_uuid = p_command_uuid
          LIMIT 1) c,
         jsonb_each(CASE c.request_type WHEN 'DeviceInformation' THEN msg->'QueryResponses'
                                        ELSE msg->'SecurityInfo' END) kv
    WHERE c.request_type IN ('DeviceInformation', 'SecurityInfo')
      AND jsonb_typeof(CASE c.request_type WHEN 'DeviceInformation' THEN msg->'QueryResponses'
                                           ELSE msg->'SecurityInfo' END) = 'object'
    ON CONFLICT (device_id, source, key) DO UPDATE SET
        value = excluded.value, command_uuid = excluded.command_uuid,
        reported_at = excluded.reported_at;
END $$;

-- Devices, one row each: what they are and how their enrollment stands.
CREATE VIEW mdm.view_devices AS
SELECT d.serial_number, d.id AS device_id, d.model, d.model_name,
       mdm.device_platform(d.model) AS platform, d.os_version, d.build_version, d.device_name,
       CASE WHEN d.checked_out_at IS NOT NULL THEN 'checked out'
            WHEN e.enabled THEN 'enrolled'
            ELSE 'waiting for TokenUpdate' END AS enrollment_state,
       coalesce((SELECT max(x.last_seen_at) FROM mdm.nano_enrollments x WHERE x.device_id = d.id),
                d.authenticate_at) AS last_seen_at,
       i.device_id IS NOT NULL AS identity_bound,
       i.bound_via AS identity_bound_via, i.not_after AS identity_expires_at,
       (SELECT count(*) FROM mdm.nano_enrollments x
        WHERE x.device_id = d.id AND x.user_id IS NOT NULL) AS user_channels,
       d.enrolled_at, d.authenticate_at AS last_authenticate_at
FROM mdm.nano_devices d
LEFT JOIN mdm.nano_enrollments e ON e.device_id = d.id AND e.id = d.id
LEFT JOIN mdm.device_identities i ON i.device_id = d.id;
COMMENT ON VIEW mdm.view_devices IS
    'Devices: serial number, model, OS, enrollment state, last seen, identity binding (no certificates or raw messages)';

-- Enrollments (channels): whose, whether they can be pushed and why not,
-- and how much waits for them.
CREATE VIEW mdm.view_enrollments AS
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
COMMENT ON VIEW mdm.view_enrollments IS
    'Device and user channels: user names, pushable and why not, last seen, commands waiting (no tokens)';

-- Inventory with the device's serial number; value is text (a string
-- without its quotes), value_json the reported value as jsonb.
CREATE VIEW mdm.view_inventory AS
SELECT d.serial_number, i.device_id, i.source, i.key, i.value #>> '{}' AS value,
       i.value AS value_json, i.reported_at, i.command_uuid
FROM mdm.device_inventory i
JOIN mdm.nano_devices d ON d.id = i.device_id;
COMMENT ON VIEW mdm.view_inventory IS
    'Latest DeviceInformation and SecurityInfo answers per device and key';

-- Push jobs that are not done: pending, claimed, and failed ones, with
-- what each waits for; no tokens, PushMagic or keys.
CREATE VIEW mdm.view_pushes AS
SELECT j.id AS job_id, j.enrollment_id, j.device_id, d.serial_number, j.state,
       CASE WHEN j.state = 'failed'
            THEN 'failed: ' || coalesce(pg_catalog.concat_ws(' ', j.apns_status, j.apns_reason), 'no reason')
            WHEN j.state = 'claimed' THEN 'claimed by a front end, waiting for its report'
            WHEN c.topic IS NULL THEN pg_catalog.format('waiting for a push certificate for topic %s', e.topic)
            WHEN c.not_after <= now() THEN 'waiting: the push certificate has expired'
            WHEN j.not_before > now() THEN pg_catalog.format('waiting to retry at %s', j.not_before)
            ELSE 'waiting to be claimed' END AS status,
       j.attempts, j.created_at, j.not_before, j.claimed_at, j.finished_at,
       j.apns_status, j.apns_reason, j.apns_id, NULL::uuid AS fanout_id
FROM mdm.push_jobs j
JOIN mdm.nano_enrollments e ON e.device_id = j.device_id AND e.id = j.enrollment_id
JOIN mdm.nano_devices d ON d.id = j.device_id
LEFT JOIN mdm.push_certs c ON c.topic = e.topic
WHERE j.state IN ('pending', 'claimed', 'failed')
UNION ALL
-- targets of a large fan-out (mdm.push_fanouts) that have no job yet: a
-- claim makes theirs (it skips those disabled or gone, as this does gone ones)
SELECT NULL::bigint, e.id, e.device_id, d.serial_number, 'fan-out',
       'waiting in a fan-out', 0, f.created_at, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz,
       NULL::integer, NULL::text, NULL::text, f.id
FROM mdm.push_fanouts f
CROSS JOIN LATERAL unnest(f.enrollment_ids[f.next_target:]) t(id)
JOIN mdm.nano_enrollments e ON e.device_id = pg_catalog.split_part(t.id, ':', 1) AND e.id = t.id
JOIN mdm.nano_devices d ON d.id = e.device_id;
COMMENT ON VIEW mdm.view_pushes IS
    'Pending, claimed and failed push jobs, and targets waiting in a fan-out, with what each waits for (no tokens or keys)';

-- What went wrong, newest first: command errors, check-ins answered with
-- an HTTP error, failed pushes, reports about commands never queued.
-- Refusals that raise an error (a wrong identity, say) roll back and leave
-- no row: they are in the server log and the front end's log.
CREATE VIEW mdm.view_recent_errors AS
SELECT * FROM (
    SELECT r.updated_at AS at, 'command error' AS kind, r.device_id, r.id AS enrollment_id,
           coalesce(q.request_type, c.request_type) AS what,
           r.status || coalesce(': ' || (
               SELECT pg_catalog.string_agg(pg_catalog.format('%s (%s %s)',
                          coalesce(ec->>'USEnglishDescription', ec->>'LocalizedDescription', 'no description'),
                          ec->>'ErrorDomain', ec->>'ErrorCode'), '; ')
               FROM pg_catalog.jsonb_array_elements(
                        CASE WHEN pg_catalog.jsonb_typeof(r.result->'ErrorChain') = 'array'
                             THEN r.result->'ErrorChain' ELSE '[]' END) ec), '') AS detail,
           r.command_uuid::text AS ref
    FROM mdm.nano_command_results r
    JOIN mdm.nano_enrollment_queue q
      ON q.device_id = r.device_id AND q.id = r.id AND q.command_uuid = r.command_uuid
    LEFT JOIN mdm.nano_commands c ON q.request_type IS NULL AND c.command_uuid = r.command_uuid
    WHERE r.status IN ('Error', 'CommandFormatError')
    UNION ALL
    SELECT m.received_at, 'check-in answered ' || m.reply_status, m.device_id, m.enrollment_id,
           m.message_type,
           CASE m.reply_status WHEN 410 THEN 'declined (mdm.user_authenticate, or a handler)'
                               WHEN 404 THEN 'not found (no handler answers it)'
                               ELSE 'HTTP ' || m.reply_status END,
           m.id::text
    FROM mdm.checkin_messages m
    WHERE m.reply_status >= 400
    UNION ALL
    SELECT j.finished_at, 'push failed', j.device_id, j.enrollment_id, 'push',
           coalesce(pg_catalog.concat_ws(' ', j.apns_status, j.apns_reason), 'no reason'), j.id::text
    FROM mdm.push_jobs j
    WHERE j.state = 'failed'
    UNION ALL
    SELECT o.received_at, 'orphan report', o.device_id, o.enrollment_id, o.status,
           pg_catalog.format('report about command %s, which was never queued to this enrollment',
                             o.command_uuid),
           o.id::text
    FROM mdm.orphan_reports o) errors
ORDER BY at DESC;
COMMENT ON VIEW mdm.view_recent_errors IS
    'Command errors, check-ins answered with an HTTP error, failed pushes and orphan reports still in history, newest first';

-- Enrollment IDs the way operators think of Macs, for mdm.enqueue,
-- mdm.push, mdm.install_profile and mdm.remove_profile.
CREATE FUNCTION mdm.select_enrollments(serials text[] DEFAULT NULL, labels text[] DEFAULT NULL,
                                       users text[] DEFAULT NULL, channel text DEFAULT 'device')
    RETURNS text[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text[];
    label_ids bigint[];
    picked text[];
BEGIN
    IF serials IS NULL AND labels IS NULL AND users IS NULL THEN
        RAISE EXCEPTION 'no selection given'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass serials, labels or users, such as mdm.select_enrollments(serials => ''{C02XK1ABJG5H}'').';
    ELSIF channel IS NULL OR channel NOT IN ('device', 'user', 'all') THEN
        RAISE EXCEPTION 'invalid channel "%"', channel
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'channel is device (the default), user or all.';
    END IF;
    -- every name given must exist: a typo selects nothing silently
    SELECT array_agg(s ORDER BY s) INTO missing FROM unnest(serials) s
    WHERE NOT EXISTS (SELECT FROM mdm.nano_devices d WHERE d.serial_number = s);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'no device has serial number %', array_to_string(missing, ', ')
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT array_agg(s ORDER BY s) INTO missing FROM unnest(labels) s
    WHERE NOT EXISTS (SELECT FROM mdm.labels l WHERE l.name = s);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'label % does not exist', array_to_string(missing, ', ')
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT array_agg(s ORDER BY s) INTO missing FROM unnest(users) s
    WHERE NOT EXISTS (SELECT FROM mdm.nano_users u WHERE u.user_short_name = s);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'no user channel has user short name %', array_to_string(missing, ', ')
            USING ERRCODE = 'undefined_object';
    END IF;
    label_ids := ARRAY(SELECT l.id FROM mdm.labels l WHERE l.name = ANY (labels));

    -- the enrollments each criterion picks, intersected; then the channels
    WITH labelled AS (
        SELECT el.device_id, el.enrollment_id
        FROM mdm_internal._enrollment_labels(ARRAY(
                 SELECT le.device_id FROM mdm.label_enrollments le WHERE le.label_id = ANY (label_ids)
                 UNION
                 SELECT m.device_id FROM mdm.idp_user_enrollments m
                 JOIN mdm_internal._idp_user_labels il USING (idp_user_id) WHERE il.label_id = ANY (label_ids)
                 UNION
                 SELECT l.device_id FROM mdm.idp_user_logins l
                 JOIN mdm_internal._idp_user_labels il USING (idp_user_id) WHERE il.label_id = ANY (label_ids))) el
        WHERE el.label_id = ANY (label_ids)),
    chosen AS (
        SELECT e.device_id, e.id
        FROM mdm.nano_enrollments e
        WHERE (serials IS NULL OR e.device_id IN (SELECT d.id FROM mdm.nano_devices d
                                                  WHERE d.serial_number = ANY (serials)))
          AND (labels IS NULL OR (e.device_id, e.id) IN (SELECT * FROM labelled))
          AND (users IS NULL OR (e.device_id, e.user_id) IN (SELECT u.device_id, u.id FROM mdm.nano_users u
                                                             WHERE u.user_short_name = ANY (users))))
    SELECT coalesce(array_agg(x ORDER BY x), '{}') INTO picked FROM (
        SELECT c.device_id AS x FROM chosen c
        WHERE channel IN ('device', 'all')
          AND EXISTS (SELECT FROM mdm.nano_enrollments e WHERE e.device_id = c.device_id AND e.id = c.device_id)
        UNION
        SELECT c.id FROM chosen c WHERE channel IN ('user', 'all') AND c.id <> c.device_id) s;
    IF cardinality(picked) = 0 THEN
        RAISE EXCEPTION 'no enrollment matches the selection'
            USING ERRCODE = 'undefined_object',
                  DETAIL = format('Asked for the %s channels of %s.', channel, concat_ws(' and ',
                      'serial numbers ' || array_to_string(serials, ', '),
                      'labels ' || array_to_string(labels, ', '),
                      'users ' || array_to_string(users, ', '))),
                  HINT = 'mdm.view_enrollments lists the channels of each device; a device has a channel once its TokenUpdate arrived.';
    END IF;
    RETURN picked;
END $$;
COMMENT ON FUNCTION mdm.select_enrollments(text[], text[], text[], text) IS
    'Enrollment IDs by serial numbers, label names or user short names (criteria combine with AND), on the device channel, the user channels or all; for mdm.enqueue, push, install_profile, remove_profile';

-- Was the module loaded by shared_preload_libraries (src/mdm_user.c)?
CREATE FUNCTION mdm_internal._preloaded() RETURNS boolean
    AS 'MODULE_PATHNAME', 'mdm_preloaded_fn'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION mdm_internal._preloaded() FROM PUBLIC;

-- What an operator should fix, one row per check.
CREATE FUNCTION mdm.health_check()
    RETURNS TABLE (check_name text, ok boolean, detail text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    check_name := 'preloaded';
    ok := mdm_internal._preloaded();
    detail := CASE WHEN ok THEN 'mdm_user is in shared_preload_libraries'
                   ELSE 'mdm_user is not in shared_preload_libraries: mdm.* settings in postgresql.conf, '
                        'ALTER DATABASE and ALTER ROLE are not checked (a misspelt name or an invalid '
                        'value is accepted, then ignored), and SHOW and pg_settings know them only in a '
                        'session that has called the extension. Add it to shared_preload_libraries and restart.' END;
    RETURN NEXT;

    check_name := 'push certificates';
    SELECT count(*) FILTER (WHERE c.not_after < now() + interval '30 days'),
           string_agg(format('%s %s on %s', c.topic,
                             CASE WHEN c.not_after < now() THEN 'expired' ELSE 'expires' END,
                             c.not_after::date), ', ' ORDER BY c.not_after)
               FILTER (WHERE c.not_after < now() + interval '30 days')
    INTO n, detail FROM mdm.push_certs c;
    ok := n = 0 AND EXISTS (SELECT FROM mdm.push_certs);
    detail := CASE WHEN NOT EXISTS (SELECT FROM mdm.push_certs)
                   THEN 'no push certificate: pushes wait (mdm.upload_push_cert)'
                   WHEN ok THEN 'none expires within 30 days'
                   ELSE detail || ': renew it at Apple and upload it again (same topic)' END;
    RETURN NEXT;

    check_name := 'enrollments without push certificate';
    SELECT count(*) INTO n FROM mdm.nano_enrollments e
    WHERE NOT EXISTS (SELECT FROM mdm.push_certs c WHERE c.topic = e.topic);
    ok := n = 0;
    detail := n || ' (mdm.view_enrollments, not_pushable_because)';
    RETURN NEXT;

    check_name := 'failed pushes in the last day';
    SELECT count(*) INTO n FROM mdm.push_jobs j
    WHERE j.state = 'failed' AND j.finished_at > now() - interval '1 day';
    ok := n = 0;
    detail := n || ' (mdm.view_pushes)';
    RETURN NEXT;

    check_name := 'maintenance scheduled';
    ok := false;
    IF to_regclass('cron.job') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM cron.job WHERE command LIKE ''%mdm.run_maintenance%''
                                AND database = current_database() AND active)' INTO ok;
    END IF;
    detail := CASE WHEN ok THEN 'pg_cron runs mdm.run_maintenance()'
                   ELSE 'no pg_cron job in this database runs mdm.run_maintenance(): '
                        'call mdm.schedule_maintenance(), or run it every minute from another scheduler' END;
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION mdm.health_check() IS
    'One row per check: module preloaded, push certificates not expiring, every enrollment''s topic has a certificate, no failed pushes, maintenance scheduled';

REVOKE ALL ON FUNCTION mdm.select_enrollments(text[], text[], text[], text), mdm.health_check()
    FROM PUBLIC;
GRANT SELECT ON mdm.view_devices, mdm.view_enrollments, mdm.view_inventory, mdm.view_pushes,
    mdm.view_recent_errors, mdm.device_inventory
    TO mdm_reader, mdm_admin;
GRANT EXECUTE ON FUNCTION mdm.select_enrollments(text[], text[], text[], text), mdm.health_check()
    TO mdm_reader, mdm_admin;

-- CREATE EXTENSION says what is lost when the module is not preloaded.
DO $$
BEGIN
    IF NOT mdm_internal._preloaded() THEN
        RAISE WARNING 'mdm_user is not in shared_preload_libraries'
            USING DETAIL = 'Until it is, mdm.* settings in postgresql.conf, ALTER DATABASE and ALTER ROLE '
                           'are not checked (a misspelt name or an invalid value is accepted, then ignored), '
                           'and SHOW and pg_settings know them only in a session that has called the extension.',
                  HINT = 'Add mdm_user to shared_preload_libraries and restart the server; '
                         'SELECT * FROM mdm.health_check() reports it too.';
    END IF;
END $$;

-- Quiet no-ops made explicit (docs/console.md#what-the-extension-tells-you).

-- mdm.push(): the enrollments that get no push job, and why.
CREATE FUNCTION mdm_internal._notice_unpushable(targets mdm_internal._target[]) RETURNS void
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    n integer;
    list text;
BEGIN
    -- the first ten are named
    SELECT count(*),
           string_agg(format('%s (%s)', e.id,
                             CASE WHEN NOT e.enabled THEN 'waiting for its TokenUpdate'
                                  ELSE 'APNs invalidated its token: ' || e.token_invalid_reason END),
                      ', ' ORDER BY e.id) FILTER (WHERE x.n <= 10)
    INTO n, list
    FROM (SELECT t.device_id, t.enrollment_id,
                 row_number() OVER (ORDER BY t.enrollment_id) AS n
          FROM unnest(targets) t
          JOIN mdm.nano_enrollments e ON e.device_id = t.device_id AND e.id = t.enrollment_id
          WHERE NOT e.enabled OR e.token_invalid_at IS NOT NULL) x
    JOIN mdm.nano_enrollments e ON e.device_id = x.device_id AND e.id = x.enrollment_id;
    IF n > 0 THEN
        RAISE NOTICE '% of % enrollment(s) cannot be pushed: %', n, cardinality(targets),
                     list || CASE WHEN n > 10 THEN ', ...' ELSE '' END
            USING DETAIL = 'No push job is created for them: the device sends a TokenUpdate with a new token (it does so when it enrolls again or its token changes).';
    END IF;
END $$;

-- mdm.enrollment_profile(): PayloadUUIDs that are UUIDs, in upper case,
-- the form IdentityCertificateUUID is written in.
CREATE FUNCTION mdm_internal._upper_payload_uuids(payloads jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (SELECT coalesce(jsonb_agg(
                CASE WHEN jsonb_typeof(p->'PayloadUUID') = 'string'
                          AND p->>'PayloadUUID' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                     THEN jsonb_set(p, '{PayloadUUID}', to_jsonb(upper(p->>'PayloadUUID')))
                     ELSE p END ORDER BY ord), '[]'::jsonb)
            FROM jsonb_array_elements(payloads) WITH ORDINALITY AS x(p, ord));

-- A profile assignment to a PayloadIdentifier no uploaded profile has.
CREATE FUNCTION mdm_internal._notice_unknown_assignment() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM mdm.profiles p WHERE p.payload_identifier = NEW.payload_identifier) THEN
        RAISE NOTICE 'no profile "%" has been uploaded', NEW.payload_identifier
            USING DETAIL = 'The assignment is stored; it acts once a profile with this PayloadIdentifier is uploaded (mdm.upload_profile) and reconcile runs.',
                  HINT = 'SELECT payload_identifier FROM mdm.latest_profiles lists the uploaded ones.';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER profile_assignments_unknown_profile
    AFTER INSERT OR UPDATE OF payload_identifier ON mdm.profile_assignments
    FOR EACH ROW EXECUTE FUNCTION mdm_internal._notice_unknown_assignment();
REVOKE ALL ON FUNCTION mdm_internal._notice_unpushable(mdm_internal._target[]), mdm_internal._upper_payload_uuids(jsonb),
    mdm_internal._notice_unknown_assignment(), mdm_internal._store_inventory(text, uuid, jsonb) FROM PUBLIC;
