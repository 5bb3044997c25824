--
-- The command queue and the connect endpoint: enqueue, Idle polls, results,
-- NotNow, errors, orphans, channel rules, fan-out, re-enrollment, retention.
--
-- the seed's Mac with Victor's user channel, the second Mac with Ada's
SELECT reset_mdm();
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist',
    'checkin/05-tokenupdate-user.plist', 'checkin/20-authenticate-mac2.plist',
    'checkin/21-tokenupdate-mac2-device.plist', 'checkin/22-tokenupdate-mac2-user.plist',
    'checkin/30-authenticate-userenrollment.plist', 'checkin/31-tokenupdate-userenrollment-device.plist',
    'checkin/32-tokenupdate-userenrollment-user.plist']) n;
\set mac '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
\set victor '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'
\set mac2 '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'

-- a vector with its example CommandUUID replaced by one we queued
CREATE FUNCTION with_uuid(vector text, example text, uuid text) RETURNS bytea LANGUAGE sql AS $$
    SELECT convert_to(replace(convert_from(v(vector), 'UTF8'), example, uuid), 'UTF8')
$$;
-- a report from the seed's Mac (device channel)
CREATE FUNCTION mac_report(status text, uuid text) RETURNS mdm.reply LANGUAGE sql AS $$
    SELECT mdm.connect(convert_to(format(
        '<plist><dict><key>UDID</key><string>980E3D0B-5A28-537C-B7CB-7AFD15AFB933</string>'
        '<key>Status</key><string>%s</string>%s</dict></plist>', status,
        CASE WHEN uuid IS NULL THEN '' ELSE format('<key>CommandUUID</key><string>%s</string>', uuid) END),
        'UTF8'))
$$;
-- what a reply hands out: the RequestType and CommandUUID, or "empty"
CREATE FUNCTION handed(r mdm.reply) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN length(r.body) = 0 THEN r.status || ' empty'
                ELSE r.status || ' ' || (mdm.plist_to_jsonb(r.body) #>> '{Command,RequestType}') END
$$;
CREATE FUNCTION handed_uuid(r mdm.reply) RETURNS text LANGUAGE sql AS $$
    SELECT lower(mdm.plist_to_jsonb(r.body) ->> 'CommandUUID')
$$;

-- DeviceInformation to the device, ProfileList to Victor's user channel
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "DeviceInformation", "Queries": ["OSVersion", "SerialNumber"]}'::jsonb) AS devinfo \gset
SELECT mdm.enqueue(ARRAY[:'victor'], '{"RequestType": "ProfileList"}'::jsonb) AS profilelist \gset
SELECT enrollment_id, request_type, state FROM mdm.view_queue ORDER BY enrollment_id;
-- one queue row per target; a command of one target is kept in its queue
-- item (no nano_commands row), its plist made from the command
SELECT request_type, mdm.plist_to_jsonb(plist) #>> '{Command,RequestType}' = request_type
           AND mdm.plist_to_jsonb(plist) ->> 'CommandUUID' = upper(command_uuid::text) AS plist_ok,
       (SELECT count(*) FROM mdm.nano_commands c WHERE c.command_uuid = q.command_uuid) AS command_rows
FROM mdm.nano_enrollment_queue q ORDER BY request_type;

-- The device's Idle poll gets only its command; the seed's user poll only the user's
SELECT handed(mdm.connect(v('connect/01-idle-device.plist'))) AS device_poll;
SELECT handed(mdm.connect(v('connect/02-idle-user-seed.plist'))) AS user_poll;
SELECT handed(mdm.connect(v('connect/02-idle-user-seed.bplist'))) AS unanswered_is_resent_next_exchange;
SELECT mdm.plist_to_jsonb(body) -> 'Command' FROM mdm.connect(v('connect/01-idle-device.plist'));

-- Acknowledged (CommandUUID in upper case, matched case-insensitively)
-- stores the result; the next poll is an empty 200
SELECT handed(mdm.connect(with_uuid('connect/07-acknowledged-deviceinformation.plist',
                                    '4D2E7A6C-0F8B-4C5D-9EBA-9B7F5C3D1E6A', upper(:'devinfo')))) AS after_ack;
