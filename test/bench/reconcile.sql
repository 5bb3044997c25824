-- Reconcile benchmark: :devices Macs, each with a user channel (2 x :devices
-- enrollments), 10 profiles (5 User-scoped, 5 System-scoped), 100 labels.
-- Every device is in 2 labels; each profile is assigned to 10 labels.
-- Prints the time of a first reconcile (everything to queue), a second one
-- (nothing to do), and one after a new version of one profile.
\set QUIET on
\pset footer off
SET mdm.require_identity = off;
\timing off

INSERT INTO mdm.nano_devices (id, serial_number, model, authenticate, authenticate_at)
SELECT 'BENCH-' || g, 'SN' || g, 'MacBookPro18,3', '\x', now() FROM generate_series(1, :devices) g;
INSERT INTO mdm.nano_users (device_id, id, user_short_name, user_long_name)
SELECT 'BENCH-' || g, 'BENCH-' || g || ':USER-' || g, 'user' || g, 'User ' || g FROM generate_series(1, :devices) g;
INSERT INTO mdm.nano_enrollments (device_id, id, user_id, type, topic, push_magic, token_hex,
                                  token_update, token_update_at, last_seen_at)
SELECT 'BENCH-' || g, 'BENCH-' || g, NULL, 'Device', 'com.apple.mgmt.External.bench', 'm' || g,
       md5('d' || g), '\x'::bytea, now(), now() FROM generate_series(1, :devices) g
UNION ALL
SELECT 'BENCH-' || g, 'BENCH-' || g || ':USER-' || g, 'BENCH-' || g || ':USER-' || g, 'User',
       'com.apple.mgmt.External.bench', 'u' || g, md5('u' || g), '\x', now(), now()
FROM generate_series(1, :devices) g;

INSERT INTO mdm.labels (name) SELECT 'label ' || l FROM generate_series(1, 100) l;
INSERT INTO mdm.label_enrollments (label_id, device_id, enrollment_id)
SELECT DISTINCT l.id, 'BENCH-' || g, 'BENCH-' || g
FROM generate_series(1, :devices) g
CROSS JOIN LATERAL (VALUES (1 + g % 100), (1 + (g * 7 + 3) % 100)) x(k)
JOIN mdm.labels l ON l.name = 'label ' || x.k;

-- 10 profiles: a Dock (System) and a certificate (User) payload, 5 of each
SELECT mdm.upload_profile(convert_to(format(
    '<plist><dict><key>PayloadType</key><string>Configuration</string>'
    '<key>PayloadIdentifier</key><string>com.example.bench.%s</string>'
    '<key>PayloadUUID</key><string>%s</string><key>PayloadVersion</key><integer>1</integer>'
    '<key>PayloadScope</key><string>%s</string>'
    '<key>PayloadContent</key><array><dict><key>PayloadType</key><string>%s</string>'
    '<key>PayloadIdentifier</key><string>com.example.bench.%s.p</string><key>PayloadUUID</key><string>%s</string>'
    '<key>PayloadVersion</key><integer>1</integer></dict></array></dict></plist>',
    p, gen_random_uuid(), CASE WHEN p <= 5 THEN 'User' ELSE 'System' END,
    CASE WHEN p <= 5 THEN 'com.apple.security.pkcs12' ELSE 'com.apple.dock' END, p, gen_random_uuid()), 'UTF8'))
FROM generate_series(1, 10) p \g /dev/null
INSERT INTO mdm.profile_assignments (label_id, payload_identifier)
SELECT l.id, 'com.example.bench.' || p
FROM generate_series(1, 10) p CROSS JOIN generate_series(0, 9) k
JOIN mdm.labels l ON l.name = 'label ' || (1 + (p * 10 + k) % 100)
ON CONFLICT DO NOTHING;
ANALYZE;

\echo 'reconcile benchmark:' :devices 'Macs with a user channel each'
SELECT (SELECT count(*) FROM mdm.nano_enrollments) AS enrollments,
       (SELECT count(*) FROM mdm.profiles) AS profiles,
       (SELECT count(*) FROM mdm.labels) AS labels,
       (SELECT count(*) FROM mdm.profile_assignments) AS assignments;

SELECT clock_timestamp() AS t0 \gset
SELECT mdm.reconcile() AS first_reconcile \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 2) AS seconds \gset
\echo 'reconcile, first run:' :seconds 's' :first_reconcile

SELECT clock_timestamp() AS t0 \gset
SELECT mdm.reconcile() AS second_reconcile \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 2) AS seconds \gset
\echo 'reconcile, second run (nothing to do):' :seconds 's' :second_reconcile

SELECT mdm.upload_profile(convert_to(replace(convert_from(mobileconfig, 'UTF8'), '<integer>1</integer></dict></array>',
                                             '<integer>2</integer></dict></array>'), 'UTF8')) > 0 AS new_version
FROM mdm.profiles WHERE payload_identifier = 'com.example.bench.1' \g /dev/null
SELECT clock_timestamp() AS t0 \gset
SELECT mdm.reconcile() AS third_reconcile \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 2) AS seconds \gset
\echo 'reconcile after a new version of one profile:' :seconds 's' :third_reconcile
SELECT count(*) AS queue_rows, count(DISTINCT command_uuid) AS commands FROM mdm.nano_enrollment_queue;
