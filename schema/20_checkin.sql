-- Check-in protocol: enrollment tables and the handlers behind mdm.checkin().
--
-- Every per-device table has device_id in its primary key (for nano_devices
-- the key is id, the device channel ID itself) so that the schema can be
-- distributed by device (docs/data-model.md).  An enrollment ID never
-- contains ':' except as the separator of a user channel's
-- 'device_id:user part', so a device_id is always split_part(id, ':', 1).

CREATE TYPE mdm.reply AS (
    status int,
    content_type text,
    body bytea
);
COMMENT ON TYPE mdm.reply IS
    'What the front end writes back: HTTP status, Content-Type (NULL when the body is empty) and body';

-- Devices: one row per device channel ID (UDID, or EnrollmentID for User Enrollment).
CREATE TABLE mdm.nano_devices (
    id text PRIMARY KEY CHECK (id <> '' AND strpos(id, ':') = 0),
    serial_number text,
    device_name text,
    model text,
    model_name text,
    product_name text,
    os_version text,
    build_version text,
    imei text,
    meid text,
    identity_cert bytea,
    authenticate bytea,
    authenticate_at timestamptz NOT NULL,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    checked_out_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nano_devices_serial_number ON mdm.nano_devices (serial_number);
COMMENT ON TABLE mdm.nano_devices IS 'Enrolled devices, one per device channel ID (UDID, or EnrollmentID for User Enrollment)';
COMMENT ON COLUMN mdm.nano_devices.id IS 'Device channel enrollment ID: UDID, or EnrollmentID for User Enrollment';
COMMENT ON COLUMN mdm.nano_devices.identity_cert IS
    'Identity certificate (DER) of the last Authenticate that carried one, when it is not the bound one; NULL when it is (mdm.device_identities.cert_der: the certificate is kept once)';
COMMENT ON COLUMN mdm.nano_devices.authenticate IS
    'The last Authenticate message as received, kept here only when mdm.checkin_log is none (else it is in mdm.checkin_messages)';
COMMENT ON COLUMN mdm.nano_devices.enrolled_at IS 'First Authenticate';
COMMENT ON COLUMN mdm.nano_devices.checked_out_at IS 'Last CheckOut; NULL after a new Authenticate';

-- Secrets of a device, apart so that reporting roles can read nano_devices.
CREATE TABLE mdm.device_secrets (
    device_id text PRIMARY KEY REFERENCES mdm.nano_devices ON DELETE CASCADE,
    unlock_token bytea,
    unlock_token_at timestamptz,
    bootstrap_token bytea,
    bootstrap_token_at timestamptz
);
COMMENT ON TABLE mdm.device_secrets IS 'UnlockToken (TokenUpdate) and BootstrapToken (SetBootstrapToken) of each device';

-- Users: one row per user channel.
CREATE TABLE mdm.nano_users (
    device_id text NOT NULL REFERENCES mdm.nano_devices ON DELETE CASCADE,
    id text NOT NULL,
    user_short_name text,
    user_long_name text,
    user_authenticate bytea,
    user_authenticate_at timestamptz,
    user_authenticate_digest bytea,
    user_authenticate_digest_at timestamptz,
    accepted_at timestamptz,
    declined_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, id),
    CHECK (split_part(id, ':', 1) = device_id AND split_part(id, ':', 2) <> ''
           AND split_part(id, ':', 3) = '')
);
COMMENT ON TABLE mdm.nano_users IS 'User channels: UDID:UserID, EnrollmentID:EnrollmentUserID (User Enrollment), UDID:UserShortName (Shared iPad)';
COMMENT ON COLUMN mdm.nano_users.id IS 'User channel enrollment ID, device_id:user part';
COMMENT ON COLUMN mdm.nano_users.user_authenticate IS 'The last first-step UserAuthenticate message (no DigestResponse)';
COMMENT ON COLUMN mdm.nano_users.user_authenticate_digest IS 'The last UserAuthenticate message with DigestResponse';
COMMENT ON COLUMN mdm.nano_users.accepted_at IS 'When UserAuthenticate was last accepted (a directory user became managed)';
COMMENT ON COLUMN mdm.nano_users.declined_at IS 'When UserAuthenticate was last declined with 410';

