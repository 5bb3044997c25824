-- The queries of docs/console.md, run against the test vectors; their
-- output is what the page shows.  From the top of the tree, in a cluster
-- with the extension installed and nothing in database "tour":
--   createdb tour && psql -X -d tour -f tools/console_tour.sql
-- (tools/console_tour.sh does that in a throwaway cluster).
\set ON_ERROR_STOP 0
\pset footer off
SET client_min_messages = notice;
CREATE EXTENSION mdm_user;
-- the vectors carry no device identity
SET mdm.require_identity = off;
\! sh test/push_certs.sh /tmp/mdm_tour_certs
\set cert `cat /tmp/mdm_tour_certs/mdm.crt`
\set key `cat /tmp/mdm_tour_certs/mdm.key`
SELECT mdm.upload_push_cert(:'cert', :'key') IS NOT NULL AS push_cert_uploaded \gset
-- the test vectors, read by the client; device(name) plays a Mac sending one
CREATE TABLE tour_vectors (name text PRIMARY KEY, body bytea NOT NULL);
CREATE TEMP TABLE tour_b64 (name text, b64 text);
\copy tour_b64 from program 'cd test/vectors && for f in checkin/*.plist connect/*.plist; do printf "%s\t%s\n" "$f" "$(base64 -w0 "$f")"; done'
INSERT INTO tour_vectors SELECT name, decode(b64, 'base64') FROM tour_b64;
CREATE FUNCTION device(vector text) RETURNS bytea LANGUAGE sql
    RETURN (SELECT body FROM tour_vectors WHERE name = vector);
-- the Acknowledged answer of vector 07, for our command
CREATE FUNCTION device_answers(cmd uuid) RETURNS bytea LANGUAGE sql
    RETURN convert_to(replace(convert_from(device('connect/07-acknowledged-deviceinformation.plist'), 'UTF8'),
                              '4D2E7A6C-0F8B-4C5D-9EBA-9B7F5C3D1E6A', upper(cmd::text)), 'UTF8');
-- an Error answer of the second Mac
CREATE FUNCTION device_fails(cmd uuid) RETURNS bytea LANGUAGE sql
    RETURN convert_to(format(
        '<plist><dict><key>UDID</key><string>5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B</string>'
        '<key>Status</key><string>Error</string><key>CommandUUID</key><string>%s</string>'
        '<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>12021</integer>'
        '<key>ErrorDomain</key><string>MCMDMErrorDomain</string><key>USEnglishDescription</key>'
        '<string>The device is busy.</string></dict></array></dict></plist>', upper(cmd::text)), 'UTF8');
SELECT count(*) AS checkins FROM unnest(ARRAY['checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist',
    'checkin/05-tokenupdate-user.plist', 'checkin/20-authenticate-mac2.plist',
    'checkin/21-tokenupdate-mac2-device.plist', 'checkin/22-tokenupdate-mac2-user.plist']) v,
    mdm.checkin(device(v)) r \gset
INSERT INTO mdm.labels (name) VALUES ('design');
INSERT INTO mdm.label_enrollments (label_id, device_id, enrollment_id)
SELECT id, '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B', '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'
FROM mdm.labels WHERE name = 'design';

\set ECHO queries
\echo '#### health'
SELECT * FROM mdm.health_check();

\echo '#### enroll check'
\x on
SELECT * FROM mdm.view_devices WHERE serial_number = 'C02XK1ABJG5H';
\x off
SELECT enrollment_id, channel, user_short_name, pushable, pending_commands
FROM mdm.view_enrollments WHERE serial_number = 'C02XK1ABJG5H';

\echo '#### select'
SELECT mdm.select_enrollments(serials => '{C02XK1ABJG5H}');
SELECT mdm.select_enrollments(labels => '{design}', channel => 'all');
SELECT mdm.select_enrollments(users => '{ada}', channel => 'user');
SELECT mdm.select_enrollments(serials => '{C02XK1ABJG5H,C02XK1ABJG5X}');

\echo '#### queue'
SELECT mdm.enqueue(mdm.select_enrollments(serials => '{C02XK1ABJG5H}'),
                   '{"RequestType": "DeviceInformation",
                     "Queries": ["OSVersion", "SerialNumber", "DeviceName", "IsSupervised"]}'::jsonb)
       AS command_uuid \gset
SELECT mdm.enqueue(mdm.select_enrollments(labels => '{design}'),
                   '{"RequestType": "SecurityInfo"}'::jsonb) AS secinfo_uuid \gset
SELECT enrollment_id, request_type, state, queued_at::time(0)
FROM mdm.view_queue WHERE active ORDER BY queued_at;
SELECT job_id, enrollment_id, state, status FROM mdm.view_pushes ORDER BY job_id;

\echo '#### follow'
-- the Mac polls: it gets the command
SELECT status, length(body) AS bytes, mdm.plist_to_jsonb(body) #>> '{Command,RequestType}' AS command
FROM mdm.connect(device('connect/01-idle-device.plist'));
SELECT request_type, state, sent_count FROM mdm.view_queue WHERE command_uuid = :'command_uuid';
-- it answers; the empty reply ends the exchange
SELECT status, length(body) AS bytes, mdm.plist_to_jsonb(body) AS reply
FROM mdm.connect(device_answers(:'command_uuid'));
SELECT request_type, state, finished_at IS NOT NULL AS finished
FROM mdm.view_queue WHERE command_uuid = :'command_uuid';
SELECT status, result -> 'QueryResponses' ->> 'OSVersion' AS os_version
FROM mdm.view_command_results WHERE command_uuid = :'command_uuid';

\echo '#### inventory'
SELECT serial_number, key, value FROM mdm.view_inventory ORDER BY serial_number, key;
SELECT serial_number, value AS os_version FROM mdm.view_inventory
WHERE key = 'OSVersion' AND string_to_array(value, '.')::int[] < '{14,6}';

\echo '#### broken push'
-- the front end reports what APNs said
SELECT job_id FROM mdm.claim_pushes(10) WHERE enrollment_id = '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B' \gset
SELECT mdm.push_result(:job_id, 410, 'Unregistered');
SELECT enrollment_id, pushable, not_pushable_because FROM mdm.view_enrollments
WHERE NOT pushable;
SELECT job_id, enrollment_id, state, status FROM mdm.view_pushes ORDER BY job_id;
SELECT mdm.push(mdm.select_enrollments(labels => '{design}'));
-- the second Mac polls on its own and answers the SecurityInfo with an error
SELECT (mdm.connect(device_fails(:'secinfo_uuid'))).status;
SELECT at::time(0), kind, enrollment_id, what, detail FROM mdm.view_recent_errors;

\echo '#### error'
SELECT mdm.enqueue(mdm.select_enrollments(users => '{ada}', channel => 'user'),
                   '{"RequestType": "DeviceLock"}'::jsonb);
\! rm -rf /tmp/mdm_tour_certs
