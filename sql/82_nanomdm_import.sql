--
-- Migration from NanoMDM: a NanoMDM database made from its own schema
-- (test/events/nanomdm/pgsql-schema.sql) is imported; the Macs then go on
-- with their next TokenUpdate and Idle poll, with their certificates, and
-- get their queued commands.  Importing twice changes nothing.  And the
-- migration endpoint's call, mdm.migrate_checkin().
--
SELECT reset_mdm();
\! sh test/push_certs.sh results/push_certs
\! sh test/identity_certs.sh results/identity
\set push_cert `cat results/push_certs/mdm.crt`
\set push_key `cat results/push_certs/mdm.key`
\set other_key `cat results/push_certs/other.key`
\set nocert_cert `cat results/push_certs/nocert.crt`
\set mac_der `cat results/identity/mac.der.b64`
\set mac2_der `cat results/identity/mac2.der.b64`
\set mac '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
\set victor '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'
\set mac2 '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'
\set ue 'B2C41D7E-0F9A-4C3B-8D2E-1F0A9B8C7D6E'

-- NanoMDM's database, in schema nanomdm
CREATE SCHEMA nanomdm;
SET search_path = nanomdm, public;
\set QUIET on
\i test/events/nanomdm/pgsql-schema.sql
\set QUIET off
RESET search_path;

CREATE FUNCTION p(vector text) RETURNS jsonb LANGUAGE sql RETURN mdm.plist_to_jsonb(v(vector));
CREATE FUNCTION t(vector text) RETURNS text LANGUAGE sql RETURN convert_from(v(vector), 'UTF8');
-- the three devices as NanoMDM stored them after their check-ins
INSERT INTO nanomdm.devices (id, serial_number, unlock_token, unlock_token_at, authenticate,
                             authenticate_at, token_update, token_update_at, bootstrap_token_b64,
                             bootstrap_token_at)
VALUES (:'mac', 'C02XJ0AAJGH5', '\x0102'::bytea, '2026-11-01 10:00', t('checkin/01-authenticate.plist'),
        '2026-11-01 09:59', t('checkin/02-tokenupdate-device.plist'), '2026-11-01 10:00',
        encode('bootstrap', 'base64'), '2026-11-01 10:01'),
       (:'mac2', NULL, NULL, NULL, t('checkin/20-authenticate-mac2.plist'), '2026-11-02 09:00',
        t('checkin/21-tokenupdate-mac2-device.plist'), '2026-11-02 09:01', NULL, NULL),
       (:'ue', NULL, NULL, NULL, t('checkin/30-authenticate-userenrollment.plist'), '2026-11-03 09:00',
        t('checkin/31-tokenupdate-userenrollment-device.plist'), '2026-11-03 09:01', NULL, NULL),
       -- an Authenticate that is not a plist: skipped, with the reason
       ('BROKEN-DEVICE', NULL, NULL, NULL, 'not a plist', '2026-11-04 09:00', NULL, NULL, NULL, NULL);
INSERT INTO nanomdm.users (id, device_id, user_short_name, user_long_name, token_update, token_update_at)
SELECT x.id, x.device_id, m->>'UserShortName', m->>'UserLongName', t(x.vector), '2026-11-01 11:00'
FROM (VALUES (:'victor', :'mac', 'checkin/05-tokenupdate-user.plist'),
             (:'mac2' || ':' || (p('checkin/22-tokenupdate-mac2-user.plist')->>'UserID'), :'mac2',
              'checkin/22-tokenupdate-mac2-user.plist'),
             (:'ue' || ':' || (p('checkin/32-tokenupdate-userenrollment-user.plist')->>'EnrollmentUserID'),
              :'ue', 'checkin/32-tokenupdate-userenrollment-user.plist')) x(id, device_id, vector),
     p(x.vector) m;
INSERT INTO nanomdm.enrollments (id, device_id, user_id, type, topic, push_magic, token_hex,
                                 token_update_tally, last_seen_at)
SELECT x.id, x.device_id, x.user_id, x.type, m->>'Topic', m->>'PushMagic',
       upper(encode(mdm.plist_data(m->'Token'), 'hex')), x.tally, '2026-11-05 12:00'
