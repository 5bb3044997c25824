-- The mdm_user demo: the macOS user channel, from enrollment to a command
-- answered on UDID:UserID.  Run by demo/run on a throwaway cluster.
\pset footer off
\set QUIET on
\set SHOW_CONTEXT never
\getenv cert MDM_DEMO_CERT
\getenv key MDM_DEMO_KEY
\getenv mac_identity MDM_DEMO_MAC_IDENTITY
\getenv mac2_identity MDM_DEMO_MAC2_IDENTITY

\echo
\echo '== mdm_user: Apple MDM inside PostgreSQL'
\echo 'A thin HTTP front end hands each device request body to one SQL call and writes'
\echo 'the reply back.  Everything else happens here.  The messages below are real'
\echo 'MDM plists from test/vectors/ (the seed''s Mac, UDID 980E3D0B-..., user Victor).'
CREATE EXTENSION mdm_user;
CREATE TEMP TABLE vectors_b64 (name text, b64 text);
\copy vectors_b64 from program 'cd test/vectors && for f in checkin/* connect/* profiles/*; do printf "%s\t%s\n" "$f" "$(base64 -w0 "$f")"; done'
CREATE TEMP TABLE vectors AS SELECT name, decode(b64, 'base64') AS body FROM vectors_b64;
CREATE FUNCTION pg_temp.v(n text) RETURNS bytea LANGUAGE sql AS $$ SELECT body FROM vectors WHERE name = n $$;
-- the front end passes each Mac's TLS client certificate with its requests
CREATE TEMP TABLE identities AS
    SELECT '980E3D0B-5A28-537C-B7CB-7AFD15AFB933' AS udid, convert_to(:'mac_identity', 'UTF8') AS cert
    UNION ALL SELECT '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B', convert_to(:'mac2_identity', 'UTF8');
CREATE FUNCTION pg_temp.cert_for(body bytea) RETURNS bytea LANGUAGE sql AS $$
    SELECT cert FROM identities WHERE position(convert_to(udid, 'UTF8') in body) > 0 $$;
CREATE FUNCTION pg_temp.checkin(body bytea) RETURNS mdm.reply LANGUAGE sql AS $$
    SELECT * FROM mdm.checkin(body, pg_temp.cert_for(body)) $$;
CREATE FUNCTION pg_temp.connect(body bytea) RETURNS mdm.reply LANGUAGE sql AS $$
    SELECT * FROM mdm.connect(body, pg_temp.cert_for(body)) $$;
CREATE FUNCTION pg_temp.show(r mdm.reply) RETURNS text LANGUAGE sql AS $$
    SELECT 'HTTP ' || r.status || coalesce(' ' || r.content_type, '') ||
           CASE WHEN length(r.body) > 0 THEN E'\n' || convert_from(r.body, 'UTF8') ELSE ' (empty body)' END $$;

\echo
\echo '== 1. The operator uploads the APNs push certificate (topic read from its UID)'
SELECT mdm.upload_push_cert(:'cert', :'key') AS topic;

\echo
\echo '== 2. The Mac enrolls: Authenticate, then the device channel''s TokenUpdate.  The front end'
\echo '   passes the TLS client certificate; the first one a device presents is bound to it.'
SELECT pg_temp.show(pg_temp.checkin(pg_temp.v('checkin/01-authenticate.plist'))) AS "Authenticate ->";
SELECT pg_temp.show(pg_temp.checkin(pg_temp.v('checkin/02-tokenupdate-device.plist'))) AS "TokenUpdate (device) ->";
SELECT device_id, bound_via, encode(cert_sha256, 'hex') AS certificate_sha256 FROM mdm.device_identities;
\echo '   A message for this Mac signed with another device''s certificate is refused (403):'
\set ON_ERROR_STOP off
SELECT mdm.checkin(pg_temp.v('checkin/02-tokenupdate-device.plist'), convert_to(:'mac2_identity', 'UTF8'));
\set ON_ERROR_STOP on

