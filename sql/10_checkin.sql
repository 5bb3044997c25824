--
-- Check-in protocol: mdm.checkin() with every message type, enrollment
-- identity on the device and user channels, and hostile input.
--
SELECT reset_mdm();
CREATE FUNCTION reply_text(r mdm.reply) RETURNS text LANGUAGE sql AS $$
    SELECT r.status || coalesce(' ' || r.content_type, '') ||
           CASE WHEN length(r.body) > 0 THEN E'\n' || convert_from(r.body, 'UTF8') ELSE '' END
$$;
-- the row count of every table of the extension (as reset_mdm() finds them)
CREATE FUNCTION table_counts() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t regclass;
    n bigint;
    counts text := '';
BEGIN
    FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
             WHERE ns.nspname = 'mdm' AND c.relkind IN ('r', 'p') ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT count(*) FROM %s', t) INTO n;
        counts := counts || format('%s=%s ', t, n);
    END LOOP;
    RETURN counts;
END $$;

-- The seed's Mac enrolls: Authenticate, then the device channel's TokenUpdate
SELECT reply_text(mdm.checkin(v('checkin/01-authenticate.plist')));
SELECT reply_text(mdm.checkin(v('checkin/02-tokenupdate-device.plist')));

-- Victor logs in: UserAuthenticate (a directory user) gets the zero-length
-- challenge, then an empty 200 once it answers
SELECT reply_text(mdm.checkin(v('checkin/03-userauthenticate.plist')));
SELECT reply_text(mdm.checkin(v('checkin/04-userauthenticate-digestresponse.plist')));
-- and the user channel's own TokenUpdate lands as UDID:UserID
SELECT reply_text(mdm.checkin(v('checkin/05-tokenupdate-user.plist')));

SELECT id, user_id, type, topic, push_magic, token_hex, enabled, token_update_tally
FROM mdm.nano_enrollments WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933' ORDER BY id;
SELECT id, user_short_name, user_long_name, user_authenticate IS NOT NULL AS first_step_kept,
       user_authenticate_digest IS NOT NULL AS digest_kept, accepted_at IS NOT NULL AS accepted
FROM mdm.nano_users;
SELECT id, serial_number, model, os_version, identity_cert IS NULL AS no_cert
FROM mdm.nano_devices;

-- Bootstrap token: stored, then returned as data
SELECT reply_text(mdm.checkin(v('checkin/06-setbootstraptoken.plist')));
SELECT mdm.plist_to_jsonb((mdm.checkin(v('checkin/07-getbootstraptoken.plist'))).body);

-- DeclarativeManagement and GetToken go to handlers named by settings
SELECT reply_text(mdm.checkin(v('checkin/08-declarativemanagement-tokens.plist')));
SELECT reply_text(mdm.checkin(v('checkin/09-declarativemanagement-status.plist')));
SELECT reply_text(mdm.checkin(v('checkin/10-gettoken.plist')));
CREATE FUNCTION my_tokens(enrollment_id text, service text, parameters jsonb, message jsonb)
    RETURNS mdm.reply LANGUAGE sql
    RETURN ROW(200, 'application/xml',
               mdm.jsonb_to_plist(jsonb_build_object('TokenData',
                   mdm.plist_data_value(convert_to(enrollment_id || ' ' || service || ' ' ||
                                                   (parameters->>'SecurityToken'), 'UTF8')))))::mdm.reply;
SET mdm.get_token_handler = 'public.my_tokens';
SELECT mdm.plist_data(mdm.plist_to_jsonb((mdm.checkin(v('checkin/10-gettoken.plist'))).body)->'TokenData');
RESET mdm.get_token_handler;

-- A handler runs exactly once per check-in (a call written as
-- "SELECT (f(...)).*" would run it once per column of mdm.reply)
CREATE TABLE handler_calls (handler text, argument text);
CREATE FUNCTION counting_ddm(enrollment_id text, endpoint text, data bytea, message jsonb)
    RETURNS mdm.reply LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.handler_calls VALUES ('DeclarativeManagement', endpoint);
    RETURN mdm.declarative_management_default(enrollment_id, endpoint, data, message);
