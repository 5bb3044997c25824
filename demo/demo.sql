-- The mdm_user demo: the macOS user channel, from enrollment to a command
-- answered on UDID:UserID.  Run by demo/run on a throwaway cluster.
\pset footer off
\set QUIET on
\set SHOW_CONTEXT never
\getenv cert MDM_DEMO_CERT
\getenv key MDM_DEMO_KEY

\echo
\echo '== mdm_user: Apple MDM inside PostgreSQL'
\echo 'A thin HTTP front end hands each device request body to one SQL call and writes'
\echo 'the reply back.  Everything else happens here.  The messages below are real'
\echo 'MDM plists from test/vectors/ (the seed''s Mac, UDID 980E3D0B-..., user Victor).'
CREATE EXTENSION mdm_user;
CREATE TEMP TABLE vectors_b64 (name text, b64 text);
\copy vectors_b64 from program 'cd test/vectors && for f in checkin/* connect/*; do printf "%s\t%s\n" "$f" "$(base64 -w0 "$f")"; done'
CREATE TEMP TABLE vectors AS SELECT name, decode(b64, 'base64') AS body FROM vectors_b64;
CREATE FUNCTION pg_temp.v(n text) RETURNS bytea LANGUAGE sql AS $$ SELECT body FROM vectors WHERE name = n $$;
CREATE FUNCTION pg_temp.show(r mdm.reply) RETURNS text LANGUAGE sql AS $$
    SELECT 'HTTP ' || r.status || coalesce(' ' || r.content_type, '') ||
           CASE WHEN length(r.body) > 0 THEN E'\n' || convert_from(r.body, 'UTF8') ELSE ' (empty body)' END $$;

\echo
\echo '== 1. The operator uploads the APNs push certificate (topic read from its UID)'
SELECT mdm.upload_push_cert(:'cert', :'key') AS topic;

\echo
\echo '== 2. The Mac enrolls: Authenticate, then the device channel''s TokenUpdate'
SELECT pg_temp.show(mdm.checkin(pg_temp.v('checkin/01-authenticate.plist'))) AS "Authenticate ->";
SELECT pg_temp.show(mdm.checkin(pg_temp.v('checkin/02-tokenupdate-device.plist'))) AS "TokenUpdate (device) ->";

\echo
\echo '== 3. Victor logs in.  His user channel sends its own TokenUpdate: it carries UserID,'
\echo '   so it is stored as the enrollment UDID:UserID, with its own token and PushMagic'
\echo '   and the device''s topic (there is no ".user" topic)'
SELECT pg_temp.show(mdm.checkin(pg_temp.v('checkin/05-tokenupdate-user.plist'))) AS "TokenUpdate (user) ->";
\x on
SELECT id AS enrollment_id, type, topic, push_magic, token_hex, enabled
FROM mdm.nano_enrollments ORDER BY id;
\x off

\echo
\echo '== 4. The admin queues a command to the user channel, and one to the device.'
\echo '   A device-only command to the user channel is refused (Apple''s schema decides):'
LISTEN mdm_push;
SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'],
                   '{"RequestType": "ProfileList"}'::jsonb) AS victor_cmd \gset
\echo 'ProfileList for Victor, CommandUUID' :victor_cmd
SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'],
                   '{"RequestType": "DeviceInformation", "Queries": ["OSVersion", "SerialNumber"]}'::jsonb) AS "DeviceInformation for the Mac";
\set ON_ERROR_STOP off
SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'],
                   '{"RequestType": "EraseDevice", "PIN": "123456"}'::jsonb);
\set ON_ERROR_STOP on

\echo
\echo '== 5. Each enqueue created a push job and announced it with NOTIFY mdm_push (above).'
\echo '   The front end claims the jobs: each channel is pushed with its own token and magic.'
SELECT job_id, enrollment_id, token_hex, push_magic, topic, apns_push_type, apns_priority
FROM mdm.claim_pushes();
SELECT mdm.push_result(id, 200, NULL, 'apns-id-' || id) AS "APNs said 200" FROM mdm.push_jobs ORDER BY id;

\echo
\echo '== 6. Woken by the push, Victor''s user channel polls (the seed''s own Idle message)'
\echo '   and receives its command, and only its command:'
SELECT pg_temp.show(mdm.connect(pg_temp.v('connect/02-idle-user-seed.plist'))) AS "Idle (user channel) ->";

\echo
\echo '== 7. The Mac answers ProfileList; the exchange ends with an empty reply'
SELECT pg_temp.show(mdm.connect(convert_to(format(
    '<plist><dict><key>UDID</key><string>980E3D0B-5A28-537C-B7CB-7AFD15AFB933</string>'
    '<key>UserID</key><string>23B1AB9F-5A19-4919-8610-0A74091497E1</string>'
    '<key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>%s</string>'
    '<key>ProfileList</key><array/></dict></plist>', :'victor_cmd'), 'UTF8'))) AS "Acknowledged ->";
SELECT enrollment_id, request_type, state FROM mdm.view_queue ORDER BY enrollment_id;

\echo
\echo '== 8. Upkeep is one call, scheduled with pg_cron when it is there'
SELECT mdm.run_maintenance();
CREATE EXTENSION pg_cron;
SELECT mdm.schedule_maintenance();
SELECT jobname, schedule, command, database FROM cron.job;
\echo
\echo 'Done.  See README.md and docs/ for the SQL API and the front end contract.'