SELECT status, result #> '{QueryResponses,OSVersion}' AS os_version FROM mdm.view_command_results
WHERE command_uuid = :'devinfo';
SELECT handed(mac_report('Idle', NULL)) AS next_poll;

-- NotNow: withheld for the rest of the exchange, offered again after the next Idle
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "SecurityInfo"}'::jsonb) AS first \gset
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "CertificateList"}'::jsonb) AS second \gset
SELECT handed(mac_report('Idle', NULL)) AS idle;
SELECT handed(mdm.connect(with_uuid('connect/04-notnow-device.plist', '1A9B4D3F-7C5E-4F2A-8B8D-6E4C2F0A8B3D', :'first'))) AS after_notnow;
SELECT handed(mac_report('Acknowledged', :'second')) AS after_second_ack;
SELECT enrollment_id, request_type, state, not_now_tally FROM mdm.view_queue
WHERE command_uuid IN (:'first', :'second') ORDER BY request_type;
SELECT handed(mac_report('Idle', NULL)) AS next_exchange;
SELECT handed(mac_report('NotNow', :'first')) AS notnow_again;
SELECT not_now_tally, not_now_at = (SELECT min(not_now_at) FROM mdm.nano_command_results) AS first_kept
FROM mdm.nano_command_results WHERE command_uuid = :'first';
SELECT handed(mac_report('Idle', NULL)) AS third_exchange;
SELECT handed(mac_report('Acknowledged', :'first')) AS done;

-- Error with an ErrorChain, and CommandFormatError
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "InstalledApplicationList"}'::jsonb) AS failing \gset
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "OSUpdateStatus"}'::jsonb) AS malformed \gset
SELECT handed(mac_report('Idle', NULL));
SELECT handed(mdm.connect(with_uuid('connect/05-error-device.plist', '2B0C5E4A-8D6F-4A3B-9C9E-7F5D3A1B9C4E', :'failing')));
SELECT handed(mdm.connect(with_uuid('connect/06-commandformaterror-device.plist',
    (SELECT mdm.plist_to_jsonb(v('connect/06-commandformaterror-device.plist')) ->> 'CommandUUID'), :'malformed')));
SELECT request_type, status, jsonb_pretty(error_chain) AS error_chain
FROM mdm.view_command_results WHERE command_uuid IN (:'failing', :'malformed') ORDER BY request_type;

-- Orphans: a report about a command never queued to that enrollment is
-- recorded for operators and answered normally; it never touches another
-- enrollment's command
SELECT mdm.enqueue(ARRAY[:'mac2'], '{"RequestType": "ProfileList"}'::jsonb) AS mac2_cmd \gset
SELECT handed(mac_report('Acknowledged', :'mac2_cmd')) AS other_devices_command;
SELECT handed(mac_report('Acknowledged', 'not-a-uuid')) AS not_a_uuid;
SELECT handed(mdm.connect(v('connect/03-acknowledged-installprofile-user.plist'))) AS unknown_user_command;
SELECT enrollment_id, command_uuid = :'mac2_cmd' AS is_mac2_cmd, status FROM mdm.orphan_reports ORDER BY id;
SELECT state FROM mdm.view_queue WHERE command_uuid = :'mac2_cmd';

-- Priority first, then first in, first out
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "ProvisioningProfileList"}'::jsonb) AS low \gset
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "AvailableOSUpdates"}'::jsonb, 10) AS high \gset
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "UserList"}'::jsonb, 0, true) AS low2 \gset
SELECT handed(mac_report('Idle', NULL)) AS first;
SELECT handed(mac_report('Acknowledged', :'high')) AS second;
SELECT handed(mac_report('Acknowledged', :'low')) AS third;
SELECT handed(mac_report('Acknowledged', :'low2')) AS finally;