END $$;
CREATE FUNCTION counting_tokens(enrollment_id text, service text, parameters jsonb, message jsonb)
    RETURNS mdm.reply LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.handler_calls VALUES ('GetToken', service);
    RETURN mdm.get_token_default(enrollment_id, service, parameters, message);
END $$;
SET mdm.declarative_management_handler = 'public.counting_ddm';
SET mdm.get_token_handler = 'public.counting_tokens';
SELECT n AS message, (mdm.checkin(v(n))).status
FROM unnest(ARRAY['checkin/08-declarativemanagement-tokens.plist', 'checkin/09-declarativemanagement-status.plist',
                  'checkin/10-gettoken.plist']) n;
SELECT handler, argument, count(*) AS calls FROM handler_calls GROUP BY 1, 2 ORDER BY 1, 2;
RESET mdm.declarative_management_handler;
RESET mdm.get_token_handler;

-- A setting that names no function of the right arguments, or a function
-- that does not return one mdm.reply, fails before anything is called
CREATE FUNCTION int_tokens(text, text, jsonb, jsonb) RETURNS integer LANGUAGE sql RETURN 200;
CREATE FUNCTION set_tokens(text, text, jsonb, jsonb) RETURNS SETOF mdm.reply LANGUAGE sql
    AS $$ SELECT 200, NULL::text, '\x'::bytea $$;