-- Enrollments: the channels that receive pushes and commands.
CREATE TABLE mdm.nano_enrollments (
    device_id text NOT NULL REFERENCES mdm.nano_devices ON DELETE CASCADE,
    id text NOT NULL,
    user_id text,
    type text NOT NULL CHECK (type IN ('Device', 'User', 'User Enrollment (Device)',
                                       'User Enrollment', 'Shared iPad')),
    topic text NOT NULL,
    push_magic text NOT NULL,
    token_hex text NOT NULL CHECK (token_hex ~ '^([0-9a-f]{2})+$'),
    enabled boolean NOT NULL DEFAULT true,
    token_update_tally integer NOT NULL DEFAULT 1,
    token_update bytea,
    token_update_at timestamptz NOT NULL,
    awaiting_configuration boolean,
    not_on_console boolean,
    last_seen_at timestamptz NOT NULL,
    exchange_started_at timestamptz,
    token_invalid_at timestamptz,
    token_invalid_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, id),
    FOREIGN KEY (device_id, user_id) REFERENCES mdm.nano_users (device_id, id) ON DELETE CASCADE,
    CHECK (CASE WHEN user_id IS NULL THEN id = device_id ELSE id = user_id END),
    CHECK ((user_id IS NULL) = (type IN ('Device', 'User Enrollment (Device)')))
);
COMMENT ON TABLE mdm.nano_enrollments IS 'Device and user channels with their push token, PushMagic and topic, as sent in their own TokenUpdate';
COMMENT ON COLUMN mdm.nano_enrollments.id IS 'Enrollment ID: device_id for the device channel, device_id:user part for a user channel';
COMMENT ON COLUMN mdm.nano_enrollments.user_id IS 'nano_users.id of a user channel; NULL for the device channel';
COMMENT ON COLUMN mdm.nano_enrollments.topic IS 'APNs topic exactly as sent (the user channel uses the device''s topic)';
COMMENT ON COLUMN mdm.nano_enrollments.push_magic IS 'PushMagic of this channel, as sent';
COMMENT ON COLUMN mdm.nano_enrollments.token_hex IS 'APNs device token of this channel, lowercase hex';
COMMENT ON COLUMN mdm.nano_enrollments.enabled IS 'False from Authenticate or CheckOut until the next TokenUpdate';
COMMENT ON COLUMN mdm.nano_enrollments.token_update_tally IS 'Number of TokenUpdate messages received for this channel';
COMMENT ON COLUMN mdm.nano_enrollments.token_update IS
    'The last TokenUpdate message as received, kept here only when mdm.checkin_log is none (else it is in mdm.checkin_messages)';
COMMENT ON COLUMN mdm.nano_enrollments.awaiting_configuration IS 'AwaitingConfiguration of the last TokenUpdate that carried it';
COMMENT ON COLUMN mdm.nano_enrollments.not_on_console IS 'NotOnConsole of the last TokenUpdate (user channels)';
COMMENT ON COLUMN mdm.nano_enrollments.last_seen_at IS 'Last check-in or command report on this channel';
COMMENT ON COLUMN mdm.nano_enrollments.exchange_started_at IS
    'Last Idle report: commands handed out since then are not offered again in this exchange';
COMMENT ON COLUMN mdm.nano_enrollments.token_invalid_at IS
    'APNs said the token is dead (410, BadDeviceToken): no pushes until the next TokenUpdate';
COMMENT ON COLUMN mdm.nano_enrollments.token_invalid_reason IS 'The APNs status and reason that invalidated the token';

-- A message as received, kept packed (src/raw_message.c): deflated against a
-- dictionary of the parts every check-in shares.  It reads as the bytes as
-- received: text and binary forms are bytea's, and it casts to bytea.
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

