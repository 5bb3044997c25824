--
-- Configuration profiles: upload (XML, binary, CMS-signed) with PayloadScope
-- and every payload checked against its channel; delivery to the right
-- channel only; per-user variables; user-bound profiles guarded on every
-- path; labels, IdP groups and reconcile; per-enrollment status.
--
SELECT reset_mdm();
\! sh test/profile_files.sh results/profile_files
\set signer_pem `cat results/profile_files/signer.pem`
\set other_ca `cat results/profile_files/other-ca.pem`
\set tampered `cat results/profile_files/tampered.der.b64`
\set vars_signed `cat results/profile_files/vars-signed.der.b64`
\set tls_ca `cat results/profile_files/tls-ca.pem`
\set tls_signed `cat results/profile_files/tls-signed.der.b64`
\set mac '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
\set victor '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'
\set mac2 '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'
\set ada '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B:7D41E2B0-9A8C-4B6D-8E1F-2A3B4C5D6E7F'

SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist', 'checkin/05-tokenupdate-user.plist',
    'checkin/20-authenticate-mac2.plist', 'checkin/21-tokenupdate-mac2-device.plist',
    'checkin/22-tokenupdate-mac2-user.plist']) n;

-- Upload: every vector of profiles/ accepted or refused with a clear error
SELECT name, try(format('SELECT mdm.upload_profile(v(%L))', name)) AS result
FROM vectors WHERE name ~ '^profiles/' ORDER BY name;
SELECT id, payload_identifier, version, scope, scope_from, signed, signer_subject, display_name
FROM mdm.profiles ORDER BY id;
SELECT p.payload_identifier, pp.payload_type, pp.known_to_apple_schema
FROM mdm.profile_payloads pp JOIN mdm.profiles p ON p.id = pp.profile_id
WHERE p.version = 1 ORDER BY 1, 2;
-- the same bytes again return the existing version
SELECT mdm.upload_profile(v('profiles/02-system-scoped-filevault.mobileconfig')) =
       (SELECT id FROM mdm.profiles WHERE payload_identifier = 'com.example.filevault') AS same_version;
-- the binary plist 01 holds the same profile as the XML 01
SELECT a.content = b.content AS binary_equals_xml
FROM mdm.profiles a, mdm.profiles b
WHERE a.sha256 = sha256(v('profiles/01-user-scoped-certificate.mobileconfig'))
  AND b.sha256 = sha256(v('profiles/01-user-scoped-certificate.bplist.mobileconfig'));
-- a mismatched profile can be stored on purpose
SELECT mdm.upload_profile(v('profiles/03-user-scope-with-device-only-payload.mobileconfig'), true) IS NOT NULL AS forced;
SELECT channel_mismatch_allowed FROM mdm.profiles WHERE payload_identifier = 'com.example.bad-mix';
-- no PayloadScope: the setting decides, at upload
SET mdm.default_payload_scope = 'User';
SELECT mdm.upload_profile(convert_to(replace(convert_from(v('profiles/04-no-payloadscope-dock.mobileconfig'), 'UTF8'),
                                             'com.example.dock<', 'com.example.user-dock<'), 'UTF8')) AS user_dock \gset
SELECT payload_identifier, scope, scope_from FROM mdm.profiles WHERE id = :user_dock;
RESET mdm.default_payload_scope;
-- a custom payload type is accepted and stated
SELECT mdm.upload_profile(convert_to(replace(convert_from(v('profiles/04-no-payloadscope-dock.mobileconfig'), 'UTF8'),
                                             '<string>com.apple.dock</string>', '<string>com.example.custom-prefs</string>'), 'UTF8')) IS NOT NULL AS custom;