-- Channel rules from Apple's schema: nothing is queued when refused
SELECT count(*) AS commands_before FROM mdm.nano_commands \gset
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L, %L], '{"RequestType": "EraseDevice"}'::jsonb)$$, :'mac', :'victor'));
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L], '{"RequestType": "ActiveNSExtensions"}'::jsonb)$$, :'mac'));
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L], '{"RequestType": "NoSuchCommand"}'::jsonb)$$, :'mac'));
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L, 'NOPE-1', 'NOPE-2:someone'], '{"RequestType": "ProfileList"}'::jsonb)$$, :'mac'));
SELECT try($$SELECT mdm.enqueue(ARRAY[]::text[], '{"RequestType": "ProfileList"}'::jsonb)$$);
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L, NULL], '{"RequestType": "ProfileList"}'::jsonb)$$, :'mac'));
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L], '{"RequestType": "ProfileList"}'::jsonb, priority => NULL)$$, :'mac'));
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L], '{"RequestType": "NoSuchCommand"}'::jsonb, allow_unknown_request_type => NULL)$$, :'mac'));
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L], '{"Queries": []}'::jsonb)$$, :'mac'));
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L], '[1]'::jsonb)$$, :'mac'));
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L], '{"CommandUUID": "x", "Command": {"RequestType": "ProfileList"}}'::jsonb)$$, :'mac'));
SELECT count(*) = :commands_before AS nothing_queued FROM mdm.nano_commands;
-- device-and-user commands go to both; user-channel commands of User Enrollment too
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L, %L], '{"RequestType": "ProfileList"}'::jsonb)$$, :'mac', :'victor'));
SELECT try($$SELECT mdm.enqueue(ARRAY['B2C41D7E-0F9A-4C3B-8D2E-1F0A9B8C7D6E:C3D52E8F-1A0B-4D4C-9E3F-2A1B0C9D8E7F'], '{"RequestType": "ProfileList"}'::jsonb)$$);
-- an unknown command newer than the schema, when the caller says so
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "FutureCommand"}'::jsonb, 0, true) IS NOT NULL AS allowed;

-- The caller may give the CommandUUID; the plist overload takes either form
SELECT mdm.enqueue(ARRAY[:'mac'], '{"CommandUUID": "0E0C5F3A-7B1D-4E2A-9C3B-5D4E6F7A8B9C", "Command": {"RequestType": "DeviceInformation", "Queries": ["UDID"]}}'::jsonb);
SELECT mdm.enqueue(ARRAY[:'mac'], mdm.jsonb_to_plist('{"RequestType": "ProfileList"}')) IS NOT NULL AS from_plist;
SELECT try(format($$SELECT mdm.enqueue(ARRAY[%L], '{"CommandUUID": "0E0C5F3A-7B1D-4E2A-9C3B-5D4E6F7A8B9C", "Command": {"RequestType": "ProfileList"}}'::jsonb)$$, :'mac'));

-- Commands for a user channel wait until that channel polls; a
-- re-enrollment (Authenticate) clears what is pending on every channel
SELECT mdm.enqueue(ARRAY[:'victor'], '{"RequestType": "ProfileList"}'::jsonb) AS waiting \gset
SELECT state FROM mdm.view_queue WHERE command_uuid = :'waiting';
SELECT (mdm.checkin(v('checkin/01-authenticate.plist'))).status;
SELECT enrollment_id = :'victor' AS user_channel, state, count(*) FROM mdm.view_queue
WHERE device_id = :'mac' GROUP BY 1, 2 ORDER BY 1, 2;
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY['checkin/02-tokenupdate-device.plist', 'checkin/05-tokenupdate-user.plist']) n;
SELECT handed(mdm.connect(v('connect/02-idle-user-seed.plist'))) AS cleared_not_resent;