CREATE PROCEDURE proc_tokens(text, text, jsonb, jsonb) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION try_handler(setting text, handler text, vector text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config(setting, handler, true);
    RETURN try(format('SELECT mdm.checkin(v(%L))', vector));
END $$;
SELECT s AS setting, h AS handler, try_handler(s, h, m) AS result
FROM (VALUES ('mdm.get_token_handler', 'public.no_such_function', 'checkin/10-gettoken.plist'),
             ('mdm.get_token_handler', 'my_tokens', 'checkin/10-gettoken.plist'),
             ('mdm.get_token_handler', 'public.int_tokens', 'checkin/10-gettoken.plist'),
             ('mdm.get_token_handler', 'public.set_tokens', 'checkin/10-gettoken.plist'),
             ('mdm.get_token_handler', 'public.proc_tokens', 'checkin/10-gettoken.plist'),
             ('mdm.declarative_management_handler', 'public.my_tokens', 'checkin/09-declarativemanagement-status.plist'))
     AS t(s, h, m);
SELECT count(*) AS calls_after_refusals FROM handler_calls;

-- The second Mac and its user Ada; nothing of the first Mac changes
SELECT reply_text(mdm.checkin(v('checkin/20-authenticate-mac2.plist')));
SELECT reply_text(mdm.checkin(v('checkin/21-tokenupdate-mac2-device.plist')));
SELECT reply_text(mdm.checkin(v('checkin/22-tokenupdate-mac2-user.plist')));
-- User Enrollment (EnrollmentID / EnrollmentUserID) and a Shared iPad user
SELECT reply_text(mdm.checkin(v(n))) FROM unnest(ARRAY[
    'checkin/30-authenticate-userenrollment.plist', 'checkin/31-tokenupdate-userenrollment-device.plist',
    'checkin/32-tokenupdate-userenrollment-user.plist', 'checkin/38-authenticate-sharedipad.plist',
    'checkin/39-tokenupdate-sharedipad-device.plist', 'checkin/40-tokenupdate-sharedipad-user.plist']) n;

SELECT device_id, id, type, push_magic, left(token_hex, 12) AS token, enabled
FROM mdm.nano_enrollments ORDER BY device_id, id;
-- every channel has its own token and PushMagic; every user channel the device's topic
SELECT count(*) AS enrollments, count(DISTINCT token_hex) AS tokens,
       count(DISTINCT push_magic) AS magics, count(DISTINCT topic) AS topics
FROM mdm.nano_enrollments;
SELECT u.id, u.device_id, u.user_short_name, u.user_long_name
FROM mdm.nano_users u ORDER BY u.device_id, u.id;

-- A second user-channel TokenUpdate: names are the latest sent, the tally counts
SELECT reply_text(mdm.checkin(convert_to(replace(convert_from(v('checkin/05-tokenupdate-user.plist'), 'UTF8'),
                                                 'Victor Smith', 'Victor S. Smith'), 'UTF8')));
SELECT u.user_long_name, e.token_update_tally
FROM mdm.nano_users u JOIN mdm.nano_enrollments e ON e.device_id = u.device_id AND e.user_id = u.id
WHERE u.id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1';

-- XML and binary plists give identical rows
CREATE TEMP TABLE snapshots (encoding text, rows jsonb);
CREATE FUNCTION seed_rows() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'device', (SELECT to_jsonb(d) - '{authenticate,authenticate_at,enrolled_at,updated_at}'::text[]
                   FROM mdm.nano_devices d WHERE id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'),
        'enrollments', (SELECT jsonb_agg(to_jsonb(e) - '{token_update,token_update_at,last_seen_at,created_at,updated_at}'::text[] ORDER BY id)
                        FROM mdm.nano_enrollments e WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'),
        'users', (SELECT jsonb_agg(to_jsonb(u) - '{created_at,updated_at}'::text[] ORDER BY id)
                  FROM mdm.nano_users u WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'))
$$;
DELETE FROM mdm.nano_devices WHERE id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933';
SELECT (mdm.checkin(v(n || '.plist'))).status FROM unnest(ARRAY['checkin/01-authenticate', 'checkin/02-tokenupdate-device', 'checkin/05-tokenupdate-user']) n;
INSERT INTO snapshots SELECT 'xml', seed_rows();
DELETE FROM mdm.nano_devices WHERE id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933';
SELECT (mdm.checkin(v(n || '.bplist'))).status FROM unnest(ARRAY['checkin/01-authenticate', 'checkin/02-tokenupdate-device', 'checkin/05-tokenupdate-user']) n;
INSERT INTO snapshots SELECT 'binary', seed_rows();
SELECT (SELECT rows FROM snapshots WHERE encoding = 'xml') = (SELECT rows FROM snapshots WHERE encoding = 'binary') AS identical,
       jsonb_array_length((SELECT rows FROM snapshots WHERE encoding = 'binary')->'enrollments') AS enrollments;

-- Re-enrollment: Authenticate disables both channels until their next
-- TokenUpdate and clears the bootstrap token; like every check-in it sets
-- last_seen_at of its channel, the device channel
SELECT (mdm.checkin(v('checkin/06-setbootstraptoken.plist'))).status;
UPDATE mdm.nano_enrollments SET last_seen_at = now() - interval '1 day'
WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933';
SELECT (mdm.checkin(v('checkin/01-authenticate.plist'))).status;
SELECT id, enabled, last_seen_at > now() - interval '1 hour' AS seen_now
FROM mdm.nano_enrollments WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933' ORDER BY id;
SELECT bootstrap_token IS NULL AS bootstrap_cleared FROM mdm.device_secrets
WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933';
SELECT reply_text(mdm.checkin(v('checkin/07-getbootstraptoken.plist'))) AS no_token;
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'))).status;
SELECT id, enabled, token_update_tally FROM mdm.nano_enrollments
WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933' ORDER BY id;
SELECT (mdm.checkin(v('checkin/05-tokenupdate-user.plist'))).status;

-- The other policy for UserAuthenticate: decline with 410, and record it
SET mdm.user_authenticate = 'decline';
SELECT reply_text(mdm.checkin(v('checkin/03-userauthenticate.plist')));
SELECT id, declined_at IS NOT NULL AS declined FROM mdm.nano_users
WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933';
RESET mdm.user_authenticate;
SELECT try($$SET mdm.user_authenticate = 'maybe'$$);

-- CheckOut disables the device and all its user channels, and keeps their data
SELECT reply_text(mdm.checkin(v('checkin/11-checkout.plist')));
SELECT id, enabled FROM mdm.nano_enrollments WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933' ORDER BY id;
SELECT checked_out_at IS NOT NULL AS checked_out FROM mdm.nano_devices WHERE id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933';

-- The log has every message with the HTTP status of its reply
SELECT message_type, reply_status, count(*) FROM mdm.checkin_messages GROUP BY 1, 2 ORDER BY 1, 2;
-- each as received, packed (mdm.raw_message, src/raw_message.c): it reads
-- as the bytes sent, in text, binary and as bytea, in a third of them
SELECT n, pg_typeof(m.body) AS type, m.body = v(n) AS as_sent,
       m.body::text = v(n)::text AS text_as_sent, length(m.body) = length(v(n)) AS length,
       pg_column_size(m.body) < length(v(n)) / 3 AS packed
FROM unnest(ARRAY['checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist',
                  'checkin/05-tokenupdate-user.plist']) n,
     LATERAL (SELECT body FROM mdm.checkin_messages WHERE body = v(n) ORDER BY id LIMIT 1) m;
-- any bytes come back as they went in: every length of a message, bytes
-- that are the packed form's own codes, other formatting, data of no format
WITH inputs AS (
    SELECT substr(v('checkin/05-tokenupdate-user.plist'), 1, k) AS b FROM generate_series(0, 1200, 7) k
    UNION ALL SELECT '\x0001020304050607080b0c0e0f101112131415161718191a1b1c1d1e1f7f80ff'::bytea
    UNION ALL SELECT decode(repeat('0001', 40), 'hex')
    UNION ALL SELECT convert_to(E'\t<key>Unknown</key>\n\t<key>M\t<key>', 'UTF8')
    UNION ALL SELECT convert_to(replace(convert_from(v('checkin/01-authenticate.plist'), 'UTF8'), E'\t', '  '), 'UTF8')
    UNION ALL SELECT convert_to(repeat('abc', 500), 'UTF8')
    UNION ALL SELECT (SELECT string_agg(sha256(int4send(n * 1000 + i)), '') FROM generate_series(1, n) i)
    FROM generate_series(1, 40) n
), packed AS (SELECT b, mdm.raw_message_pack(b) AS r FROM inputs)
SELECT count(*) AS inputs, count(*) FILTER (WHERE r::bytea = b AND r::text = b::text
                                            AND b::text::mdm.raw_message::bytea = b) AS same,
       max(pg_column_size(r) - pg_column_size(b)) AS most_added
FROM packed;

-- Hostile and malformed input: each raises its documented SQLSTATE and
-- changes no table
SELECT table_counts() AS before \gset
SELECT name, left(try(format('SELECT mdm.checkin(v(%L))', name)), 160) AS result
FROM vectors WHERE name ~ '^bad/' ORDER BY name;
SELECT table_counts() = :'before' AS unchanged;

-- More identity rules
SELECT t AS message, try(format('SELECT mdm.checkin(convert_to(%L, ''UTF8''))', t)) AS result
FROM unnest(ARRAY[
    '<dict><key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>A</string><key>EnrollmentID</key><string>B</string></dict>',
    '<dict><key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>A</string><key>EnrollmentUserID</key><string>B</string></dict>',
    '<dict><key>MessageType</key><string>TokenUpdate</string><key>EnrollmentID</key><string>A</string><key>UserID</key><string>B</string></dict>',
    '<dict><key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>A</string><key>UserID</key><string>FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF</string></dict>',
    '<dict><key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>A</string><key>UserID</key><string></string></dict>',
    '<dict><key>MessageType</key><string>Authenticate</string><key>UDID</key><string>A</string><key>SerialNumber</key><integer>1</integer></dict>',
    '<dict><key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>A</string><key>Topic</key><string>t</string><key>PushMagic</key><string>m</string><key>Token</key><data></data></dict>',
    '<dict><key>MessageType</key><integer>1</integer><key>UDID</key><string>A</string></dict>',
    '<dict><key>MessageType</key><string>Authenticate</string><key>UDID</key><string>A</string><key>UserID</key><string>B</string></dict>',
    '<dict><key>MessageType</key><string>UserAuthenticate</string><key>UDID</key><string>A</string></dict>'
]) AS t;
-- a user channel (or any message) of a device that never sent Authenticate
SELECT try($$SELECT mdm.checkin(convert_to(replace(convert_from(v('checkin/05-tokenupdate-user.plist'), 'UTF8'),
                                '980E3D0B-5A28-537C-B7CB-7AFD15AFB933', 'UNKNOWN-DEVICE'), 'UTF8'))$$);
SELECT try($$SELECT mdm.checkin(NULL)$$);
SELECT table_counts() = :'before' AS still_unchanged;

-- mdm.checkin_log = none keeps no log (bodies stay on their rows)
SELECT count(*) AS logged FROM mdm.checkin_messages \gset
SET mdm.checkin_log = 'none';
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'))).status;
SELECT count(*) = :logged AS not_logged FROM mdm.checkin_messages;
RESET mdm.checkin_log;
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'))).status;
SELECT count(*) = :logged + 1 AS logged_again FROM mdm.checkin_messages;
-- columns a DBA adds to the log (a default, a domain's default, an
-- identity): the direct insert (src/row_insert.c) leaves the row to the
-- statement, which fills them, rather than fail or store NULLs
CREATE DOMAIN public.dba_tag AS text DEFAULT 'domain default';
ALTER TABLE mdm.checkin_messages ADD COLUMN dba_note text NOT NULL DEFAULT 'column default',
    ADD COLUMN dba_tag public.dba_tag, ADD COLUMN dba_serial bigint GENERATED ALWAYS AS IDENTITY;
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'))).status AS logged_with_dba_columns;
SELECT dba_note, dba_tag, dba_serial IS NOT NULL AS serial
FROM mdm.checkin_messages ORDER BY id DESC LIMIT 1;
ALTER TABLE mdm.checkin_messages DROP COLUMN dba_note, DROP COLUMN dba_tag, DROP COLUMN dba_serial;
DROP DOMAIN public.dba_tag;
-- a primary key index that is not usable (here made so by hand, as a
-- failed or concurrent REINDEX leaves one): the direct lookup
-- (src/key_lookup.c) reads the table instead, and finds a device whose
-- row the index does not have (a device row written meanwhile)
UPDATE pg_index SET indisvalid = false, indisready = false
WHERE indexrelid = 'mdm.nano_devices_pkey'::regclass;
INSERT INTO mdm.nano_devices (id, authenticate, authenticate_at) VALUES ('00008030-00DEAD0INDEX0', '\x', now());
SELECT (mdm.checkin(convert_to(replace(convert_from(v('checkin/07-getbootstraptoken.plist'), 'UTF8'),
                                       '980E3D0B-5A28-537C-B7CB-7AFD15AFB933', '00008030-00DEAD0INDEX0'), 'UTF8'))).status
    AS unindexed_device;
UPDATE pg_index SET indisvalid = true, indisready = true
WHERE indexrelid = 'mdm.nano_devices_pkey'::regclass;
REINDEX INDEX mdm.nano_devices_pkey;
DELETE FROM mdm.nano_devices WHERE id = '00008030-00DEAD0INDEX0';
-- mdm.message_enrollment_id() beside the call, as a front end asks for it:
-- the ID of the message the call has just read is the one worked out
-- again from the bytes (remembered, src/enrollment_id.c), read as the kind
-- asked for and with the limits in force
SELECT r.status, mdm.message_enrollment_id(v('checkin/02-tokenupdate-device.plist'), false) AS id
FROM mdm.checkin(v('checkin/02-tokenupdate-device.plist')) r;
SELECT mdm.message_enrollment_id(v('checkin/02-tokenupdate-device.plist'), true) AS as_report;
SELECT mdm.message_enrollment_id(v('checkin/05-tokenupdate-user.plist'), false) AS other_message;
SELECT r.status, mdm.message_enrollment_id(v('checkin/02-tokenupdate-device.plist'), false) AS id
FROM mdm.checkin(v('checkin/02-tokenupdate-device.plist')) r;
SET mdm.max_plist_nodes = 2;
SELECT mdm.message_enrollment_id(v('checkin/02-tokenupdate-device.plist'), false) AS too_many_nodes_now;
RESET mdm.max_plist_nodes;