FROM (VALUES (:'mac', :'mac', NULL, 'Device', 'checkin/02-tokenupdate-device.plist', 3),
             (:'victor', :'mac', :'victor', 'User', 'checkin/05-tokenupdate-user.plist', 1),
             (:'mac2', :'mac2', NULL, 'Device', 'checkin/21-tokenupdate-mac2-device.plist', 1),
             (:'ue', :'ue', NULL, 'User Enrollment (Device)',
              'checkin/31-tokenupdate-userenrollment-device.plist', 2)) x(id, device_id, user_id, type, vector, tally),
     p(x.vector) m;
INSERT INTO nanomdm.enrollments (id, device_id, user_id, type, topic, push_magic, token_hex, last_seen_at)
SELECT u.id, u.device_id, u.id, CASE WHEN u.device_id = :'ue' THEN 'User Enrollment' ELSE 'User' END,
       m->>'Topic', m->>'PushMagic', encode(mdm.plist_data(m->'Token'), 'hex'), '2026-11-05 12:00'
FROM nanomdm.users u, mdm.plist_to_jsonb(convert_to(u.token_update, 'UTF8')) m
WHERE u.id <> :'victor';

-- commands: two still queued for the Mac (one answered NotNow), one done,
-- one for Victor's user channel
CREATE FUNCTION nano_command(uuid text, request_type text) RETURNS text LANGUAGE sql
    RETURN convert_from(mdm.jsonb_to_plist(jsonb_build_object('CommandUUID', uuid,
                            'Command', jsonb_build_object('RequestType', request_type))), 'UTF8');
INSERT INTO nanomdm.commands (command_uuid, request_type, command, created_at)
VALUES ('0F0E0D0C-0000-4000-8000-000000000001', 'SecurityInfo', nano_command('0F0E0D0C-0000-4000-8000-000000000001', 'SecurityInfo'), '2026-11-06 10:00'),
       ('0F0E0D0C-0000-4000-8000-000000000002', 'CertificateList', nano_command('0F0E0D0C-0000-4000-8000-000000000002', 'CertificateList'), '2026-11-06 10:01'),
       ('0F0E0D0C-0000-4000-8000-000000000003', 'DeviceInformation', nano_command('0F0E0D0C-0000-4000-8000-000000000003', 'DeviceInformation'), '2026-11-06 10:02'),
       ('0F0E0D0C-0000-4000-8000-000000000004', 'ProfileList', nano_command('0F0E0D0C-0000-4000-8000-000000000004', 'ProfileList'), '2026-11-06 10:03');
INSERT INTO nanomdm.enrollment_queue (id, command_uuid, created_at)
VALUES (:'mac', '0F0E0D0C-0000-4000-8000-000000000001', '2026-11-06 10:00'),
       (:'mac', '0F0E0D0C-0000-4000-8000-000000000002', '2026-11-06 10:01'),
       (:'mac', '0F0E0D0C-0000-4000-8000-000000000003', '2026-11-06 10:02'),
       (:'victor', '0F0E0D0C-0000-4000-8000-000000000004', '2026-11-06 10:03');
INSERT INTO nanomdm.command_results (id, command_uuid, status, result, not_now_tally)
VALUES (:'mac', '0F0E0D0C-0000-4000-8000-000000000002', 'NotNow', t('connect/04-notnow-device.plist'), 1),
       (:'mac', '0F0E0D0C-0000-4000-8000-000000000003', 'Acknowledged', t('connect/07-acknowledged-deviceinformation.plist'), 0);
-- certificate associations: the Mac and the User Enrollment; none for the second Mac
INSERT INTO nanomdm.cert_auth_associations (id, sha256)
VALUES (:'mac', encode(sha256(decode(:'mac_der', 'base64')), 'hex')),
       (:'victor', encode(sha256(decode(:'mac_der', 'base64')), 'hex')),
       (:'ue', repeat('ab', 32));
-- push certificates: the vectors' topic, and one whose key does not match
INSERT INTO nanomdm.push_certs (topic, cert_pem, key_pem, stale_token)
VALUES ('com.apple.mgmt.External.8f2d1c7a-3b4e-4f5a-9c6d-7e8f9a0b1c2d', :'push_cert', :'push_key', 1),
       ('com.apple.mgmt.External.no-cert-yet', :'nocert_cert', :'other_key', 1);

