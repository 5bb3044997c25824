--
-- Webhook events: recorded with mdm.events on, in MicroMDM's format; claim
-- order per enrollment, leases, backoff, delivery, retention; refused
-- messages record nothing.
--
SELECT reset_mdm();
\set mac '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
\set victor '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'

-- off by default: nothing is recorded
SELECT mdm_internal._setting('mdm.events') AS events;
SELECT (mdm.checkin(v('checkin/01-authenticate.plist'))).status;
SELECT count(*) AS events_when_off FROM mdm.events;

SET mdm.events = on;
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist',
    'checkin/05-tokenupdate-user.plist', 'checkin/02-tokenupdate-device.plist',
    'checkin/30-authenticate-userenrollment.plist',
    'checkin/31-tokenupdate-userenrollment-device.plist']) n;
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "DeviceInformation", "Queries": ["OSVersion"]}'::jsonb) AS cmd \gset
SELECT (mdm.connect(v('connect/01-idle-device.plist'))).status;
SELECT (mdm.connect(convert_to(format(
    '<plist><dict><key>UDID</key><string>%s</string><key>Status</key><string>Acknowledged</string>'
    '<key>CommandUUID</key><string>%s</string><key>QueryResponses</key><dict/></dict></plist>',
    :'mac', upper(:'cmd')), 'UTF8'))).status;

-- one event per message, in the webhook format
SELECT e.id, e.topic, mdm_internal._event_json(e) - 'created_at' - 'event_id'
       #- '{checkin_event,raw_payload}' #- '{acknowledge_event,raw_payload}'
       #- '{acknowledge_event,command_uuid}' AS event,
       mdm_internal._event_json(e) #>> '{acknowledge_event,command_uuid}' = upper(:'cmd') AS command_uuid
FROM mdm.events e ORDER BY e.id;
-- raw_payload is the body as received; created_at is RFC 3339 in UTC
SELECT bool_and(decode(coalesce(j #>> '{checkin_event,raw_payload}', j #>> '{acknowledge_event,raw_payload}'),
                       'base64') = e.body) AS raw_payload_as_received,
       bool_and(j->>'created_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$') AS created_at_rfc3339,
       bool_and(j->>'event_id' = e.id::text) AS event_id
FROM mdm.events e, mdm_internal._event_json(e) j;

-- refused messages record nothing: a report of an unknown device, a
-- TokenUpdate before Authenticate, a malformed body
SELECT count(*) AS before FROM mdm.events \gset
SELECT try($$SELECT mdm.connect(convert_to('<plist><dict><key>UDID</key><string>NOPE</string><key>Status</key><string>Idle</string></dict></plist>', 'UTF8'))$$);
SELECT try($$SELECT mdm.checkin(v('checkin/21-tokenupdate-mac2-device.plist'))$$);
SELECT try($$SELECT mdm.checkin(v('bad/02-truncated.plist'))$$);
SELECT count(*) - :before AS events_of_refused FROM mdm.events;

-- Claims: the oldest undelivered event of each enrollment only
SELECT enrollment_id, attempt, event->>'topic' AS topic FROM mdm.claim_events(100) ORDER BY id;
-- leased: a second claimer gets nothing (and nothing later of those enrollments)
SELECT count(*) AS second_claimer FROM mdm.claim_events(100);
-- the device's first event fails: it is retried after the backoff, and the
-- device's later events wait for it; the others are delivered
SELECT mdm.event_result(device_id, id, attempts, CASE WHEN enrollment_id = :'mac' THEN 500 ELSE 204 END,
                        CASE WHEN enrollment_id = :'mac' THEN 'Internal Server Error' END)
FROM mdm.events WHERE claimed_until IS NOT NULL ORDER BY id;
-- a report for a lease that is over changes nothing
SELECT mdm.event_result(device_id, id, attempts, 200) AS stale_report FROM mdm.events
WHERE enrollment_id = :'mac' ORDER BY id LIMIT 1;
SELECT enrollment_id, topic, attempts, delivered_at IS NOT NULL AS delivered,
       next_attempt_at > now() AS backing_off, last_error
FROM mdm.events WHERE attempts > 0 ORDER BY id;
SELECT enrollment_id, event->>'topic' AS topic FROM mdm.claim_events(100) ORDER BY id;
SELECT undelivered, retrying, oldest_undelivered_at IS NOT NULL AS has_oldest, last_error
FROM mdm.view_event_backlog;
SELECT undelivered, oldest_age >= 0 AS aged, next_due_in > 0 AS waits FROM mdm.event_backlog();

-- the backoff doubles, up to mdm.event_retry_max
SET mdm.event_retry_base = 10;
SET mdm.event_retry_max = 25;
CREATE FUNCTION fail_head() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    UPDATE mdm.events SET next_attempt_at = '-infinity' WHERE delivered_at IS NULL;
    SELECT * INTO r FROM mdm.claim_events(1);
    PERFORM mdm.event_result(r.device_id, r.id, r.attempt, NULL, 'connection refused');
    RETURN (SELECT format('attempt %s, retry in %s s, %s', attempts,
                          round(extract(epoch FROM next_attempt_at - now())), last_error)
            FROM mdm.events WHERE device_id = r.device_id AND id = r.id);
END $$;
SELECT fail_head() FROM generate_series(1, 4);
RESET mdm.event_retry_base;
RESET mdm.event_retry_max;

-- a lease that ran out is claimable again (another front end takes over)
UPDATE mdm.events SET next_attempt_at = '-infinity', claimed_until = now() - interval '1 s'
WHERE delivered_at IS NULL;
-- then everything is delivered in order, one enrollment event at a time
CREATE FUNCTION deliver_all() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
    got text := '';
BEGIN
    LOOP
        UPDATE mdm.events SET next_attempt_at = '-infinity' WHERE delivered_at IS NULL;
        FOR r IN SELECT * FROM mdm.claim_events(100) ORDER BY id LOOP
            got := got || (r.event->>'topic') || ' ';
            PERFORM mdm.event_result(r.device_id, r.id, r.attempt, 200);
        END LOOP;
        EXIT WHEN NOT FOUND;
    END LOOP;
    RETURN got;
END $$;
SELECT deliver_all();
SELECT count(*) FILTER (WHERE delivered_at IS NULL) AS undelivered, count(*) AS events FROM mdm.events;

-- retention: delivered events go after mdm.events_retention, not before
SELECT (mdm.run_maintenance())->'events' AS pruned_too_early;
UPDATE mdm.events SET delivered_at = now() - interval '2 days' WHERE topic <> 'mdm.Connect';
SELECT (mdm.run_maintenance())->'events' AS pruned;
SELECT topic FROM mdm.events ORDER BY id;
-- undelivered events are never pruned
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'))).status;
UPDATE mdm.events SET created_at = now() - interval '30 days' WHERE delivered_at IS NULL;
SELECT (mdm.run_maintenance())->'events' AS pruned_undelivered;

-- a bad claim size
SELECT try('SELECT mdm.claim_events(0)');
RESET mdm.events;
