--
-- The safety net of profile delivery: mdm.run_maintenance() reconciles a
-- slice of the devices per run, going on where the last run stopped and
-- wrapping around, so an assignment whose reconcile() was never called is
-- delivered within devices / batch_size runs.
--
SELECT reset_mdm();
-- (reset_mdm() emptied mdm.maintenance_state too: the sweep starts afresh)
\set mac '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
\set mac2 '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist',
    'checkin/20-authenticate-mac2.plist', 'checkin/21-tokenupdate-mac2-device.plist']) n;
SELECT mdm.upload_profile(v('profiles/04-no-payloadscope-dock.mobileconfig')) IS NOT NULL AS uploaded;

-- assigned to both Macs, and nobody calls reconcile()
INSERT INTO mdm.labels (name) VALUES ('all macs') RETURNING id AS all_macs \gset
INSERT INTO mdm.label_enrollments (label_id, device_id, enrollment_id)
VALUES (:all_macs, :'mac', :'mac'), (:all_macs, :'mac2', :'mac2');
INSERT INTO mdm.profile_assignments VALUES (:all_macs, 'com.example.dock', 'include');

-- one device per run: the first run reconciles the first Mac (by ID), the
-- second the other, the third wraps around and finds nothing to do
SELECT mdm.run_maintenance(batch_size => 1) -> 'reconciled' AS first_run;
SELECT enrollment_id FROM mdm.profile_deliveries ORDER BY 1;
SELECT reconcile_after FROM mdm.maintenance_state;
SELECT mdm.run_maintenance(batch_size => 1) -> 'reconciled' AS second_run;
SELECT enrollment_id FROM mdm.profile_deliveries ORDER BY 1;
SELECT mdm.run_maintenance(batch_size => 1) -> 'reconciled' AS wrapped_around;
SELECT reconcile_after FROM mdm.maintenance_state;