-- the import
SELECT jsonb_pretty(mdm.import_nanomdm('nanomdm'));
CREATE FUNCTION state() RETURNS text LANGUAGE sql AS $$
    SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
        SELECT row(d.*)::text FROM mdm.nano_devices d UNION ALL
        SELECT row(s.*)::text FROM mdm.device_secrets s UNION ALL
        SELECT row(u.*)::text FROM mdm.nano_users u UNION ALL
        SELECT row(e.*)::text FROM mdm.nano_enrollments e UNION ALL
        SELECT row(i.*)::text FROM mdm.device_identities i UNION ALL
        SELECT row(c.command_uuid, c.request_type, c.command, c.plist)::text FROM mdm.nano_commands c UNION ALL
        SELECT row(q.*)::text FROM mdm.nano_enrollment_queue q UNION ALL
        SELECT row(j.device_id, j.enrollment_id, j.state)::text FROM mdm.push_jobs j UNION ALL
        SELECT row(c.topic, c.sha256)::text FROM mdm.push_certs c) s(x)
$$;
SELECT state() AS after_first \gset
-- twice: nothing changes, everything is reported as already present
SELECT jsonb_pretty(mdm.import_nanomdm('nanomdm'));
SELECT state() = :'after_first' AS unchanged;

-- what was carried over
SELECT id, serial_number, model, os_version, authenticate = v('checkin/01-authenticate.plist') AS raw_kept
FROM mdm.nano_devices ORDER BY id;
SELECT device_id, unlock_token, convert_from(bootstrap_token, 'UTF8') AS bootstrap FROM mdm.device_secrets;
SELECT id, type, topic, push_magic, token_hex = lower(token_hex) AS lower_hex, enabled,
       token_update_tally, token_update_at, last_seen_at
FROM mdm.nano_enrollments ORDER BY id;
SELECT id, user_short_name FROM mdm.nano_users ORDER BY id;
SELECT device_id, bound_via, cert_sha256 = sha256(decode(:'mac_der', 'base64')) AS mac_cert, cert_der IS NULL AS no_der
FROM mdm.device_identities ORDER BY device_id;
SELECT enrollment_id, request_type, state FROM mdm.view_queue ORDER BY enrollment_id, request_type;
SELECT enrollment_id, state FROM mdm.push_jobs ORDER BY enrollment_id;
SELECT topic FROM mdm.push_certs;

-- The Mac goes on with its certificate, without a new Authenticate
SET mdm.require_identity = on;
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'), decode(:'mac_der', 'base64'))).status AS token_update;
SELECT token_update_tally FROM mdm.nano_enrollments WHERE id = :'mac';
CREATE FUNCTION poll(vector text, cert text, status text DEFAULT 'Idle', uuid text DEFAULT NULL) RETURNS text
    LANGUAGE sql AS $$
    SELECT r.status || ' ' || CASE WHEN length(r.body) = 0 THEN 'empty'
                                   ELSE mdm.plist_to_jsonb(r.body) #>> '{Command,RequestType}' END
    FROM mdm.connect(CASE WHEN uuid IS NULL THEN v(vector)
                          ELSE convert_to(format('<plist><dict><key>UDID</key><string>%s</string>'
                               '<key>Status</key><string>%s</string><key>CommandUUID</key><string>%s</string></dict></plist>',
                               '980E3D0B-5A28-537C-B7CB-7AFD15AFB933', status, uuid), 'UTF8') END,
                     decode(cert, 'base64')) r
$$;
SELECT poll('connect/01-idle-device.plist', :'mac_der') AS idle;
SELECT poll(NULL, :'mac_der', 'Acknowledged', '0F0E0D0C-0000-4000-8000-000000000001') AS after_first;
SELECT poll(NULL, :'mac_der', 'Acknowledged', '0F0E0D0C-0000-4000-8000-000000000002') AS after_second;
-- Victor's user channel, with the device's certificate
SELECT poll('connect/02-idle-user-seed.plist', :'mac_der') AS user_idle;
-- another certificate is refused
SELECT try(format('SELECT mdm.connect(v(%L), %L::bytea)', 'connect/01-idle-device.plist',
                  decode(:'mac2_der', 'base64'))) AS other_cert;
