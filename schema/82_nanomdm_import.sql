-- Migration from NanoMDM (docs/migration.md): mdm.import_nanomdm() reads
-- NanoMDM's PostgreSQL tables (its pgsql schema, restored into a schema of
-- this database) and carries each enrollment over so that the Macs keep
-- working without enrolling again: devices, user channels, enrollments
-- with topic, token, PushMagic, UnlockToken and tally, identity bindings
-- (NanoMDM keeps only the SHA-256 of a certificate: bound as 'imported',
-- by hash), push certificates and the commands still queued.
--
-- Each device is imported in a subtransaction with everything that belongs
-- to it, or skipped whole with the reason.  A device already here is
-- skipped ("already present"), so importing twice changes nothing.

CREATE FUNCTION mdm_internal._import_nanomdm_device(src name, d record, bind_on_next_message boolean)
    RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    msg jsonb := mdm.plist_to_jsonb(convert_to(d.authenticate, 'UTF8'));
    cert_hash text;
    n_users integer;
    n_enrollments integer;
    n_items integer;
    identity text;
BEGIN
    INSERT INTO mdm.nano_devices (id, serial_number, device_name, model, model_name, product_name,
                                  os_version, build_version, imei, meid, authenticate,
                                  authenticate_at, enrolled_at, updated_at)
    VALUES (d.id, coalesce(d.serial_number, msg->>'SerialNumber'), msg->>'DeviceName',
            msg->>'Model', msg->>'ModelName', msg->>'ProductName', msg->>'OSVersion',
            msg->>'BuildVersion', msg->>'IMEI', msg->>'MEID', convert_to(d.authenticate, 'UTF8'),
            d.authenticate_at, coalesce(d.created_at, d.authenticate_at), now());
    IF d.unlock_token IS NOT NULL OR d.bootstrap_token_b64 IS NOT NULL THEN
        INSERT INTO mdm.device_secrets (device_id, unlock_token, unlock_token_at, bootstrap_token,
                                        bootstrap_token_at)
        VALUES (d.id, d.unlock_token, d.unlock_token_at, decode(d.bootstrap_token_b64, 'base64'),
                d.bootstrap_token_at);
    END IF;

    EXECUTE format($q$
        INSERT INTO mdm.nano_users (device_id, id, user_short_name, user_long_name,
                                    user_authenticate, user_authenticate_at,
                                    user_authenticate_digest, user_authenticate_digest_at,
                                    created_at)
        SELECT u.device_id, u.id, u.user_short_name, u.user_long_name,
               convert_to(u.user_authenticate, 'UTF8'), u.user_authenticate_at,
               convert_to(u.user_authenticate_digest, 'UTF8'), u.user_authenticate_digest_at,
               coalesce(u.created_at, now())
        FROM %1$I.users u WHERE u.device_id = $1 ORDER BY u.id$q$, src) USING d.id;
    GET DIAGNOSTICS n_users = ROW_COUNT;

    -- the device channel's last TokenUpdate is on devices, a user channel's on users
    EXECUTE format($q$
        INSERT INTO mdm.nano_enrollments (device_id, id, user_id, type, topic, push_magic,
                                          token_hex, enabled, token_update_tally, token_update,
                                          token_update_at, last_seen_at, created_at)
        SELECT e.device_id, e.id, e.user_id, e.type, e.topic, e.push_magic, lower(e.token_hex),
               e.enabled, e.token_update_tally,
               convert_to(coalesce(u.token_update, d.token_update, ''), 'UTF8'),
               coalesce(u.token_update_at, d.token_update_at, e.updated_at, e.last_seen_at),
               e.last_seen_at, coalesce(e.created_at, now())
        FROM %1$I.enrollments e
        JOIN %1$I.devices d ON d.id = e.device_id
        LEFT JOIN %1$I.users u ON u.id = e.user_id
        WHERE e.device_id = $1 ORDER BY e.id$q$, src) USING d.id;
    GET DIAGNOSTICS n_enrollments = ROW_COUNT;

    -- the commands still queued: no result yet, or NotNow
    EXECUTE format($q$
        WITH items AS (
            SELECT q.id, q.priority, q.created_at, c.command_uuid::uuid AS command_uuid,
                   c.request_type, mdm.plist_to_jsonb(convert_to(c.command, 'UTF8')) AS body,
                   convert_to(c.command, 'UTF8') AS plist
            FROM %1$I.enrollment_queue q
            JOIN %1$I.enrollments e ON e.id = q.id
            JOIN %1$I.commands c ON c.command_uuid = q.command_uuid
            LEFT JOIN %1$I.command_results r ON r.id = q.id AND r.command_uuid = q.command_uuid
            WHERE e.device_id = $1 AND q.active AND (r.status IS NULL OR r.status = 'NotNow')),
        commands AS (
            INSERT INTO mdm.nano_commands (command_uuid, request_type, command, plist)
            SELECT DISTINCT ON (command_uuid) command_uuid, request_type, body->'Command', plist
            FROM items ORDER BY command_uuid
            ON CONFLICT (command_uuid) DO NOTHING)
        INSERT INTO mdm.nano_enrollment_queue (device_id, id, command_uuid, priority, created_at)
        SELECT $1, id, command_uuid, priority, coalesce(created_at, now())
        FROM items ORDER BY id, command_uuid$q$, src) USING d.id;
    GET DIAGNOSTICS n_items = ROW_COUNT;

    -- the identity: NanoMDM associates each enrollment with the SHA-256 of
    -- the certificate it authenticated with; the device channel's latest
    EXECUTE format($q$
        SELECT a.sha256 FROM %1$I.cert_auth_associations a WHERE a.id = $1
        ORDER BY coalesce(a.updated_at, a.created_at) DESC NULLS LAST, a.sha256 LIMIT 1$q$, src)
        INTO cert_hash USING d.id;
    IF cert_hash IS NOT NULL THEN
        IF lower(cert_hash) !~ '^[0-9a-f]{64}$' THEN
            RAISE EXCEPTION 'certificate association of "%" is not a SHA-256 in hex', d.id
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        INSERT INTO mdm.device_identities (device_id, cert_sha256, cert_der, not_after, bound_via)
        VALUES (d.id, decode(lower(cert_hash), 'hex'), NULL, NULL, 'imported');
        PERFORM mdm_internal._claim_identity_cert(decode(lower(cert_hash), 'hex'), d.id);
        identity := 'imported';
    ELSIF bind_on_next_message THEN
        INSERT INTO mdm.device_identities (device_id, cert_sha256, cert_der, not_after, bound_via)
        VALUES (d.id, NULL, NULL, NULL, 'next message');
        identity := 'next message';
    END IF;

    IF n_items > 0 THEN
        -- the device polls for its commands when pushed
        PERFORM mdm.push(ARRAY(SELECT DISTINCT q.id FROM mdm.nano_enrollment_queue q
                               WHERE q.device_id = d.id AND q.active));
    END IF;
    RETURN jsonb_build_object('users', n_users, 'enrollments', n_enrollments,
                              'queue_items', n_items, 'identity', identity);