-- Signed profiles: the signature must match the content
SELECT try(format('SELECT mdm.upload_profile(decode(%L, ''base64''))', :'tampered')) AS tampered;
-- with trust anchors configured, the signer must chain to one
INSERT INTO mdm.trust_anchors (purpose, cert_pem) VALUES ('profile_signer', :'other_ca');
SELECT try($$SELECT mdm_internal._read_profile(v('profiles/08-user-scoped-certificate.signed.mobileconfig'))$$) AS untrusted;
INSERT INTO mdm.trust_anchors (purpose, cert_pem) VALUES ('profile_signer', :'signer_pem');
SELECT (mdm_internal._read_profile(v('profiles/08-user-scoped-certificate.signed.mobileconfig'))).signer_subject AS trusted;
-- whatever the signer's extended key usage: a TLS server certificate
-- (serverAuth) issued by an anchor signs profiles too
SELECT try(format('SELECT mdm_internal._read_profile(decode(%L, ''base64''))', :'tls_signed')) AS server_auth_signer_untrusted;
INSERT INTO mdm.trust_anchors (purpose, cert_pem) VALUES ('profile_signer', :'tls_ca');
SELECT (mdm_internal._read_profile(decode(:'tls_signed', 'base64'))).signer_subject AS server_auth_signer;
DELETE FROM mdm.trust_anchors;
-- a signed profile cannot carry variables
SELECT try(format('SELECT mdm.upload_profile(decode(%L, ''base64''))', :'vars_signed')) AS signed_with_variables;
SELECT try($$SELECT mdm.upload_profile(convert_to('<plist><dict><key>PayloadType</key><string>Configuration</string><key>PayloadIdentifier</key><string>x</string><key>PayloadUUID</key><string>u</string><key>PayloadContent</key><array/><key>PayloadDisplayName</key><string>${MDM_PASSWORD}</string></dict></plist>', 'UTF8'))$$) AS unknown_variable;
SELECT try($$SELECT mdm.upload_profile(convert_to('<plist><dict><key>PayloadType</key><string>Configuration</string><key>PayloadIdentifier</key><string>x</string><key>PayloadUUID</key><string>u</string></dict></plist>', 'UTF8'))$$) AS no_content;
-- variables stand in string values only: not in the fields that identify
-- the profile and its payloads and decide their channel (top level and
-- every payload), nor in dictionary keys
CREATE FUNCTION var_profile(place text, field text, value jsonb) RETURNS bytea LANGUAGE sql AS $$
    SELECT mdm.jsonb_to_plist(CASE place
        WHEN 'top' THEN base || jsonb_build_object(field, value)
        ELSE jsonb_set(base, '{PayloadContent,0}', (base #> '{PayloadContent,0}') || jsonb_build_object(field, value)) END)
    FROM (SELECT '{"PayloadType": "Configuration", "PayloadIdentifier": "com.example.vars", "PayloadScope": "User",
                   "PayloadUUID": "8B5A4F31-0000-4000-8000-000000000001", "PayloadVersion": 1,
                   "PayloadContent": [{"PayloadType": "com.apple.security.pkcs12", "PayloadIdentifier": "com.example.vars.p12",
                                       "PayloadUUID": "8B5A4F31-0000-4000-8000-000000000002", "PayloadVersion": 1,
                                       "Password": "${MDM_VALUE_p12}", "PayloadContent": {"$data": "AAEC"}}]}'::jsonb) b(base)
$$;
SELECT place, field, try(format('SELECT mdm.upload_profile(var_profile(%L, %L, %L))', place, field, value)) AS result
FROM (VALUES ('top', 'PayloadIdentifier', '"com.example.cert.${MDM_UDID}"'::jsonb),
             ('top', 'PayloadUUID', '"${MDM_VALUE_uuid}"'),
             ('top', 'PayloadType', '"${MDM_VALUE_t}"'),
             ('top', 'PayloadScope', '"${MDM_VALUE_scope}"'),
             ('top', 'PayloadVersion', '"${MDM_VALUE_v}"'),
             ('top', 'Key-${MDM_USER_SHORT_NAME}', '"x"'),
             ('payload', 'PayloadIdentifier', '"com.example.vars.${MDM_USER_ID}"'),
             ('payload', 'PayloadUUID', '"${MDM_VALUE_uuid}"'),
             ('payload', 'PayloadType', '"${MDM_VALUE_t}"'),
             ('payload', 'PayloadScope', '"${MDM_VALUE_scope}"'),
             ('payload', 'PayloadVersion', '"${MDM_VALUE_v}"'),
             ('payload', 'Settings', '{"${MDM_UDID}": true}'),
             ('payload', 'PayloadCertificateFileName', '"${MDM_USER_SHORT_NAME}.p12"')) AS t(place, field, value);
SELECT count(*) AS accepted_with_variables FROM mdm.profiles WHERE payload_identifier = 'com.example.vars';

SELECT id AS cert_v1 FROM mdm.profiles WHERE payload_identifier = 'com.example.user-cert' AND version = 1 \gset
SELECT id AS signed_cert FROM mdm.profiles WHERE payload_identifier = 'com.example.user-cert' AND signed \gset
SELECT id AS filevault FROM mdm.profiles WHERE payload_identifier = 'com.example.filevault' \gset
SELECT id AS wifi FROM mdm.profiles WHERE payload_identifier = 'com.example.user-wifi' \gset
SELECT id AS dock FROM mdm.profiles WHERE payload_identifier = 'com.example.dock' AND version = 1 \gset

-- Delivery: User-scoped to user channels, System-scoped to device channels,
-- the wrong channel is an error and nothing is queued
SELECT count(*) AS commands_before FROM mdm.nano_commands \gset
SELECT try(format('SELECT mdm.install_profile(%s, ARRAY[%L, %L])', :cert_v1, :'victor', :'mac')) AS user_profile_to_device;
SELECT try(format('SELECT mdm.install_profile(%s, ARRAY[%L])', :filevault, :'victor')) AS system_profile_to_user;
SELECT try('SELECT mdm.install_profile(999999, ARRAY[''x''])') AS no_such_profile;
SELECT count(*) = :commands_before AS nothing_queued FROM mdm.nano_commands;
SELECT enrollment_id = :'victor' AS to_victor FROM mdm.install_profile(:signed_cert, ARRAY[:'victor']);
SELECT enrollment_id FROM mdm.install_profile(:filevault, ARRAY[:'mac', :'mac2']) ORDER BY 1;
SELECT enrollment_id FROM mdm.install_profile(:wifi, ARRAY[:'ada']);

-- The poll returns InstallProfile with exactly the uploaded (signed) bytes,
-- encoded once as plist data; the command carries no UserID
SELECT mdm.plist_to_jsonb(body) #>> '{Command,RequestType}' AS request_type,
       mdm.plist_data(mdm.plist_to_jsonb(body) #> '{Command,Payload}')
           = v('profiles/08-user-scoped-certificate.signed.mobileconfig') AS exact_bytes,
       position('UserID' in convert_from(body, 'UTF8')) = 0 AS no_user_id
FROM mdm.connect(v('connect/02-idle-user-seed.plist'));
SELECT command_uuid AS victor_cmd FROM mdm.profile_deliveries WHERE enrollment_id = :'victor' \gset
SELECT handed FROM (SELECT CASE WHEN length(body) = 0 THEN 'empty' ELSE 'more' END AS handed
    FROM mdm.connect(convert_to(replace(convert_from(v('connect/03-acknowledged-installprofile-user.plist'), 'UTF8'),
                                        (mdm.plist_to_jsonb(v('connect/03-acknowledged-installprofile-user.plist')) ->> 'CommandUUID'),
                                        :'victor_cmd'), 'UTF8'))) r;
-- Error with an ErrorChain on the second Mac
SELECT command_uuid AS fv_mac2 FROM mdm.profile_deliveries WHERE enrollment_id = :'mac2' \gset
SELECT (mdm.connect(convert_to(format('<plist><dict><key>UDID</key><string>%s</string><key>Status</key><string>Idle</string></dict></plist>', :'mac2'), 'UTF8'))).status;
SELECT (mdm.connect(convert_to(replace(replace(convert_from(v('connect/05-error-device.plist'), 'UTF8'),
        '2B0C5E4A-8D6F-4A3B-9C9E-7F5D3A1B9C4E', :'fv_mac2'), :'mac', :'mac2'), 'UTF8'))).status;
SELECT enrollment_id, payload_identifier, version, status, error_chain #>> '{0,ErrorDomain}' AS error_domain
FROM mdm.view_profile_status ORDER BY enrollment_id, payload_identifier;

-- RemoveProfile carries the identifier; the acknowledgement makes it removed
SELECT enrollment_id FROM mdm.remove_profile(:signed_cert, ARRAY[:'victor']);
SELECT c.command FROM mdm.nano_commands c JOIN mdm.profile_deliveries d USING (command_uuid)
WHERE d.enrollment_id = :'victor';
SELECT status FROM mdm.view_profile_status WHERE enrollment_id = :'victor';
SELECT command_uuid AS rm_cmd FROM mdm.profile_deliveries WHERE enrollment_id = :'victor' \gset
SELECT (mdm.connect(convert_to(replace(convert_from(v('connect/03-acknowledged-installprofile-user.plist'), 'UTF8'),
        (mdm.plist_to_jsonb(v('connect/03-acknowledged-installprofile-user.plist')) ->> 'CommandUUID'), :'rm_cmd'), 'UTF8'))).status;
SELECT status FROM mdm.view_profile_status WHERE enrollment_id = :'victor';

-- Per-user content: variables substituted for each target at enqueue
SELECT mdm.upload_profile(convert_to(replace(replace(replace(convert_from(v('profiles/01-user-scoped-certificate.mobileconfig'), 'UTF8'),
           '<string>com.example.user-cert</string>', '<string>com.example.templated-cert</string>'),
           '<string>victor.p12</string>', '<string>${MDM_USER_SHORT_NAME} (${MDM_USER_LONG_NAME}) on ${MDM_SERIAL_NUMBER}.p12</string>'),
           '<string>not-a-real-password</string>', '<string>${MDM_VALUE_challenge}</string>'), 'UTF8')) AS templated \gset
SELECT variables FROM mdm.profiles WHERE id = :templated;
SELECT try(format('SELECT mdm.install_profile(%s, ARRAY[%L])', :templated, :'victor')) AS missing_value;
INSERT INTO mdm.enrollment_values VALUES (:'mac', :'victor', 'challenge', 'c-victor <&>'),
                                         (:'mac2', :'ada', 'challenge', 'c-ada');
SELECT count(DISTINCT command_uuid) AS commands FROM mdm.install_profile(:templated, ARRAY[:'victor', :'ada']);
SELECT d.enrollment_id,
       x.p #>> '{PayloadContent,0,PayloadCertificateFileName}' AS file_name,
       x.p #>> '{PayloadContent,0,Password}' AS password
FROM mdm.profile_deliveries d JOIN mdm.nano_commands c USING (command_uuid),
     LATERAL (SELECT mdm.plist_to_jsonb(mdm.plist_data(c.command->'Payload')) AS p) x
WHERE d.profile_id = :templated ORDER BY 1;
-- device-reported values cannot multiply a profile past mdm.max_message_bytes
CREATE TEMP TABLE saved_user AS SELECT * FROM mdm.nano_users WHERE id = :'victor';
UPDATE mdm.nano_users SET user_long_name = repeat('L', 70000) WHERE id = :'victor';
SET mdm.max_message_bytes = '64kB';
SELECT try(format('SELECT mdm.install_profile(%s, ARRAY[%L])', :templated, :'victor')) AS too_large;
RESET mdm.max_message_bytes;
UPDATE mdm.nano_users u SET user_long_name = s.user_long_name FROM saved_user s WHERE u.id = s.id;
DROP TABLE saved_user;

-- User-bound profiles: Victor's certificate can reach Victor only, whatever the path
SELECT mdm.bind_profile(:cert_v1, :'victor');
SELECT try(format('SELECT mdm.bind_profile(%s, %L)', :cert_v1, :'ada')) AS bind_elsewhere;
SELECT try(format('SELECT mdm.bind_profile(%s, %L)', :filevault, :'mac')) AS bind_device_channel;
SELECT count(*) AS commands_before FROM mdm.nano_commands \gset
-- 1. install_profile, any version of the identifier
SELECT try(format('SELECT mdm.install_profile(%s, ARRAY[%L])', :cert_v1, :'ada')) AS install_profile;
SELECT try(format('SELECT mdm.install_profile(%s, ARRAY[%L, %L])', :signed_cert, :'victor', :'ada')) AS other_version;
-- 2. a direct enqueue of an InstallProfile with the profile's bytes (XML, binary or signed)
SELECT try(format('SELECT mdm.enqueue(ARRAY[%L], jsonb_build_object(''RequestType'', ''InstallProfile'', ''Payload'', mdm.plist_data_value(v(%L))))',
                  :'ada', n)) AS direct_enqueue
FROM unnest(ARRAY['profiles/01-user-scoped-certificate.mobileconfig', 'profiles/01-user-scoped-certificate.bplist.mobileconfig',
                  'profiles/08-user-scoped-certificate.signed.mobileconfig']) n;
SELECT try(format('SELECT mdm.enqueue(ARRAY[%L], mdm.jsonb_to_plist(jsonb_build_object(''RequestType'', ''InstallProfile'', ''Payload'', mdm.plist_data_value(v(%L)))))',
                  :'ada', 'profiles/01-user-scoped-certificate.mobileconfig')) AS direct_enqueue_plist;
SELECT count(*) = :commands_before AS nothing_queued FROM mdm.nano_commands;
-- 3. labels and reconcile: assigned to Ada's label, it still goes to Victor only
INSERT INTO mdm.labels (name) VALUES ('everyone') RETURNING id AS everyone \gset
INSERT INTO mdm.label_enrollments (label_id, device_id, enrollment_id)
VALUES (:everyone, :'mac', :'mac'), (:everyone, :'mac2', :'mac2');
INSERT INTO mdm.profile_assignments VALUES (:everyone, 'com.example.user-cert', 'include');
SELECT mdm.reconcile();
SELECT enrollment_id, status FROM mdm.profile_deliveries WHERE payload_identifier = 'com.example.user-cert' ORDER BY 1;
-- 4. and the queue itself refuses it, even to a superuser writing rows
SELECT try(format($$INSERT INTO mdm.nano_enrollment_queue (device_id, id, command_uuid)
                    SELECT %L, %L, command_uuid FROM mdm.nano_commands WHERE payload_identifier = 'com.example.user-cert' LIMIT 1$$,
                  :'mac2', :'ada')) AS queue_insert;
SELECT try(format($$UPDATE mdm.nano_enrollment_queue SET device_id = %L, id = %L
                    WHERE active AND command_uuid IN (SELECT command_uuid FROM mdm.nano_commands WHERE payload_identifier = 'com.example.user-cert')$$,
                  :'mac2', :'ada')) AS queue_update;
-- 5. nor can a queued command be rewritten into it: the plist the device
-- receives must be made from the command, and a changed InstallProfile is
-- checked again against its queue
SELECT mdm.enqueue(ARRAY[:'ada'], '{"CommandUUID": "0D0D0D0D-0000-4000-8000-00000000ADA1", "Command": {"RequestType": "ProfileList"}}'::jsonb) AS ada_cmd \gset
SELECT jsonb_build_object('RequestType', 'InstallProfile',
                          'Payload', mdm.plist_data_value(v('profiles/01-user-scoped-certificate.mobileconfig'))) AS cert_cmd \gset
SELECT try(format($$UPDATE mdm.nano_commands SET plist = mdm.jsonb_to_plist(jsonb_build_object('CommandUUID', upper(%L), 'Command', %L::jsonb))
                    WHERE command_uuid = %L$$, :'ada_cmd', :'cert_cmd', :'ada_cmd')) AS plist_rewritten;
SELECT try(format($$UPDATE mdm.nano_commands SET request_type = 'InstallProfile', command = %L
                    WHERE command_uuid = %L$$, :'cert_cmd', :'ada_cmd')) AS command_rewritten;
SELECT try(format($$UPDATE mdm.nano_commands SET request_type = 'InstallProfile', command = %L,
                        plist = mdm.jsonb_to_plist(jsonb_build_object('CommandUUID', upper(%L), 'Command', %L::jsonb))
                    WHERE command_uuid = %L$$, :'cert_cmd', :'ada_cmd', :'cert_cmd', :'ada_cmd')) AS both_rewritten;
SELECT jsonb_build_object('RequestType', 'InstallProfile',
                          'Payload', mdm.plist_data_value(v('profiles/02-system-scoped-filevault.mobileconfig'))) AS fv_cmd \gset
SELECT try(format($$UPDATE mdm.nano_commands SET request_type = 'InstallProfile', command = %L,
                        plist = mdm.jsonb_to_plist(jsonb_build_object('CommandUUID', upper(%L), 'Command', %L::jsonb))
                    WHERE command_uuid = %L$$, :'fv_cmd', :'ada_cmd', :'fv_cmd', :'ada_cmd')) AS rewritten_to_other_scope;
SELECT request_type, payload_identifier FROM mdm.nano_commands WHERE command_uuid = :'ada_cmd';
-- the columns the checks read cannot be cleared by hand either: they are
-- derived again from the command
SELECT try($$UPDATE mdm.nano_commands SET payload_identifier = NULL, payload_scope = NULL
             WHERE payload_identifier = 'com.example.user-cert'$$) AS derived_columns_cleared;
SELECT count(*) FILTER (WHERE payload_identifier IS NULL) AS unidentified
FROM mdm.nano_commands WHERE request_type = 'InstallProfile';
-- an InstallProfile whose Payload is not a readable profile is refused
SELECT try(format('SELECT mdm.enqueue(ARRAY[%L], ''{"RequestType": "InstallProfile", "Payload": {"$data": "AAEC"}}''::jsonb)', :'ada')) AS unreadable_payload;

-- A raw InstallProfile through mdm.enqueue gets the checks of
-- install_profile: its scope against the channels, its payloads against
-- the scope (an uploaded version keeps its scope and allow_channel_mismatch)
CREATE FUNCTION enqueue_profile(target text, profile bytea) RETURNS text LANGUAGE sql AS $$
    SELECT try(format('SELECT mdm.enqueue(ARRAY[%L], jsonb_build_object(''RequestType'', ''InstallProfile'', ''Payload'', %L::jsonb))',
                      target, mdm.plist_data_value(profile)))
$$;
SELECT count(*) AS commands_before FROM mdm.nano_commands \gset
SELECT enqueue_profile(:'mac', v('profiles/05-user-scoped-wifi-and-cert.mobileconfig')) AS user_profile_to_device;
SELECT enqueue_profile(:'ada', v('profiles/02-system-scoped-filevault.mobileconfig')) AS system_profile_to_user;
SELECT enqueue_profile(:'mac', v('profiles/03-user-scope-with-device-only-payload.mobileconfig')) AS forced_user_profile_to_device;
SELECT enqueue_profile(:'ada', convert_to(replace(convert_from(v('profiles/03-user-scope-with-device-only-payload.mobileconfig'), 'UTF8'),
                                                  'com.example.bad-mix<', 'com.example.never-uploaded<'), 'UTF8')) AS device_payload_in_user_profile;
SELECT enqueue_profile(:'mac', v('profiles/06-bad-scope-value.mobileconfig')) AS bad_scope;
SELECT count(*) = :commands_before AS nothing_queued FROM mdm.nano_commands;
SELECT enqueue_profile(:'ada', v('profiles/05-user-scoped-wifi-and-cert.mobileconfig')) AS user_profile_to_user;
SELECT enqueue_profile(:'ada', v('profiles/03-user-scope-with-device-only-payload.mobileconfig')) AS forced_as_uploaded;
-- the scope set by mdm.default_payload_scope at upload, not today's
SELECT enqueue_profile(:'ada', convert_to(replace(convert_from(v('profiles/04-no-payloadscope-dock.mobileconfig'), 'UTF8'),
                                                  'com.example.dock<', 'com.example.user-dock<'), 'UTF8')) AS default_scope_at_upload;
SELECT c.payload_identifier, c.payload_scope
FROM mdm.nano_commands c JOIN mdm.nano_enrollment_queue q USING (command_uuid)
WHERE q.id = :'ada' AND c.request_type = 'InstallProfile'
  AND NOT EXISTS (SELECT FROM mdm.profile_deliveries d WHERE d.command_uuid = c.command_uuid)
ORDER BY 1;
SELECT mdm.unbind_profile('com.example.user-cert') AS unbound;
-- reconcile removes what labels delivered once the assignment goes
DELETE FROM mdm.profile_assignments WHERE payload_identifier = 'com.example.user-cert';
SELECT mdm.reconcile() AS assignment_gone;
SELECT enrollment_id, status FROM mdm.profile_deliveries WHERE payload_identifier = 'com.example.user-cert' ORDER BY 1;

-- IdP groups -> labels -> profiles
INSERT INTO mdm.labels (name) VALUES ('wifi users') RETURNING id AS wifi_label \gset
INSERT INTO mdm.idp_groups VALUES ('grp-wifi', :wifi_label, 'Wi-Fi users');
INSERT INTO mdm.profile_assignments VALUES (:wifi_label, 'com.example.user-wifi', 'include');
-- Victor is matched to his user channel by the short name he logs in with
INSERT INTO mdm.idp_user_logins VALUES (:'mac', 'victor-smith', 'idp-victor');
SELECT mdm.reconcile() AS nobody_in_the_group_yet;
-- Victor joins the group: reconcile installs on his user channel only
INSERT INTO mdm.idp_group_members VALUES ('grp-wifi', 'idp-victor');
SELECT mdm.reconcile() AS victor_joined;
SELECT enrollment_id, status FROM mdm.view_profile_status WHERE payload_identifier = 'com.example.user-wifi' ORDER BY 1;
SELECT mdm.reconcile() AS second_run_enqueues_nothing;
-- a System-scoped profile on the same label goes to no user channel
INSERT INTO mdm.profile_assignments VALUES (:wifi_label, 'com.example.dock', 'include');
SELECT mdm.reconcile() AS system_profile_on_user_label;
DELETE FROM mdm.profile_assignments WHERE payload_identifier = 'com.example.dock';
-- Victor leaves: reconcile removes
DELETE FROM mdm.idp_group_members WHERE idp_user_id = 'idp-victor';
SELECT mdm.reconcile() AS victor_left;
SELECT enrollment_id, status FROM mdm.view_profile_status WHERE payload_identifier = 'com.example.user-wifi' ORDER BY 1;
SELECT mdm.reconcile() AS nothing_more;
-- an exclusion wins over an inclusion
INSERT INTO mdm.idp_group_members VALUES ('grp-wifi', 'idp-victor');
INSERT INTO mdm.labels (name) VALUES ('no wifi') RETURNING id AS no_wifi \gset
INSERT INTO mdm.label_idp_users VALUES (:no_wifi, 'idp-victor');
INSERT INTO mdm.profile_assignments VALUES (:no_wifi, 'com.example.user-wifi', 'exclude');
SELECT mdm.reconcile() AS excluded;
DELETE FROM mdm.label_idp_users;
-- a new version replaces the installed one
SELECT mdm.reconcile() AS reinstalled;
SELECT mdm.upload_profile(convert_to(replace(convert_from(v('profiles/05-user-scoped-wifi-and-cert.mobileconfig'), 'UTF8'),
                                             'CorpNet', 'CorpNet-5G'), 'UTF8')) AS wifi_v2 \gset
SELECT mdm.reconcile() AS new_version;
SELECT enrollment_id, version, status FROM mdm.view_profile_status WHERE payload_identifier = 'com.example.user-wifi' ORDER BY 1;

-- A user who logs in later: her profile waits for her user channel, and is
-- queued in the same transaction as its first TokenUpdate
INSERT INTO mdm.idp_user_logins VALUES (:'mac2', 'grace', 'idp-grace');
INSERT INTO mdm.idp_group_members VALUES ('grp-wifi', 'idp-grace');
SELECT mdm.reconcile() AS nothing_to_queue_yet;
SELECT device_id, enrollment_id, user_short_name, version, status FROM mdm.view_profile_status
WHERE status IN ('waiting', 'pending', 'failed') ORDER BY 1, 2;
-- with a wait timeout, like Fleet's two hours, it shows as failed once the
-- device's latest enrollment and the assignment are that old
UPDATE mdm.nano_devices SET enrolled_at = now() - interval '3 days', authenticate_at = now() - interval '3 hours'
WHERE id = :'mac2';
SET mdm.user_channel_wait_timeout = '2h';
SELECT user_short_name, status AS assigned_just_now FROM mdm.view_profile_status WHERE user_short_name = 'grace';
UPDATE mdm.profile_assignments SET assigned_at = now() - interval '3 hours' WHERE label_id = :wifi_label;
SELECT user_short_name, status, error_chain #>> '{0,LocalizedDescription}' AS why FROM mdm.view_profile_status
WHERE user_short_name = 'grace';
UPDATE mdm.nano_devices SET authenticate_at = now() - interval '1 hour' WHERE id = :'mac2';
SELECT user_short_name, status AS enrolled_again_an_hour_ago FROM mdm.view_profile_status WHERE user_short_name = 'grace';
RESET mdm.user_channel_wait_timeout;
SELECT (mdm.checkin(convert_to(replace(replace(replace(replace(convert_from(v('checkin/22-tokenupdate-mac2-user.plist'), 'UTF8'),
        '7D41E2B0-9A8C-4B6D-8E1F-2A3B4C5D6E7F', '9F9F9F9F-0000-4000-8000-000000000042'),
        '<string>ada</string>', '<string>grace</string>'), 'Ada Lovelace', 'Grace Hopper'),
        '3C5E7A9B-1D2F-4B4C-8E6A-0F2B4D6E8A1C', 'GRACE-MAGIC'), 'UTF8'))).status AS grace_logs_in;
SELECT enrollment_id, version, status FROM mdm.view_profile_status
WHERE enrollment_id LIKE '%:9F9F9F9F-0000-4000-8000-000000000042';
SELECT count(*) AS push_jobs_for_grace FROM mdm.push_jobs WHERE enrollment_id LIKE '%:9F9F9F9F-0000-4000-8000-000000000042';

-- Reconcile never makes a check-in fail: a target for which a variable has
-- no value is recorded as failed, the others are queued, and the failed one
-- is tried again once the value exists
SELECT mdm.upload_profile(convert_to(replace(replace(convert_from(v('profiles/01-user-scoped-certificate.mobileconfig'), 'UTF8'),
           '<string>com.example.user-cert</string>', '<string>com.example.scep</string>'),
           '<string>not-a-real-password</string>', '<string>${MDM_VALUE_scep}</string>'), 'UTF8')) AS scep \gset
INSERT INTO mdm.profile_assignments VALUES (:wifi_label, 'com.example.scep', 'include');
INSERT INTO mdm.enrollment_values VALUES (:'mac', :'victor', 'scep', 'victor-challenge');
SELECT mdm.reconcile() AS one_renders_one_fails;
SELECT enrollment_id, status, error_chain #>> '{0,LocalizedDescription}' AS why
FROM mdm.view_profile_status WHERE payload_identifier = 'com.example.scep' ORDER BY 1;
INSERT INTO mdm.enrollment_values
SELECT :'mac2', id, 'scep', 'grace-challenge' FROM mdm.nano_users WHERE user_short_name = 'grace';
SELECT mdm.reconcile() AS retried;
SELECT enrollment_id, status FROM mdm.view_profile_status WHERE payload_identifier = 'com.example.scep' ORDER BY 1;

-- A profile installed on one enrollment cannot be bound to another
UPDATE mdm.nano_enrollment_queue SET active = false, finished_at = now()
WHERE command_uuid IN (SELECT command_uuid FROM mdm.profile_deliveries WHERE payload_identifier = 'com.example.scep');
UPDATE mdm.profile_deliveries SET status = 'installed' WHERE payload_identifier = 'com.example.scep';
SELECT try(format('SELECT mdm.bind_profile(%s, %L)', :scep, :'victor')) AS installed_elsewhere;

-- A re-enrollment starts without managed profiles: its deliveries are
-- forgotten, and its channels' first TokenUpdates deliver again
SELECT (mdm.checkin(v('checkin/20-authenticate-mac2.plist'))).status AS mac2_reenrolls;
SELECT count(*) AS mac2_deliveries FROM mdm.profile_deliveries WHERE device_id = :'mac2';
SELECT (mdm.checkin(v('checkin/21-tokenupdate-mac2-device.plist'))).status AS device_token_update;
SELECT (mdm.checkin(convert_to(replace(replace(replace(replace(convert_from(v('checkin/22-tokenupdate-mac2-user.plist'), 'UTF8'),
        '7D41E2B0-9A8C-4B6D-8E1F-2A3B4C5D6E7F', '9F9F9F9F-0000-4000-8000-000000000042'),
        '<string>ada</string>', '<string>grace</string>'), 'Ada Lovelace', 'Grace Hopper'),
        '3C5E7A9B-1D2F-4B4C-8E6A-0F2B4D6E8A1C', 'GRACE-MAGIC'), 'UTF8'))).status AS grace_token_update;
SELECT payload_identifier, status FROM mdm.view_profile_status WHERE device_id = :'mac2' ORDER BY 1;

-- Readers and administrators read the status too (the view calls
-- mdm_internal._desired_profiles and mdm_internal._setting, which are granted to them)
SET ROLE mdm_reader;
SELECT status, count(*) FROM mdm.view_profile_status GROUP BY 1 ORDER BY 1;
SET ROLE mdm_admin;
SELECT count(*) AS admin_rows FROM mdm.view_profile_status;
RESET ROLE;

-- the derived rows are whole after every path above (no foreign keys: schema/30_queue.sql)
SELECT integrity() AS broken;
