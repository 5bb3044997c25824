--
-- psql as the console (docs/console.md): settings checked because the
-- module is preloaded, error context that names the API call, comments on
-- every column, the operator's views, selection by serial number, label
-- and user, the former quiet no-ops, and reading an empty reply.
--

-- 1. Loading.  This session has not called the extension yet, and still
-- knows its settings: the cluster preloads it.
SHOW mdm.require_identity;
SELECT count(*) AS mdm_settings FROM pg_settings WHERE name LIKE 'mdm.%';
SELECT check_name, ok FROM mdm.health_check() WHERE check_name = 'preloaded';
-- a misspelt name is refused, in a session and for the database
SET mdm.user_authentcate = 'decline';
ALTER DATABASE :"DBNAME" SET mdm.user_authentcate = 'decline';
-- an invalid value is refused with a hint, also for the database
SET mdm.history_retention = '30 days';
ALTER DATABASE :"DBNAME" SET mdm.history_retention = '30 days';
SET mdm.history_retention = '30d';
SHOW mdm.history_retention;
RESET mdm.history_retention;
SET mdm.user_authenticate = 'refuse';
-- handler settings must name a function
SET mdm.get_token_handler = 'my tokens';
ALTER DATABASE :"DBNAME" SET mdm.declarative_management_handler = 'a.b.c';
SET mdm.get_token_handler = '"My Schema".tokens';
SET mdm.get_token_handler = 'my_schema."x"""';
RESET mdm.get_token_handler;

-- 2. Error context names the API call, not the helpers behind it ...
SELECT mdm.enqueue(ARRAY['no-such-enrollment'], '{"RequestType": "DeviceInformation"}'::jsonb);
-- ... and keeps the caller's own frames
CREATE FUNCTION my_fleet_job() RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN
    RETURN mdm.enqueue(ARRAY['no-such-enrollment'], '{"RequestType": "DeviceInformation"}'::jsonb);
END $$;
SELECT my_fleet_job();
-- mdm.error_context = full shows the whole chain
SET mdm.error_context = full;
SELECT mdm.enqueue(ARRAY['no-such-enrollment'], '{"RequestType": "DeviceInformation"}'::jsonb);
RESET mdm.error_context;

-- every column of every table and view of the extension has a comment
SELECT c.relname, a.attname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('mdm', 'mdm_internal') AND c.relkind IN ('r', 'v') AND a.attnum > 0 AND NOT a.attisdropped
  AND col_description(c.oid, a.attnum) IS NULL
ORDER BY 1, 2;
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('mdm', 'mdm_internal') AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL
ORDER BY 1;

-- 3. The views, after the vectors: two Macs with user channels, a User
-- Enrollment, a Shared iPad
SELECT reset_mdm();
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist',
    'checkin/05-tokenupdate-user.plist', 'checkin/20-authenticate-mac2.plist',
    'checkin/21-tokenupdate-mac2-device.plist', 'checkin/22-tokenupdate-mac2-user.plist',
    'checkin/30-authenticate-userenrollment.plist', 'checkin/31-tokenupdate-userenrollment-device.plist',
    'checkin/32-tokenupdate-userenrollment-user.plist', 'checkin/38-authenticate-sharedipad.plist',
    'checkin/39-tokenupdate-sharedipad-device.plist', 'checkin/40-tokenupdate-sharedipad-user.plist',
    'checkin/10-gettoken.plist']) n;
\set mac '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
\set mac2 '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'
SELECT serial_number, model, platform, os_version, enrollment_state, identity_bound,
       user_channels, last_seen_at IS NOT NULL AS seen
FROM mdm.view_devices ORDER BY serial_number NULLS LAST;
SELECT enrollment_id, serial_number, channel, type, user_short_name, user_long_name, pushable,
       not_pushable_because, pending_commands
FROM mdm.view_enrollments ORDER BY enrollment_id;