-- Every check-in message as received, kept for mdm.history_retention.
CREATE SEQUENCE mdm.checkin_messages_id_seq;
CREATE TABLE mdm.checkin_messages (
    device_id text NOT NULL,
    id bigint NOT NULL DEFAULT nextval('mdm.checkin_messages_id_seq'),
    enrollment_id text NOT NULL,
    message_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    body mdm.raw_message NOT NULL,
    identity_cert_sha256 bytea,
    mdm_signature text,
    reply_status integer NOT NULL,
    PRIMARY KEY (device_id, id)
);
ALTER SEQUENCE mdm.checkin_messages_id_seq OWNED BY mdm.checkin_messages.id;
-- BRIN: rows arrive in time order; retention deletes by time; cheap to keep up
CREATE INDEX checkin_messages_received_at ON mdm.checkin_messages USING brin (received_at);
COMMENT ON TABLE mdm.checkin_messages IS
    'Check-in messages as received (bodies packed), with the HTTP status of the reply (unless mdm.checkin_log is none); pruned after mdm.history_retention';

SELECT pg_catalog.pg_extension_config_dump('mdm.nano_devices', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.device_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.nano_users', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.nano_enrollments', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.checkin_messages', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.checkin_messages_id_seq', '');

-- Settings are read through mdm_internal._setting(), a C function of the module:
-- calling it loads the module, which defines the mdm.* settings.
CREATE FUNCTION mdm_internal._setting(name text) RETURNS text
    AS 'MODULE_PATHNAME', 'mdm_setting'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION mdm_internal._setting(text) FROM PUBLIC;

-- {"$data": base64} for bytes, in the form mdm.plist_to_jsonb produces.
CREATE FUNCTION mdm.plist_data_value(bytes bytea) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.jsonb_build_object('$data',
               pg_catalog.translate(pg_catalog.encode(bytes, 'base64'), E'\n', ''));
COMMENT ON FUNCTION mdm.plist_data_value(bytea) IS
    'The jsonb form of plist data: {"$data": base64}';

CREATE FUNCTION mdm_internal._reply_empty(status int DEFAULT 200) RETURNS mdm.reply
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ROW(status, NULL, '\x'::bytea)::mdm.reply;

CREATE FUNCTION mdm_internal._reply_plist(value jsonb) RETURNS mdm.reply
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN ROW(200, 'application/xml', mdm.jsonb_to_plist(value))::mdm.reply;

CREATE FUNCTION mdm_internal._reply_json(value jsonb) RETURNS mdm.reply
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN ROW(200, 'application/json', pg_catalog.convert_to(value::text, 'UTF8'))::mdm.reply;