END $$;

CREATE FUNCTION mdm.import_nanomdm(source_schema name, bind_on_next_message boolean DEFAULT false)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
    d record;
    c record;
    r jsonb;
    skipped jsonb := '[]';
    n_devices integer := 0;
    n_users integer := 0;
    n_enrollments integer := 0;
    n_items integer := 0;
    n_identities integer := 0;
    n_pending integer := 0;
    n_certs integer := 0;
    topic text;
BEGIN
    IF source_schema IS NULL THEN
        RAISE EXCEPTION 'source_schema must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF source_schema = 'mdm' OR NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = source_schema) THEN
        RAISE EXCEPTION 'schema "%" does not exist', source_schema
            USING ERRCODE = 'invalid_schema_name',
                  DETAIL = 'Give the schema that holds NanoMDM''s tables (its pgsql schema.sql).';
    END IF;
    FOREACH t IN ARRAY ARRAY['devices', 'users', 'enrollments', 'commands', 'command_results',
                             'enrollment_queue', 'push_certs', 'cert_auth_associations'] LOOP
        IF to_regclass(format('%I.%I', source_schema, t)) IS NULL THEN
            RAISE EXCEPTION 'relation "%.%" does not exist', source_schema, t
                USING ERRCODE = 'undefined_table',
                      DETAIL = 'NanoMDM''s PostgreSQL schema has this table.';
        END IF;
    END LOOP;

    -- push certificates first: the enrollments' topics need them
    FOR c IN EXECUTE format('SELECT topic, cert_pem, key_pem FROM %I.push_certs ORDER BY topic',
                            source_schema) LOOP
        IF EXISTS (SELECT FROM mdm.push_certs p WHERE p.topic = c.topic) THEN
            skipped := skipped || jsonb_build_object('push_cert', c.topic, 'reason', 'already present');
            CONTINUE;
        END IF;
        BEGIN
            topic := mdm.upload_push_cert(c.cert_pem, c.key_pem);
            n_certs := n_certs + 1;
        EXCEPTION WHEN OTHERS THEN
            skipped := skipped || jsonb_build_object('push_cert', c.topic, 'reason', SQLERRM);
        END;
    END LOOP;

    FOR d IN EXECUTE format('SELECT * FROM %I.devices ORDER BY id', source_schema) LOOP
        IF EXISTS (SELECT FROM mdm.nano_devices x WHERE x.id = d.id) THEN
            skipped := skipped || jsonb_build_object('device', d.id, 'reason', 'already present');
            CONTINUE;
        END IF;
        BEGIN
            r := mdm_internal._import_nanomdm_device(source_schema, d, bind_on_next_message);
            n_devices := n_devices + 1;
            n_users := n_users + (r->>'users')::integer;
            n_enrollments := n_enrollments + (r->>'enrollments')::integer;
            n_items := n_items + (r->>'queue_items')::integer;
            n_identities := n_identities + (r->>'identity' IS NOT DISTINCT FROM 'imported')::integer;
            n_pending := n_pending + (r->>'identity' IS NOT DISTINCT FROM 'next message')::integer;
            IF r->>'identity' IS NULL THEN
                skipped := skipped || jsonb_build_object('identity', d.id, 'reason',
                    'no certificate association: the device''s messages are refused while mdm.require_identity is on (bind_on_next_message => true binds the certificate of its next message)');
            END IF;
        EXCEPTION WHEN OTHERS THEN
            skipped := skipped || jsonb_build_object('device', d.id, 'reason', SQLERRM);
        END;
    END LOOP;

    RETURN jsonb_build_object(
        'imported', jsonb_build_object('devices', n_devices, 'users', n_users,
                                       'enrollments', n_enrollments, 'identities', n_identities,
                                       'identities_bound_on_next_message', n_pending,
                                       'push_certs', n_certs, 'queue_items', n_items),
        'skipped', skipped);