\echo
\echo '== 3. Victor logs in.  His user channel sends its own TokenUpdate: it carries UserID,'
\echo '   so it is stored as the enrollment UDID:UserID, with its own token and PushMagic'
\echo '   and the device''s topic (there is no ".user" topic)'
SELECT pg_temp.show(pg_temp.checkin(pg_temp.v('checkin/05-tokenupdate-user.plist'))) AS "TokenUpdate (user) ->";
\x on
SELECT id AS enrollment_id, type, topic, push_magic, token_hex, enabled
FROM mdm.nano_enrollments ORDER BY id;
\x off
\echo '   A second Mac enrolls the same way, with Ada logged in:'
SELECT (pg_temp.checkin(pg_temp.v(n))).status FROM unnest(ARRAY['checkin/20-authenticate-mac2.plist',
    'checkin/21-tokenupdate-mac2-device.plist', 'checkin/22-tokenupdate-mac2-user.plist']) n;

\echo
\echo '== 4. The admin uploads Victor''s certificate profile (profiles/01: PayloadScope User,'
\echo '   a PKCS#12 payload).  Its scope and every payload type are checked against Apple''s schema.'
SELECT mdm.upload_profile(pg_temp.v('profiles/01-user-scoped-certificate.mobileconfig')) AS cert_profile \gset
SELECT id, payload_identifier, version, scope, scope_from FROM mdm.profiles;
\echo '   A profile that puts a device-only payload in the user scope is refused:'
\set ON_ERROR_STOP off
SELECT mdm.upload_profile(pg_temp.v('profiles/03-user-scope-with-device-only-payload.mobileconfig'));
\echo '   and a User-scoped profile cannot go to the device channel:'
SELECT * FROM mdm.install_profile(:cert_profile, ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933']);
\set ON_ERROR_STOP on

\echo
\echo '== 5. It carries Victor''s certificate, so it is bound to his user channel: no path'
\echo '   (install, enqueue, labels, reconcile) can ever queue it to anyone else.'
SELECT mdm.bind_profile(:cert_profile, '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1');
LISTEN mdm_push;
SELECT enrollment_id, command_uuid FROM mdm.install_profile(:cert_profile,
    ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1']);
\set ON_ERROR_STOP off
\echo '   Sending it to Ada is refused by the database itself:'
SELECT * FROM mdm.install_profile(:cert_profile, ARRAY['5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B:7D41E2B0-9A8C-4B6D-8E1F-2A3B4C5D6E7F']);
\set ON_ERROR_STOP on
SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'],
                   '{"RequestType": "DeviceInformation", "Queries": ["OSVersion"]}'::jsonb) AS "DeviceInformation for the Mac";

\echo
\echo '== 6. Each enqueue created a push job and announced it with NOTIFY mdm_push (above).'
\echo '   The front end claims them: the user channel is pushed with its own token and'
\echo '   PushMagic, under the device''s topic.'
SELECT job_id, enrollment_id, token_hex, push_magic, topic, apns_push_type, apns_priority
FROM mdm.claim_pushes();
SELECT mdm.push_result(id, 200, NULL, 'apns-id-' || id) AS "APNs said 200" FROM mdm.push_jobs ORDER BY id;

\echo
\echo '== 7. Woken by the push, Victor''s user channel polls (the seed''s own Idle message)'
\echo '   and receives InstallProfile with the profile''s bytes, encoded once, and no UserID:'
SELECT pg_temp.show(pg_temp.connect(pg_temp.v('connect/02-idle-user-seed.plist'))) AS "Idle (user channel) ->";
SELECT command_uuid AS install_cmd FROM mdm.profile_deliveries \gset
\echo '   The Mac installs it into Victor''s keychain and acknowledges:'
SELECT pg_temp.show(pg_temp.connect(convert_to(format(
    '<plist><dict><key>UDID</key><string>980E3D0B-5A28-537C-B7CB-7AFD15AFB933</string>'
    '<key>UserID</key><string>23B1AB9F-5A19-4919-8610-0A74091497E1</string>'
    '<key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>%s</string>'
    '</dict></plist>', upper(:'install_cmd')), 'UTF8'))) AS "Acknowledged ->";
SELECT enrollment_id, payload_identifier, version, status FROM mdm.view_profile_status;
SELECT enrollment_id, request_type, state FROM mdm.view_queue ORDER BY enrollment_id;

\echo
\echo '== 8. Upkeep is one call, scheduled with pg_cron when it is there'
SELECT mdm.run_maintenance();
CREATE EXTENSION pg_cron;
SELECT mdm.schedule_maintenance();
SELECT jobname, schedule, command, database FROM cron.job;
\echo
\echo 'Done.  See README.md and docs/ for the SQL API and the front end contract.'