-- Authenticate: (re-)enrollment of a device.  raw is NULL when the message
-- is logged (src/checkin_path.c): a message is kept in one place only.  So
-- is its identity certificate: the bound one (checked or bound before this
-- runs) is in mdm.device_identities, and nano_devices.identity_cert keeps
-- only one that is not.
CREATE FUNCTION mdm_internal._checkin_authenticate(p_device_id text, msg jsonb, raw bytea,
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

-- TokenUpdate (push token, PushMagic and topic of one channel) runs in C:
-- src/checkin_path.c.

-- UserAuthenticate: a directory user logging in (never the local user who enrolled).
CREATE FUNCTION mdm_internal._checkin_user_authenticate(p_device_id text, p_user_id text,
                                               msg jsonb, raw bytea) RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
DECLARE
    digest boolean := msg ? 'DigestResponse';
    accept boolean := mdm_internal._setting('mdm.user_authenticate') = 'accept';
BEGIN
    INSERT INTO mdm.nano_users AS u
        (device_id, id, user_short_name, user_long_name,
         user_authenticate, user_authenticate_at, user_authenticate_digest,
         user_authenticate_digest_at, accepted_at, declined_at)
    VALUES (p_device_id, p_user_id, msg->>'UserShortName', msg->>'UserLongName',
            CASE WHEN NOT digest THEN raw END, CASE WHEN NOT digest THEN now() END,
            CASE WHEN digest THEN raw END, CASE WHEN digest THEN now() END,
            CASE WHEN accept AND digest THEN now() END,
            CASE WHEN NOT accept THEN now() END)
    ON CONFLICT (device_id, id) DO UPDATE SET
        user_short_name = coalesce(excluded.user_short_name, u.user_short_name),
        user_long_name = coalesce(excluded.user_long_name, u.user_long_name),
        user_authenticate = coalesce(excluded.user_authenticate, u.user_authenticate),
        user_authenticate_at = coalesce(excluded.user_authenticate_at, u.user_authenticate_at),
        user_authenticate_digest = coalesce(excluded.user_authenticate_digest, u.user_authenticate_digest),
        user_authenticate_digest_at = coalesce(excluded.user_authenticate_digest_at, u.user_authenticate_digest_at),
        accepted_at = coalesce(excluded.accepted_at, u.accepted_at),
        declined_at = coalesce(excluded.declined_at, u.declined_at),
        updated_at = excluded.updated_at;

    IF NOT accept THEN
        RETURN mdm_internal._reply_empty(410);
    ELSIF NOT digest THEN
        -- the zero-length challenge: no further authentication
        RETURN mdm_internal._reply_plist('{"DigestChallenge": ""}');
    END IF;
    RETURN mdm_internal._reply_empty();
END $$;

-- CheckOut: the device leaves management; its data is kept.
CREATE FUNCTION mdm_internal._checkin_checkout(p_device_id text) RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
BEGIN
    -- serialised with writers as in _checkin_authenticate: an enqueue that
    -- has not committed yet has its push job superseded below
    PERFORM FROM mdm.nano_enrollments WHERE device_id = p_device_id ORDER BY id FOR UPDATE;
    UPDATE mdm.nano_enrollments SET enabled = false, updated_at = now()
    WHERE device_id = p_device_id AND enabled;
    UPDATE mdm.nano_devices SET checked_out_at = now(), updated_at = now()
    WHERE id = p_device_id;
    UPDATE mdm.push_jobs SET state = 'superseded', finished_at = now(), apns_reason = 'checked out'
    WHERE device_id = p_device_id AND state = 'pending';
    RETURN mdm_internal._reply_empty();
END $$;

CREATE FUNCTION mdm_internal._checkin_set_bootstrap_token(p_device_id text, msg jsonb) RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
DECLARE
    token bytea := nullif(mdm.plist_data(msg->'BootstrapToken'), '\x'::bytea);
BEGIN
    INSERT INTO mdm.device_secrets AS s (device_id, bootstrap_token, bootstrap_token_at)
    VALUES (p_device_id, token, now())
    ON CONFLICT (device_id) DO UPDATE SET
        bootstrap_token = excluded.bootstrap_token,
        bootstrap_token_at = excluded.bootstrap_token_at;
    RETURN mdm_internal._reply_empty();
END $$;

CREATE FUNCTION mdm_internal._checkin_get_bootstrap_token(p_device_id text) RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
DECLARE
    token bytea;
BEGIN
    SELECT bootstrap_token INTO token FROM mdm.device_secrets WHERE device_id = p_device_id;
    IF token IS NULL THEN
        RETURN mdm_internal._reply_empty();
    END IF;
    RETURN mdm_internal._reply_plist(jsonb_build_object('BootstrapToken', mdm.plist_data_value(token)));
END $$;

-- The default DeclarativeManagement handler: mdm.declarative_management_handler
-- names the function that answers; this one has no declarations to offer.
CREATE FUNCTION mdm.declarative_management_default(enrollment_id text, endpoint text,
                                                   data bytea, message jsonb)
    RETURNS mdm.reply
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    -- the token of the empty declaration set
    token text := encode(sha256(''::bytea), 'hex');
BEGIN
    IF endpoint = 'status' THEN
        RETURN mdm_internal._reply_empty();
    ELSIF endpoint = 'tokens' THEN
        RETURN mdm_internal._reply_json(jsonb_build_object('SyncTokens', jsonb_build_object(
            'DeclarationsToken', token, 'Timestamp', '2001-01-01T00:00:00Z')));
    ELSIF endpoint = 'declaration-items' THEN
        RETURN mdm_internal._reply_json(jsonb_build_object(
            'Declarations', jsonb_build_object('Activations', '[]'::jsonb, 'Assets', '[]'::jsonb,
                                               'Configurations', '[]'::jsonb, 'Management', '[]'::jsonb),
            'DeclarationsToken', token));
    END IF;
    RETURN mdm_internal._reply_empty(404);
END $$;
COMMENT ON FUNCTION mdm.declarative_management_default(text, text, bytea, jsonb) IS
    'Default DeclarativeManagement answer: empty tokens and declaration-items, 200 for status, 404 for anything else';

-- The default GetToken handler: no token service is configured.
CREATE FUNCTION mdm.get_token_default(enrollment_id text, token_service_type text,
                                      parameters jsonb, message jsonb)
    RETURNS mdm.reply
    LANGUAGE sql STABLE
    RETURN ROW(404, 'text/plain; charset=utf-8',
               pg_catalog.convert_to(pg_catalog.format('no token service is configured for "%s"',
                                                       token_service_type), 'UTF8'))::mdm.reply;
COMMENT ON FUNCTION mdm.get_token_default(text, text, jsonb, jsonb) IS
    'Default GetToken answer: 404, no token service configured';

-- The handler function a setting names.  It must be a function (not a
-- procedure or aggregate) taking exactly argtypes and returning one
-- mdm.reply; otherwise the check-in fails here with 42883 or 42P13, before
-- the handler is called.
CREATE FUNCTION mdm_internal._handler(setting text, argtypes text) RETURNS regproc
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    fn_name text := mdm_internal._setting(setting);
    wanted text := replace(argtypes, ',', ', ');
    fn regprocedure;
    p pg_proc;
    parts text[];
BEGIN
    BEGIN
        fn := to_regprocedure(fn_name || '(' || argtypes || ')');
        parts := parse_ident(fn_name);
    EXCEPTION WHEN invalid_name OR invalid_parameter_value THEN
        fn := NULL;             -- not a function name at all
    END;
    IF fn IS NULL THEN
        -- a function of that name with other argument types?
        IF EXISTS (SELECT FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace
                   WHERE f.proname = parts[cardinality(parts)]
                     AND CASE cardinality(parts) WHEN 2 THEN n.nspname = parts[1]
                              ELSE n.nspname = ANY (current_schemas(true)) END) THEN
            RAISE EXCEPTION 'function "%(%)" does not exist', fn_name, argtypes
                USING ERRCODE = 'undefined_function',
                      DETAIL = format('A function "%s" exists, but the handler that %s names must take (%s).',
                                      fn_name, setting, wanted);
        END IF;
        RAISE EXCEPTION 'function "%(%)" does not exist', fn_name, argtypes
            USING ERRCODE = 'undefined_function',
                  DETAIL = format('%s names no function that takes (%s).', setting, wanted),
                  HINT = 'Schema-qualify the name: it is resolved with search_path pg_catalog, pg_temp.';
    END IF;
    SELECT * INTO p FROM pg_proc WHERE oid = fn;
    IF p.prokind <> 'f' THEN
        RAISE EXCEPTION 'handler % is not a function', fn
            USING ERRCODE = 'invalid_function_definition',
                  DETAIL = format('It is %s; the handler that %s names must be a function returning mdm.reply.',
                                  CASE p.prokind WHEN 'p' THEN 'a procedure' WHEN 'a' THEN 'an aggregate'
                                                 ELSE 'a window function' END, setting);
    ELSIF p.proretset OR p.prorettype <> 'mdm.reply'::regtype THEN
        RAISE EXCEPTION 'handler % does not return mdm.reply', fn
            USING ERRCODE = 'invalid_function_definition',
                  DETAIL = format('It returns %s%s; the handler that %s names must return one mdm.reply.',
                                  CASE WHEN p.proretset THEN 'SETOF ' ELSE '' END,
                                  p.prorettype::regtype, setting);
    END IF;
    RETURN fn::oid::regproc;
END $$;

-- The handlers are called once per check-in: "SELECT * FROM fn(...)"
-- (not "SELECT (fn(...)).*", which calls fn once per column of mdm.reply).
CREATE FUNCTION mdm_internal._checkin_declarative_management(p_enrollment_id text, msg jsonb)
    RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
DECLARE
    fn regproc := mdm_internal._handler('mdm.declarative_management_handler', 'text,text,bytea,jsonb');
    r mdm.reply;
BEGIN
    EXECUTE format('SELECT * FROM %s($1, $2, $3, $4)', fn) INTO r
        USING p_enrollment_id, msg->>'Endpoint', mdm.plist_data(msg->'Data'), msg;
    RETURN mdm_internal._checked_reply(r, fn);
END $$;

CREATE FUNCTION mdm_internal._checkin_get_token(p_enrollment_id text, msg jsonb) RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
DECLARE
    fn regproc := mdm_internal._handler('mdm.get_token_handler', 'text,text,jsonb,jsonb');
    r mdm.reply;
BEGIN
    EXECUTE format('SELECT * FROM %s($1, $2, $3, $4)', fn) INTO r
        USING p_enrollment_id, msg->>'TokenServiceType', msg->'TokenParameters', msg;
    RETURN mdm_internal._checked_reply(r, fn);
END $$;

-- A handler's reply must at least carry an HTTP status.
CREATE FUNCTION mdm_internal._checked_reply(r mdm.reply, fn regproc) RETURNS mdm.reply
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF r.status IS NULL OR r.status NOT BETWEEN 100 AND 599 THEN
        RAISE EXCEPTION 'handler % returned no valid HTTP status', fn
            USING ERRCODE = 'invalid_function_definition';
    END IF;
    RETURN ROW(r.status, r.content_type, coalesce(r.body, '\x'::bytea))::mdm.reply;
END $$;

-- Which channels a check-in message may arrive on, from Apple's schema
-- (mdm.apple_checkin_messages): the user channel of a Mac or a Shared
-- iPad, or the device channel of any platform; User Enrollment only what
-- it may send.  The test is part of the dispatcher's one lookup
-- (src/checkin_path.c); _check_checkin_channel() says what is wrong.
CREATE FUNCTION mdm_internal._check_checkin_channel(p_message_type text, p_type text)
    RETURNS void
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    m mdm.apple_checkin_messages;
    p_user_channel boolean := p_type NOT IN ('Device', 'User Enrollment (Device)');
BEGIN
    SELECT * INTO m FROM mdm.apple_checkin_messages WHERE message_type = p_message_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unrecognized check-in message type "%"', p_message_type
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Apple''s schema has no check-in message of that type.';
    ELSIF p_user_channel AND NOT (m.macos_user_channel OR m.shared_ipad_user_channel) THEN
        RAISE EXCEPTION 'check-in message type "%" is not sent on the user channel', p_message_type
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The message carries UserID or EnrollmentUserID, but Apple''s schema allows it on the device channel only.';
    ELSIF NOT p_user_channel AND NOT (m.macos_device_channel OR m.ios_device_channel
                                      OR m.shared_ipad_device_channel OR m.tvos_supported
                                      OR m.visionos_supported OR m.watchos_supported) THEN
        RAISE EXCEPTION 'check-in message type "%" is not sent on the device channel', p_message_type
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Apple''s schema allows it on the user channel only; the message carries no UserID or EnrollmentUserID.';
    ELSIF p_type IN ('User Enrollment (Device)', 'User Enrollment')
          AND m.macos_user_enrollment = 'forbidden' AND m.ios_user_enrollment IS DISTINCT FROM 'allowed' THEN
        RAISE EXCEPTION 'check-in message type "%" is not sent by User Enrollment', p_message_type
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Apple''s schema forbids it for User Enrollment (EnrollmentID).';
    END IF;
END $$;

-- The dispatcher behind mdm.checkin() runs in C (src/checkin_path.c): it
-- checks the channel, the identity and the enrollment in one lookup, runs
-- TokenUpdate itself and calls the handlers above for the other types.

-- The front end's call for every request to the CheckInURL.
CREATE FUNCTION mdm.checkin(message bytea, identity_cert bytea DEFAULT NULL,
                            mdm_signature text DEFAULT NULL)
    RETURNS mdm.reply
    AS 'MODULE_PATHNAME', 'mdm_checkin'
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION mdm.checkin(bytea, bytea, text) IS
    'Handle one check-in request body (XML or binary plist); returns the HTTP reply';

REVOKE ALL ON FUNCTION mdm.checkin(bytea, bytea, text) FROM PUBLIC;
-- internal functions are for the extension's own use
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mdm_internal FROM PUBLIC;