-- The User Enrollment user channel polls; reports from enrollments that
-- do not exist, and malformed reports, are refused
SELECT handed(mdm.connect(v('connect/08-idle-userenrollment-user.plist'))) AS ue_user_poll;
SELECT try($$SELECT mdm.connect(convert_to(replace(convert_from(v('connect/02-idle-user-seed.plist'), 'UTF8'), '23B1AB9F', '00000000'), 'UTF8'))$$);
SELECT try($$SELECT mdm.connect(convert_to('<dict><key>UDID</key><string>980E3D0B-5A28-537C-B7CB-7AFD15AFB933</string><key>Status</key><string>Done</string></dict>', 'UTF8'))$$);
SELECT try($$SELECT mdm.connect(convert_to('<dict><key>UDID</key><string>980E3D0B-5A28-537C-B7CB-7AFD15AFB933</string><key>Status</key><string>Acknowledged</string></dict>', 'UTF8'))$$);
SELECT try($$SELECT mdm.connect(convert_to('<dict><key>UDID</key><string>980E3D0B-5A28-537C-B7CB-7AFD15AFB933</string><key>Status</key><string>Error</string><key>CommandUUID</key><string>x</string><key>ErrorChain</key><string>oops</string></dict>', 'UTF8'))$$);
SELECT name, left(try(format('SELECT mdm.connect(v(%L))', name)), 100) AS result
FROM vectors WHERE name ~ '^bad/(01|04|09|12|18|20)' ORDER BY name;

-- Fan-out is set-based: 2,000 enrollments in one call, one command row
INSERT INTO mdm.nano_devices (id, authenticate, authenticate_at)
SELECT 'FAN-' || g, '\x'::bytea, now() FROM generate_series(1, 2000) g;
INSERT INTO mdm.nano_enrollments (device_id, id, type, topic, push_magic, token_hex, token_update, token_update_at, last_seen_at)
SELECT 'FAN-' || g, 'FAN-' || g, 'Device', 'com.apple.mgmt.External.test', 'magic-' || g,
       md5(g::text), '\x'::bytea, now(), now()
FROM generate_series(1, 2000) g;
SELECT mdm.enqueue(ARRAY(SELECT 'FAN-' || g FROM generate_series(1, 2000) g), '{"RequestType": "DeviceInformation", "Queries": ["OSVersion"]}'::jsonb) AS fanout \gset
SELECT (SELECT count(*) FROM mdm.nano_commands WHERE command_uuid = :'fanout') AS commands,
       (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE command_uuid = :'fanout') AS queue_rows;
-- ... and no queue item yet: above mdm.push_fanout_threshold the targets
-- wait as chunks of 1,000 IDs in byte order (mdm.queue_fanouts), with the
-- enqueue's priority and time
SELECT chunk, cardinality(enrollment_ids) AS targets, first_id, last_id, priority,
       created_at <= clock_timestamp() AS queued_at
FROM mdm.queue_fanouts WHERE command_uuid = :'fanout' ORDER BY chunk;
SELECT integrity() AS broken;
-- the readers of the queue see every target pending
SELECT state, count(*) FROM mdm.view_queue WHERE command_uuid = :'fanout' GROUP BY 1;
SELECT enrollment_id, pending_commands FROM mdm.view_enrollments WHERE enrollment_id IN ('FAN-1500', 'FAN-999') ORDER BY 1;
-- a poll of a target writes the items of its chunk (whole, once) and gets the command
SELECT (r).status, position(upper(:'fanout') IN convert_from((r).body, 'UTF8')) > 0 AS got_it
FROM (SELECT mdm.connect(convert_to('<dict><key>UDID</key><string>FAN-1500</string><key>Status</key><string>Idle</string></dict>', 'UTF8')) AS r) x;
SELECT (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE command_uuid = :'fanout') AS queue_rows,
       (SELECT array_agg(chunk) FROM mdm.queue_fanouts WHERE command_uuid = :'fanout') AS chunks_waiting,
       (SELECT count(DISTINCT created_at) FROM mdm.nano_enrollment_queue WHERE command_uuid = :'fanout') AS one_time,
       (SELECT sent_at IS NOT NULL FROM mdm.nano_enrollment_queue WHERE command_uuid = :'fanout' AND id = 'FAN-1500') AS sent;