-- the second Mac had no association: refused until an administrator decides
SELECT try(format('SELECT mdm.checkin(v(%L), %L::bytea)', 'checkin/21-tokenupdate-mac2-device.plist',
                  decode(:'mac2_der', 'base64'))) AS mac2_unbound;

-- bind_on_next_message: the certificate of the device's next message is bound
SELECT reset_mdm();
SELECT (mdm.import_nanomdm('nanomdm', bind_on_next_message => true))->'imported';
SELECT device_id, bound_via FROM mdm.device_identities ORDER BY device_id;
SELECT (mdm.checkin(v('checkin/21-tokenupdate-mac2-device.plist'), decode(:'mac2_der', 'base64'))).status AS mac2_binds;
SELECT bound_via, cert_sha256 = sha256(decode(:'mac2_der', 'base64')) AS mac2_cert, cert_der IS NOT NULL AS der_kept
FROM mdm.device_identities WHERE device_id = :'mac2';
SELECT try(format('SELECT mdm.checkin(v(%L), %L::bytea)', 'checkin/21-tokenupdate-mac2-device.plist',
                  decode(:'mac_der', 'base64'))) AS then_only_that_one;

-- Bad sources
SELECT try($$SELECT mdm.import_nanomdm('no_such_schema')$$);
SELECT try($$SELECT mdm.import_nanomdm('public')$$);
SELECT try($$SELECT mdm.import_nanomdm(NULL)$$);

-- The migration endpoint's call: Authenticate and TokenUpdate without an
-- identity; the next message binds its certificate
SELECT reset_mdm();
SELECT (mdm.migrate_checkin(v('checkin/20-authenticate-mac2.plist'))).status AS migrated_authenticate;
SELECT (mdm.migrate_checkin(v('checkin/21-tokenupdate-mac2-device.plist'))).status AS migrated_token_update;
SELECT (mdm.migrate_checkin(v('checkin/22-tokenupdate-mac2-user.plist'))).status AS migrated_user;
SELECT device_id, bound_via, cert_sha256 IS NULL AS waiting FROM mdm.device_identities;
SELECT id, enabled, token_update_tally FROM mdm.nano_enrollments ORDER BY id;
SELECT current_setting('mdm.require_identity') AS still_required;
SELECT try($$SELECT mdm.migrate_checkin(v('connect/01-idle-device.plist'))$$) AS not_a_checkin;
SELECT try($$SELECT mdm.migrate_checkin(v('checkin/11-checkout.plist'))$$) AS checkout;
SELECT try($$SELECT mdm.checkin(v('checkin/02-tokenupdate-device.plist'))$$) AS plain_checkin_still_needs_identity;
SELECT (mdm.checkin(v('checkin/21-tokenupdate-mac2-device.plist'), decode(:'mac2_der', 'base64'))).status AS binds;
SELECT bound_via FROM mdm.device_identities WHERE device_id = :'mac2';
SELECT try(format('SELECT mdm.checkin(v(%L), %L::bytea)', 'checkin/21-tokenupdate-mac2-device.plist',
                  decode(:'mac_der', 'base64'))) AS other_cert_after_binding;
SET mdm.require_identity = off;

-- privileges: the administrator's calls
SELECT p, has_function_privilege('mdm_admin', p, 'EXECUTE') AS admin,
       has_function_privilege('mdm_frontend', p, 'EXECUTE') AS frontend,
       has_function_privilege('mdm_reader', p, 'EXECUTE') AS reader
FROM unnest(ARRAY['mdm.import_nanomdm(name, boolean)', 'mdm.migrate_checkin(bytea)',
                  'mdm.claim_events(integer)', 'mdm.event_result(text, bigint, integer, integer, text)',
                  'mdm.event_backlog()']::regprocedure[]) p;
-- the derived rows are whole after the import
SELECT integrity() AS broken;
DROP SCHEMA nanomdm CASCADE;
SELECT reset_mdm();