-- the DeviceInformation answer is kept as inventory; the empty 200 that
-- ends the exchange reads as NULL, and the report stays stored
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "DeviceInformation", "Queries": ["OSVersion", "SerialNumber"]}'::jsonb) AS devinfo \gset
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "SecurityInfo"}'::jsonb) AS secinfo \gset
SELECT enrollment_id, pending_commands FROM mdm.view_enrollments WHERE enrollment_id = :'mac';
SELECT mdm.plist_to_jsonb(body) #>> '{Command,RequestType}' AS handed_out
FROM mdm.connect(v('connect/01-idle-device.plist'));
SELECT status, mdm.plist_to_jsonb(body) IS NULL AS reply_is_null,
       mdm.plist_to_jsonb(body) #>> '{Command,RequestType}' AS handed_out
FROM mdm.connect(convert_to(replace(convert_from(v('connect/07-acknowledged-deviceinformation.plist'), 'UTF8'),
                                    '4D2E7A6C-0F8B-4C5D-9EBA-9B7F5C3D1E6A', upper(:'devinfo')), 'UTF8'));
SELECT status, length(body) AS body_bytes, mdm.plist_to_jsonb(body) AS reply
FROM mdm.connect(convert_to(format(
    '<plist><dict><key>UDID</key><string>%s</string><key>Status</key><string>Acknowledged</string>'
    '<key>CommandUUID</key><string>%s</string><key>SecurityInfo</key><dict>'
    '<key>SystemIntegrityProtectionEnabled</key><true/><key>FDE_Enabled</key><false/>'
    '<key>FirewallSettings</key><dict><key>FirewallEnabled</key><true/></dict>'
    '</dict></dict></plist>', :'mac', :'secinfo'), 'UTF8'));
SELECT request_type, state FROM mdm.view_queue WHERE enrollment_id = :'mac' ORDER BY request_type;
SELECT serial_number, source, key, value FROM mdm.view_inventory ORDER BY source, key;
-- a later answer replaces a key's value; a DeviceInformation reply to
-- some other command is not inventory
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "DeviceInformation", "Queries": ["OSVersion"]}'::jsonb) AS devinfo2 \gset
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "ProfileList"}'::jsonb) AS profilelist \gset
SELECT (mdm.connect(convert_to(format(
    '<plist><dict><key>UDID</key><string>%s</string><key>Status</key><string>Acknowledged</string>'
    '<key>CommandUUID</key><string>%s</string><key>QueryResponses</key><dict>'
    '<key>OSVersion</key><string>%s</string></dict></dict></plist>', :'mac', u, v), 'UTF8'))).status
FROM (VALUES (:'devinfo2', '14.6'), (:'profilelist', '99.9')) x(u, v);
SELECT key, value FROM mdm.view_inventory WHERE key = 'OSVersion';

-- pending and failed pushes, without tokens or keys
SELECT enrollment_id, state, status FROM mdm.view_pushes ORDER BY enrollment_id;
-- targets still waiting in a large fan-out show, one row each, in both
-- views (a target already made into a job, or gone, does not)
BEGIN;
INSERT INTO mdm.push_fanouts (id, chunk, enrollment_ids, next_target)
SELECT '0f0f0f0f-0000-4000-8000-000000000001', 0, array_agg(id ORDER BY device_id, id) || 'GONE'::text, 2
FROM mdm.nano_enrollments;
SELECT count(*) = (SELECT count(*) - 1 FROM mdm.nano_enrollments) AS one_per_target,
       bool_and(job_id IS NULL AND state = 'fan-out' AND status = 'waiting in a fan-out'
                AND fanout_id = '0f0f0f0f-0000-4000-8000-000000000001') AS described
FROM mdm.view_pushes WHERE fanout_id IS NOT NULL;
SELECT count(*) = (SELECT count(*) - 1 FROM mdm.nano_enrollments) AS problems_too
FROM mdm.view_push_problems WHERE problem = 'waiting in a fan-out' AND state = 'fan-out';
ROLLBACK;
SELECT count(*) AS secret_columns FROM information_schema.columns
WHERE table_schema = 'mdm' AND table_name IN ('view_devices', 'view_enrollments', 'view_inventory',
                                              'view_pushes', 'view_recent_errors')
  AND (data_type = 'bytea' OR column_name ~ 'token_hex|push_magic|key_pem|cert_pem|cert_der');