-- a target deleted while its chunk waits is skipped; an Authenticate of a
-- target still waiting clears its item as it clears the others (its chunk
-- is written first)
DELETE FROM mdm.nano_enrollments WHERE id = 'FAN-998';
SELECT (mdm_internal._checkin_authenticate('FAN-999', '{"UDID": "FAN-999"}', NULL, NULL)).status AS reenrolled;
SELECT id, active, cleared_reason FROM mdm.nano_enrollment_queue WHERE command_uuid = :'fanout' AND id IN ('FAN-998', 'FAN-999');
UPDATE mdm.nano_enrollments SET enabled = true WHERE id = 'FAN-999';
SELECT (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE command_uuid = :'fanout') AS queue_rows,
       (SELECT count(*) FROM mdm.queue_fanouts WHERE command_uuid = :'fanout') AS chunks_waiting;
SELECT integrity() AS broken;
-- chunks no poll reached (push => false): maintenance writes them, and
-- does not prune their command meanwhile
INSERT INTO mdm.nano_devices (id, authenticate, authenticate_at) VALUES ('FAN-2001', '\x'::bytea, now());
INSERT INTO mdm.nano_enrollments (device_id, id, type, topic, push_magic, token_hex, token_update, token_update_at, last_seen_at)
VALUES ('FAN-2001', 'FAN-2001', 'Device', 'com.apple.mgmt.External.test', 'magic-2001', md5('2001'), '\x'::bytea, now(), now());
SELECT mdm.enqueue(ARRAY(SELECT 'FAN-' || g FROM generate_series(1000, 2001) g), '{"RequestType": "ProfileList"}'::jsonb,
                   push => false) AS quiet \gset
-- (a key change of a target that waits in a chunk is refused, as with an item)
SELECT try($$UPDATE mdm.nano_enrollments SET id = 'renamed' WHERE id = 'FAN-2001'$$) AS key_update_waiting;
UPDATE mdm.nano_commands SET created_at = now() - interval '8 days' WHERE command_uuid = :'quiet';
SELECT (SELECT count(*) FROM mdm.queue_fanouts WHERE command_uuid = :'quiet') AS chunks,
       (SELECT sum(cardinality(enrollment_ids)) FROM mdm.push_fanouts) AS pushes_of_the_first;
SELECT mdm.run_maintenance(batch_size => 1000) -> 'expanded_fanouts' AS expanded_first;
SELECT mdm.run_maintenance() -> 'expanded_fanouts' AS expanded_then;
SELECT (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE command_uuid = :'quiet' AND active) AS queue_rows,
       (SELECT count(*) FROM mdm.queue_fanouts) AS chunks_waiting,
       (SELECT count(*) FROM mdm.nano_commands WHERE command_uuid = :'quiet') AS command_kept;
DELETE FROM mdm.nano_enrollment_queue WHERE command_uuid = :'quiet';
DELETE FROM mdm.nano_commands WHERE command_uuid = :'quiet';
DELETE FROM mdm.nano_devices WHERE id = 'FAN-2001';
-- (so that what follows finds its 2,000 targets)
INSERT INTO mdm.nano_enrollments (device_id, id, type, topic, push_magic, token_hex, token_update, token_update_at, last_seen_at)
SELECT 'FAN-' || g, 'FAN-' || g, 'Device', 'com.apple.mgmt.External.test', 'magic-' || g,
       md5(g::text), '\x'::bytea, now(), now()
