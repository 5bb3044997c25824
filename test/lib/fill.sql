-- Fills every data table of mdm_user through its entry points, as a fleet
-- would: check-ins of the vectors in test/vectors (with a client certificate:
-- identity bindings), push certificates, enqueues and their push jobs,
-- claimed and reported pushes, command reports (acknowledged, NotNow, error,
-- unknown command), profiles with bindings, labels, IdP groups, enrollment
-- values, trust anchors, inventory, webhook events and a maintenance run.
-- Used by test/dump_restore.sh and test/upgrade/run; tools/freeze-release
-- freezes a copy beside each released install script, so that the release
-- is filled with what it understood.  Run from the repository root in a
-- database where CREATE EXTENSION mdm_user was done, with
--   psql -v ON_ERROR_STOP=1 -v certdir=DIR (a scratch directory)
\set QUIET on
\set made `sh test/push_certs.sh :certdir/push && sh test/identity_certs.sh :certdir/identity && echo yes`
\set push_cert `cat :certdir/push/mdm.crt`
\set push_key `cat :certdir/push/mdm.key`
\set mac_pem `cat :certdir/identity/mac.crt`
SET mdm.require_identity = off;
SET mdm.events = on;
CREATE TEMP TABLE v (name text, b64 text);
\copy v from program 'cd test/vectors && for f in checkin/* connect/* profiles/*; do printf "%s\t%s\n" "$f" "$(base64 -w0 "$f")"; done'
CREATE FUNCTION pg_temp.v(n text) RETURNS bytea LANGUAGE sql AS $$ SELECT decode(b64, 'base64') FROM v WHERE name = n $$;
CREATE FUNCTION pg_temp.report(udid text, uuid text, status text, extra text DEFAULT '') RETURNS int
LANGUAGE sql AS $$
    SELECT (mdm.connect(convert_to(format('<plist><dict><key>UDID</key><string>%s</string>'
        '<key>Status</key><string>%s</string><key>CommandUUID</key><string>%s</string>%s</dict></plist>',
        udid, status, uuid, extra), 'UTF8'))).status
$$;

-- the seed's Mac enrolls with its certificate (an identity binding), its user,
-- the second Mac, a User Enrollment and a Shared iPad
SELECT (mdm.checkin(pg_temp.v('checkin/01-authenticate.plist'), convert_to(:'mac_pem', 'UTF8'))).status;
SELECT mdm.checkin(pg_temp.v(name)) FROM v
WHERE name ~ '^checkin/(0[2-9]|10|2|3|4)' AND name !~ 'bplist' ORDER BY name;
SELECT mdm.upload_push_cert(:'push_cert', :'push_key');

-- commands: enqueued (push jobs), delivered, answered, NotNow, Error, unknown
SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'],
                   '{"RequestType": "ProfileList"}'::jsonb) AS profilelist \gset
SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'],
                   '{"RequestType": "DeviceInformation", "Queries": ["OSVersion"]}'::jsonb) AS devinfo \gset
SELECT mdm.enqueue(ARRAY['5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'],
                   '{"RequestType": "SecurityInfo"}'::jsonb) AS secinfo \gset
SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'],
                   '{"RequestType": "ProfileList"}'::jsonb);
SELECT (mdm.connect(pg_temp.v('connect/01-idle-device.plist'))).status;
SELECT pg_temp.report('980E3D0B-5A28-537C-B7CB-7AFD15AFB933', :'profilelist', 'Acknowledged',
    '<key>ProfileList</key><array/>');
SELECT pg_temp.report('980E3D0B-5A28-537C-B7CB-7AFD15AFB933', :'devinfo', 'Acknowledged',
    '<key>QueryResponses</key><dict><key>OSVersion</key><string>14.5</string></dict>');
SELECT pg_temp.report('5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B', :'secinfo', 'NotNow');
SELECT pg_temp.report('5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B', :'secinfo', 'Error',
    '<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>12021</integer></dict></array>');
SELECT pg_temp.report('980E3D0B-5A28-537C-B7CB-7AFD15AFB933', '0E3B1F6A-0000-4000-8000-000000000001', 'Acknowledged');

-- pushes: one claimed and answered, one claimed and refused by APNs
SELECT array_agg(job_id ORDER BY job_id) AS jobs FROM mdm.claim_pushes(2) \gset
SELECT mdm.push_result((:'jobs'::bigint[])[1], 200, NULL, 'B1D5B2A0-0000-4000-8000-000000000001');
SELECT mdm.push_result((:'jobs'::bigint[])[2], 410, 'Unregistered', NULL)
WHERE cardinality(:'jobs'::bigint[]) > 1;
SELECT mdm.push(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933']);

-- profiles, a user-bound profile, labels, IdP groups, assignments
SELECT mdm.upload_profile(pg_temp.v(name)) FROM v WHERE name ~ '^profiles/0[1258]' ORDER BY name;
SELECT mdm.install_profile(1, ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1']);
SELECT mdm.bind_profile(1, '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1');
INSERT INTO mdm.labels (name) VALUES ('all Macs'), ('engineering');
INSERT INTO mdm.label_enrollments SELECT l.id, d.id, d.id FROM mdm.nano_devices d, mdm.labels l WHERE l.name = 'all Macs';
INSERT INTO mdm.profile_assignments VALUES (1, 'com.example.filevault', 'include');
INSERT INTO mdm.idp_groups SELECT 'eng', id, 'Engineering' FROM mdm.labels WHERE name = 'engineering';
INSERT INTO mdm.idp_group_members VALUES ('eng', 'victor@example.com');
INSERT INTO mdm.label_idp_users SELECT id, 'victor@example.com' FROM mdm.labels WHERE name = 'all Macs';
INSERT INTO mdm.idp_user_enrollments VALUES ('980E3D0B-5A28-537C-B7CB-7AFD15AFB933',
    '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1', 'victor@example.com');
INSERT INTO mdm.idp_user_logins VALUES ('980E3D0B-5A28-537C-B7CB-7AFD15AFB933', 'victor', 'victor@example.com');
INSERT INTO mdm.enrollment_values (device_id, enrollment_id, name, value) VALUES
    ('980E3D0B-5A28-537C-B7CB-7AFD15AFB933', '980E3D0B-5A28-537C-B7CB-7AFD15AFB933', 'asset_tag', 'A-1001');
SELECT mdm.reconcile();
INSERT INTO mdm.trust_anchors (purpose, cert_pem) VALUES ('device_identity', :'mac_pem');
SELECT mdm.run_maintenance();
-- webhook events: one claimed and delivered
SELECT mdm.event_result(device_id, id, attempt, 200) FROM mdm.claim_events(1);
-- a push fan-out not yet expanded by a claim (a low threshold for two targets)
SET mdm.push_fanout_threshold = 1;
SELECT mdm.push(ARRAY['5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B',
                      '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1']);
-- a large fan-out's targets still waiting as a chunk (push => false: no poll
-- or claim has written their queue items)
SELECT mdm.enqueue(ARRAY['5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B',
                         '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'],
                   '{"RequestType": "ProfileList"}'::jsonb, push => false) IS NOT NULL AS fanned_out;
RESET mdm.push_fanout_threshold;