-- recent errors: a command error, a 404 check-in, a failed push, an orphan report
SELECT mdm.enqueue(ARRAY[:'mac2'], '{"RequestType": "ProfileList"}'::jsonb) AS mac2_cmd \gset
SELECT (mdm.connect(convert_to(format(
    '<plist><dict><key>UDID</key><string>%s</string><key>Status</key><string>Error</string>'
    '<key>CommandUUID</key><string>%s</string><key>ErrorChain</key><array><dict>'
    '<key>ErrorCode</key><integer>12021</integer><key>ErrorDomain</key><string>MCMDMErrorDomain</string>'
    '<key>USEnglishDescription</key><string>The command is not supported.</string></dict></array>'
    '</dict></plist>', :'mac2', :'mac2_cmd'), 'UTF8'))).status AS error_report;
SELECT (mdm.connect(v('connect/05-error-device.plist'))).status AS orphan;
UPDATE mdm.push_jobs SET state = 'failed', finished_at = now(), apns_status = 400, apns_reason = 'TopicDisallowed'
WHERE enrollment_id = :'mac2';
SELECT kind, enrollment_id, what, detail FROM mdm.view_recent_errors ORDER BY kind, enrollment_id;

-- 4. Selecting enrollments the way operators think
SELECT mdm.select_enrollments(serials => '{C02XK1ABJG5H}');
SELECT mdm.select_enrollments(serials => '{C02XK1ABJG5H,C02ZZ9XYMD6T}', channel => 'user');
SELECT mdm.select_enrollments(users => '{ada}', channel => 'user');
SELECT mdm.select_enrollments(users => '{ada}');
INSERT INTO mdm.labels (name) VALUES ('design'), ('empty');
INSERT INTO mdm.label_enrollments (label_id, device_id, enrollment_id)
SELECT id, :'mac2', :'mac2' FROM mdm.labels WHERE name = 'design';
SELECT mdm.select_enrollments(labels => '{design}', channel => 'all');
SELECT enrollment_id, labels FROM mdm.view_enrollments WHERE labels IS NOT NULL ORDER BY 1;
SELECT mdm.select_enrollments(labels => '{design}', serials => '{C02XK1ABJG5H}');
SELECT mdm.enqueue(mdm.select_enrollments(labels => '{design}'), '{"RequestType": "DeviceInformation", "Queries": ["OSVersion"]}'::jsonb) IS NOT NULL AS queued;
SELECT enrollment_id, request_type, state FROM mdm.view_queue WHERE request_type = 'DeviceInformation' AND state = 'pending';
SELECT mdm.push(mdm.select_enrollments(serials => '{C02XK1ABJG5H}', channel => 'all')) AS pushes;
SELECT try($$SELECT mdm.select_enrollments(serials => '{C02XK1ABJG5H,NOPE1,NOPE2}')$$) AS unknown_serial;
SELECT try($$SELECT mdm.select_enrollments(labels => '{desing}')$$) AS unknown_label;
SELECT try($$SELECT mdm.select_enrollments(users => '{nobody}')$$) AS unknown_user;
SELECT try($$SELECT mdm.select_enrollments(labels => '{empty}')$$) AS empty_label;
SELECT try($$SELECT mdm.select_enrollments()$$) AS nothing_asked;
SELECT try($$SELECT mdm.select_enrollments(serials => '{C02XK1ABJG5H}', channel => 'users')$$) AS bad_channel;