FROM unnest(ARRAY[998]) g;
INSERT INTO mdm.nano_enrollment_queue (device_id, id, command_uuid, priority, created_at)
SELECT 'FAN-' || g, 'FAN-' || g, :'fanout', 0, now() FROM unnest(ARRAY[998]) g;
UPDATE mdm.nano_enrollment_queue SET active = true, cleared_at = NULL, cleared_reason = NULL, sent_at = NULL, sent_count = 0
WHERE command_uuid = :'fanout';
UPDATE mdm.nano_enrollments SET exchange_started_at = NULL WHERE id = 'FAN-1500';
-- too many unknown targets, or a RequestType one of them cannot take, is
-- refused as for a small enqueue, before anything is written
SELECT try($$SELECT mdm.enqueue(ARRAY(SELECT 'FAN-' || g FROM generate_series(1, 1200) g) || ARRAY['nope', 'FAN-x'], '{"RequestType": "ProfileList"}'::jsonb)$$) AS unknown;
SELECT try($$SELECT mdm.enqueue(ARRAY(SELECT 'FAN-' || g FROM generate_series(1, 1200) g), '{"RequestType": "ActiveNSExtensions"}'::jsonb)$$) AS refused;
SELECT count(*) AS nothing_written FROM mdm.queue_fanouts;

-- Retention: finished history older than mdm.history_retention goes, in
-- bounded batches; pending work stays
UPDATE mdm.nano_enrollment_queue SET finished_at = now() - interval '8 days' WHERE NOT active AND finished_at IS NOT NULL;
UPDATE mdm.nano_enrollment_queue SET cleared_at = now() - interval '8 days' WHERE cleared_at IS NOT NULL;
UPDATE mdm.nano_commands SET created_at = now() - interval '8 days';
UPDATE mdm.checkin_messages SET received_at = now() - interval '8 days';
UPDATE mdm.orphan_reports SET received_at = now() - interval '8 days';
SELECT (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE NOT active) AS finished,
       (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE active) AS pending;
SELECT mdm.run_maintenance(batch_size => 5) AS first_run \gset
SELECT mdm.run_maintenance() AS second_run \gset
SELECT k AS pruned, (:'first_run'::jsonb ->> k)::int <= 5 AS first_run_bounded,
       (:'first_run'::jsonb ->> k)::int + (:'second_run'::jsonb ->> k)::int AS total
FROM unnest(ARRAY['checkin_messages', 'queue_items', 'orphan_reports', 'push_jobs', 'commands']) k;
SELECT (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE NOT active) AS finished,
       (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE active) AS pending,
       (SELECT count(*) FROM mdm.nano_command_results) AS results,
       (SELECT count(*) FROM mdm.checkin_messages) AS messages;

-- Commands that waited longer than mdm.pending_command_lifetime for a device
-- that never polled are dropped, and then pruned like other history
UPDATE mdm.nano_enrollment_queue SET created_at = now() - interval '31 days' WHERE id IN ('FAN-1', 'FAN-2');
SELECT mdm.run_maintenance() -> 'expired_commands' AS expired;
SELECT enrollment_id, state FROM mdm.view_queue WHERE enrollment_id IN ('FAN-1', 'FAN-2', 'FAN-3') ORDER BY 1;
SET mdm.pending_command_lifetime = 0;
UPDATE mdm.nano_enrollment_queue SET created_at = now() - interval '400 days' WHERE id = 'FAN-3';
SELECT mdm.run_maintenance() -> 'expired_commands' AS kept_forever;
RESET mdm.pending_command_lifetime;

-- An untyped literal is JSON text (the text overload), not ambiguous
-- between jsonb and bytea; typed jsonb and bytea calls keep their overloads
SELECT mdm.enqueue(ARRAY['FAN-3'], '{"RequestType": "ProfileList"}') AS untyped \gset
SELECT mdm.enqueue(ARRAY['FAN-3'], '{"RequestType": "SecurityInfo"}', 5) AS untyped_priority \gset
SELECT mdm.enqueue(ARRAY['FAN-3'], mdm.jsonb_to_plist('{"RequestType": "CertificateList"}')) AS plist \gset
SELECT q.request_type, q.priority FROM mdm.view_queue q
WHERE q.command_uuid IN (:'untyped', :'untyped_priority', :'plist') ORDER BY 1;
SELECT try($$SELECT mdm.enqueue(ARRAY['FAN-3'], 'not json')$$);
SELECT p.oid::regprocedure FROM pg_proc p WHERE p.proname = 'enqueue' ORDER BY 1::text;

