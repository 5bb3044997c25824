--
-- A command queued to one target is written without statements on a single
-- server (src/enqueue_path.c): its item keeps its own command, and the
-- queue's bound-profile statement trigger (check_bindings_insert, which
-- checks items whose command is an InstallProfile in nano_commands) is not
-- fired for it.  What that trigger guards still holds: such an item is
-- never an InstallProfile, as written or changed; an InstallProfile to one
-- target takes the checked path; every row a statement writes is checked.
-- A trigger or CHECK the direct path does not know leaves the write to the
-- statements, which apply it.
--
SELECT reset_mdm();
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist', 'checkin/05-tokenupdate-user.plist',
    'checkin/20-authenticate-mac2.plist', 'checkin/21-tokenupdate-mac2-device.plist',
    'checkin/22-tokenupdate-mac2-user.plist']) n;
\set mac '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
\set victor '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'
\set mac2 '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'
\set ada '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B:7D41E2B0-9A8C-4B6D-8E1F-2A3B4C5D6E7F'
-- SQLSTATE and message (the detail of a CHECK violation names the row)
CREATE FUNCTION try_state(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text;
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END $$;
SELECT mdm.upload_profile(v('profiles/01-user-scoped-certificate.mobileconfig')) AS cert \gset
SELECT payload_identifier, scope FROM mdm.profiles WHERE id = :cert;
SELECT mdm.bind_profile(:cert, :'victor');

-- the item: its own command (the plist the device receives), no
-- nano_commands row; its push job
SELECT mdm.enqueue(ARRAY[:'ada'], '{"RequestType": "ProfileList"}'::jsonb, 3) AS one \gset
SELECT q.request_type,
       q.plist = mdm.jsonb_to_plist(jsonb_build_object('CommandUUID', upper(:'one'),
                                                       'Command', '{"RequestType": "ProfileList"}'::jsonb)) AS plist_of_command,
       q.active, q.priority, q.sent_count, q.created_at <= clock_timestamp() AS created,
       (SELECT count(*) FROM mdm.nano_commands c WHERE c.command_uuid = q.command_uuid) AS commands
FROM mdm.nano_enrollment_queue q WHERE q.command_uuid = :'one';
SELECT enrollment_id = :'ada' AS ada, state, attempts, created_at = not_before AS not_before_created FROM mdm.push_jobs;
-- never an InstallProfile: not changed into one, not written as one
SELECT try_state(format($$UPDATE mdm.nano_enrollment_queue SET request_type = 'InstallProfile' WHERE command_uuid = %L$$,
                        :'one')) AS changed_into_install_profile;
SELECT try_state(format($$INSERT INTO mdm.nano_enrollment_queue (device_id, id, command_uuid, request_type, plist)
                          VALUES (%L, %L, gen_random_uuid(), 'InstallProfile', '\x00')$$, :'mac2', :'ada')) AS written_as_install_profile;
-- an InstallProfile to one target takes the checked path: the bound profile reaches Victor only
SELECT try(format('SELECT mdm.enqueue(ARRAY[%L], jsonb_build_object(''RequestType'', ''InstallProfile'', ''Payload'', mdm.plist_data_value(v(%L))))',
                  t, 'profiles/01-user-scoped-certificate.mobileconfig')) AS install_profile
FROM unnest(ARRAY[:'ada', :'victor']) t;
-- and the statement trigger still checks every row a statement writes
SELECT try(format($$INSERT INTO mdm.nano_enrollment_queue (device_id, id, command_uuid)
                    SELECT %L, %L, command_uuid FROM mdm.nano_commands WHERE payload_identifier = 'com.example.user-cert' LIMIT 1$$,
                  :'mac2', :'ada')) AS statement_insert;

-- triggers the direct path does not know: the statements write the rows and fire them
CREATE TABLE fired (what text);
CREATE FUNCTION fire() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.fired VALUES (TG_TABLE_NAME || ' ' || TG_LEVEL);
    RETURN NULL;
END $$;
CREATE TRIGGER fire AFTER INSERT ON mdm.nano_enrollment_queue FOR EACH STATEMENT EXECUTE FUNCTION fire();
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "ProfileList"}'::jsonb) IS NOT NULL AS queued;
DROP TRIGGER fire ON mdm.nano_enrollment_queue;
CREATE TRIGGER fire AFTER INSERT ON mdm.push_jobs FOR EACH ROW EXECUTE FUNCTION fire();
SELECT mdm.enqueue(ARRAY[:'mac2'], '{"RequestType": "ProfileList"}'::jsonb) IS NOT NULL AS queued;
DROP TRIGGER fire ON mdm.push_jobs;
SELECT what, count(*) FROM fired GROUP BY 1 ORDER BY 1;
SELECT enrollment_id, state FROM mdm.push_jobs ORDER BY id;
-- a CHECK it does not know (even one not validated): evaluated, and the
-- statement raises its violation
ALTER TABLE mdm.nano_enrollment_queue ADD CONSTRAINT no_security_info
    CHECK (request_type IS DISTINCT FROM 'SecurityInfo') NOT VALID;
SELECT try_state(format('SELECT mdm.enqueue(ARRAY[%L], ''{"RequestType": "SecurityInfo"}''::jsonb)', :'mac')) AS refused_by_check;
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "CertificateList"}'::jsonb) IS NOT NULL AS other_passes;
ALTER TABLE mdm.nano_enrollment_queue DROP CONSTRAINT no_security_info;
SELECT request_type, count(*) FROM mdm.nano_enrollment_queue WHERE id = :'mac' GROUP BY 1 ORDER BY 1;
SELECT integrity() AS broken;
DROP TABLE fired;
DROP FUNCTION fire(), try_state(text);
SELECT reset_mdm();