-- 5. Former quiet no-ops say what happened
-- a push to a channel whose token APNs invalidated
UPDATE mdm.nano_enrollments SET token_invalid_at = now(), token_invalid_reason = '410 Unregistered'
WHERE id = :'mac';
SELECT mdm.push(ARRAY[:'mac', :'mac2']) AS pushes;
-- an outcome reported for a job that has already failed
SELECT id AS failed_job FROM mdm.push_jobs WHERE enrollment_id = :'mac2' AND state = 'failed' \gset
UPDATE mdm.push_jobs SET claimed_at = now() WHERE id = :failed_job;
SELECT mdm.push_result(:failed_job, 200) AS state;
-- an assignment to a profile that was never uploaded
INSERT INTO mdm.profile_assignments (label_id, payload_identifier)
SELECT id, 'com.example.no-such-profile' FROM mdm.labels WHERE name = 'design';
-- an enrollment profile without https, or whose identity is not in it
\! sh test/push_certs.sh results/console_push_certs
\set cert `cat results/console_push_certs/mdm.crt`
\set key `cat results/console_push_certs/mdm.key`
SELECT mdm.upload_push_cert(:'cert', :'key') IS NOT NULL AS uploaded;
SELECT try($$SELECT mdm.enrollment_profile('mdm.example.com', 'a1b2c3d4-0000-4000-8000-000000000001')$$) AS no_https;
SELECT try($$SELECT mdm.enrollment_profile('https://mdm.example.com/mdm', 'a1b2c3d4-0000-4000-8000-000000000001', checkin_url => 'http://mdm.example.com/checkin')$$) AS checkin_no_https;
SELECT try($$SELECT mdm.enrollment_profile('https://mdm.example.com/mdm', 'a1b2c3d4-0000-4000-8000-000000000001')$$) AS no_identity_payload;
-- the same lower-case UUID in both: the payload's is upper-cased too
SELECT p->>'PayloadType' AS payload_type,
       CASE WHEN p->>'PayloadType' = 'com.apple.mdm' THEN '(random)' ELSE p->>'PayloadUUID' END AS payload_uuid,
       p->>'IdentityCertificateUUID' AS identity_uuid
FROM jsonb_array_elements(mdm.plist_to_jsonb(mdm.enrollment_profile('https://mdm.example.com/mdm',
         'a1b2c3d4-0000-4000-8000-000000000001',
         extra_payloads => '[{"PayloadType": "com.apple.security.scep", "PayloadVersion": 1,
                              "PayloadIdentifier": "com.example.mdm.scep",
                              "PayloadUUID": "a1b2c3d4-0000-4000-8000-000000000001"}]'))
                          -> 'PayloadContent') p;
-- a device that enrolls again with a new identity, under trust on first
-- use: the hint leads to the trust anchor
INSERT INTO mdm.device_identities (device_id, cert_sha256, cert_der, not_after, bound_via)
VALUES (:'mac2', '\x01', '\x01', now() + interval '1 year', 'first use');
SELECT mdm_internal._check_identity(:'mac2', true, '\x02', '\x02', now() + interval '1 year');

-- errors of the device endpoints carry no helper chain at all
SELECT mdm.connect(convert_to('<plist><dict><key>UDID</key><string>NOT-ENROLLED</string>'
                              '<key>Status</key><string>Idle</string></dict></plist>', 'UTF8'));
-- the plist form of enqueue names the call
SELECT mdm.enqueue(ARRAY['no-such-enrollment'], mdm.jsonb_to_plist('{"RequestType": "DeviceInformation"}'));
-- where a plist is required, empty input is still an error
SELECT mdm.enqueue(ARRAY[:'mac'], ''::bytea);
SELECT mdm.plist_to_jsonb(''::bytea) IS NULL AS empty_is_null;

-- the health check after all this, and who may read what
SELECT * FROM mdm.health_check();
SET ROLE mdm_reader;
SELECT count(*) > 0 AS reader_sees_devices FROM mdm.view_devices;
SELECT count(*) > 0 AS reader_sees_pushes FROM mdm.view_pushes;
SELECT mdm.select_enrollments(serials => '{C02ZZ9XYMD6T}') AS reader_selects;
RESET ROLE;
SET ROLE mdm_frontend;
SELECT try('SELECT count(*) FROM mdm.view_enrollments') AS frontend_reads_no_view;
SELECT try('SELECT * FROM mdm.health_check()') AS frontend_no_health_check;
RESET ROLE;

-- the derived rows are whole after every path above (no foreign keys: schema/30_queue.sql)
SELECT integrity() AS broken;
