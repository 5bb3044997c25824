--
-- Check-in protocol: mdm.checkin() with every message type, enrollment
-- identity on the device and user channels, and hostile input.
--
SELECT reset_mdm();
CREATE FUNCTION reply_text(r mdm.reply) RETURNS text LANGUAGE sql AS $$
    SELECT r.status || coalesce(' ' || r.content_type, '') ||
           CASE WHEN length(r.body) > 0 THEN E'\n' || convert_from(r.body, 'UTF8') ELSE '' END
$$;
CREATE FUNCTION table_counts() RETURNS text LANGUAGE sql AS $$
    SELECT format('devices=%s secrets=%s users=%s enrollments=%s messages=%s',
        (SELECT count(*) FROM mdm.nano_devices), (SELECT count(*) FROM mdm.device_secrets),
        (SELECT count(*) FROM mdm.nano_users), (SELECT count(*) FROM mdm.nano_enrollments),
        (SELECT count(*) FROM mdm.checkin_messages))
$$;

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
SET mdm.get_token_handler = 'public.no_such_function';
SELECT try($$SELECT mdm.checkin(v('checkin/10-gettoken.plist'))$$);
RESET mdm.get_token_handler;

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
-- TokenUpdate and clears the bootstrap token
SELECT (mdm.checkin(v('checkin/06-setbootstraptoken.plist'))).status;
SELECT (mdm.checkin(v('checkin/01-authenticate.plist'))).status;
SELECT id, enabled FROM mdm.nano_enrollments WHERE device_id = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933' ORDER BY id;
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