END $$;
COMMENT ON FUNCTION mdm.import_nanomdm(name, boolean) IS
    'Import NanoMDM''s enrollments, identity associations, push certificates and queued commands from a schema of this database; idempotent; returns what was imported and what was skipped, with reasons';

REVOKE ALL ON FUNCTION mdm_internal._import_nanomdm_device(name, record, boolean),
    mdm.import_nanomdm(name, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mdm.import_nanomdm(name, boolean) TO mdm_admin;

-- NanoMDM's migration endpoint (PUT /migration in the front end, which
-- micro2nano's and nano2nano's tools drive): a raw Authenticate or
-- TokenUpdate of an enrollment another server holds, taken without an
-- identity (mdm.require_identity is off for this call only).  A device
-- with no binding here is bound to the certificate of its next message;
-- an existing binding stays.
CREATE FUNCTION mdm.migrate_checkin(message bytea) RETURNS mdm.reply
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET mdm.require_identity = off AS $$
DECLARE
    msg jsonb := mdm.plist_to_jsonb(message);
    r mdm.reply;
BEGIN
    IF msg->>'MessageType' IS DISTINCT FROM 'Authenticate'
       AND msg->>'MessageType' IS DISTINCT FROM 'TokenUpdate' THEN
        RAISE EXCEPTION 'migration takes Authenticate and TokenUpdate check-ins only'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The message is a %s.', coalesce(msg->>'MessageType', 'message without MessageType'));
    END IF;
    r := mdm.checkin(message);
    INSERT INTO mdm.device_identities (device_id, bound_via)
    VALUES (coalesce(msg->>'EnrollmentID', msg->>'UDID'), 'next message')
    ON CONFLICT (device_id) DO NOTHING;
    RETURN r;
END $$;
COMMENT ON FUNCTION mdm.migrate_checkin(bytea) IS
    'Take an Authenticate or TokenUpdate of an enrollment migrated from another server, without an identity; the device''s next message binds its certificate';
REVOKE ALL ON FUNCTION mdm.migrate_checkin(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mdm.migrate_checkin(bytea) TO mdm_admin;

-- PUT /migration of the front end's admin API (schema/85_nanomdm_api.sql
-- has the others): the check-in's status and no body, or the error as the
-- admin API answers errors.
CREATE FUNCTION mdm.api_migration(message bytea, OUT status integer, OUT result jsonb)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st text;
    msg text;
BEGIN
    status := (mdm.migrate_checkin(message)).status;
    result := NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    status := mdm_internal._api_http_status(st);
    result := jsonb_build_object('error', msg);
END $$;
COMMENT ON FUNCTION mdm.api_migration(bytea) IS
    'NanoMDM API PUT /migration: an Authenticate or TokenUpdate of a migrated enrollment (mdm.migrate_checkin); returns the HTTP status and, on an error, {"error": ...}';
REVOKE ALL ON FUNCTION mdm.api_migration(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mdm.api_migration(bytea) TO mdm_admin;