-- an enrollment deleted by hand takes its queue items, results and push
-- jobs with it (a trigger, where foreign keys cascaded)
SELECT count(*) AS fan3_items FROM mdm.nano_enrollment_queue WHERE id = 'FAN-3';
DELETE FROM mdm.nano_enrollments WHERE id = 'FAN-3';
SELECT (SELECT count(*) FROM mdm.nano_enrollment_queue WHERE id = 'FAN-3') AS items,
       (SELECT count(*) FROM mdm.push_jobs WHERE enrollment_id = 'FAN-3') AS jobs;
-- what the foreign keys refused is refused still: a key update while
-- derived rows name the old key (23503); a TRUNCATE of the enrollments
-- (CASCADE, or beside the profile tables, as PostgreSQL requires) empties
-- the derived tables as CASCADE did
SELECT e.id AS keyed FROM mdm.nano_enrollments e
WHERE EXISTS (SELECT FROM mdm.nano_enrollment_queue q WHERE q.device_id = e.device_id AND q.id = e.id)
ORDER BY 1 LIMIT 1 \gset
SELECT try(format($$UPDATE mdm.nano_enrollments SET id = 'renamed' WHERE id = %L$$, :'keyed')) AS key_update;
SELECT try(format($$UPDATE mdm.nano_enrollments SET device_id = device_id, id = id WHERE id = %L$$, :'keyed')) AS same_key;
BEGIN;
-- without its derived rows, the key may change (the row's own check then
-- refuses this new id, after the trigger let it through)
DELETE FROM mdm.nano_command_results WHERE id = :'keyed';
DELETE FROM mdm.nano_enrollment_queue WHERE id = :'keyed';
DELETE FROM mdm.push_jobs WHERE enrollment_id = :'keyed';
SELECT split_part(try(format($$UPDATE mdm.nano_enrollments SET id = 'renamed' WHERE id = %L$$, :'keyed')), ':', 1) AS key_update_free;
ROLLBACK;
BEGIN;
SELECT (SELECT count(*) FROM mdm.nano_enrollment_queue) > 0 AS items,
       (SELECT count(*) FROM mdm.push_jobs) > 0 AS jobs;
TRUNCATE mdm.nano_enrollments CASCADE;
SELECT (SELECT count(*) FROM mdm.nano_enrollment_queue) AS items,
       (SELECT count(*) FROM mdm.nano_command_results) AS results,
       (SELECT count(*) FROM mdm.push_jobs) AS jobs,
       (SELECT count(*) FROM mdm.push_attempts) AS attempts;
ROLLBACK;
-- the derived rows are whole after every path above (no foreign keys: schema/30_queue.sql)
SELECT integrity() AS broken;

-- A queue item whose command row is gone (deleted by hand, or pruned while
-- the NanoMDM import queued it): the poll clears it with a WARNING and
-- hands out the next item (it used to crash the server at every poll)
SELECT mdm.enqueue(ARRAY[:'mac', :'mac2'], '{"RequestType": "CertificateList"}', 100) AS gone \gset
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "InstalledApplicationList"}', 99) AS next_one \gset
DELETE FROM mdm.nano_commands WHERE command_uuid = :'gone';
UPDATE mdm.nano_enrollment_queue SET command_uuid = '0e3b1f6a-dead-4000-8000-00000000c0de'
WHERE command_uuid = :'gone';
SELECT handed(mac_report('Idle', NULL)) AS after_missing;
SELECT handed(mac_report('Idle', NULL)) AS no_second_warning;
SELECT q.id = :'mac' AS mac, q.active, q.cleared_reason, v.state
FROM mdm.nano_enrollment_queue q JOIN mdm.view_queue v USING (device_id, command_uuid)
WHERE q.command_uuid = '0e3b1f6a-dead-4000-8000-00000000c0de' AND v.enrollment_id = q.id ORDER BY 1;
DELETE FROM mdm.nano_enrollment_queue WHERE command_uuid IN ('0e3b1f6a-dead-4000-8000-00000000c0de', :'next_one');
SELECT integrity() AS broken;
