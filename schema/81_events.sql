-- Webhook events: every accepted check-in and command report, recorded in
-- the same transaction when mdm.events is on, in the MicroMDM webhook
-- format that NanoMDM documents (docs/webhooks.md), and delivered by the
-- front end's webhook worker at least once, in order per enrollment.
--
-- Delivery: mdm.claim_events() hands out the oldest undelivered event of
-- each enrollment (never a later one while an earlier one waits or is
-- retried), leased to one claimer (FOR UPDATE SKIP LOCKED, and the lease
-- mdm.event_claim_timeout; on Citus event by event, schema/90_citus.sql);
-- mdm.event_result() ends the lease: delivered on a 2xx, else retried after
-- mdm.event_retry_base doubled per attempt (at most mdm.event_retry_max).
-- A report for an old lease is ignored.

CREATE SEQUENCE mdm.events_id_seq;
CREATE TABLE mdm.events (
    device_id text NOT NULL,
    id bigint NOT NULL DEFAULT nextval('mdm.events_id_seq'),
    enrollment_id text NOT NULL,
    enrollment_type text NOT NULL,
    topic text NOT NULL CHECK (topic IN ('mdm.Authenticate', 'mdm.TokenUpdate', 'mdm.CheckOut',
        'mdm.UserAuthenticate', 'mdm.SetBootstrapToken', 'mdm.GetBootstrapToken', 'mdm.Connect',
        'mdm.DeclarativeManagement', 'mdm.GetToken')),
    created_at timestamptz NOT NULL DEFAULT now(),
    body bytea NOT NULL,
    command_uuid text,
    status text,
    token_update_tally integer,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT '-infinity',
    claimed_until timestamptz,
    delivered_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    PRIMARY KEY (device_id, id),
    CHECK ((topic = 'mdm.Connect') = (status IS NOT NULL))
);
ALTER SEQUENCE mdm.events_id_seq OWNED BY mdm.events.id;
-- the undelivered events: in id order for the claim, by enrollment for
-- "is an earlier one still waiting"; delivered rows leave both
CREATE INDEX events_pending ON mdm.events (id) WHERE delivered_at IS NULL;
CREATE INDEX events_pending_enrollment ON mdm.events (device_id, enrollment_id, id)
    WHERE delivered_at IS NULL;
-- pruning by delivery time; rows are delivered roughly in time order
CREATE INDEX events_delivered_at ON mdm.events USING brin (delivered_at);
COMMENT ON TABLE mdm.events IS
    'Webhook events (mdm.events on): one per accepted check-in or command report, until delivered and mdm.events_retention has passed';
COMMENT ON COLUMN mdm.events.device_id IS 'Device channel ID of the message''s device';
COMMENT ON COLUMN mdm.events.id IS 'Order of the events; the webhook''s event_id';
COMMENT ON COLUMN mdm.events.enrollment_id IS 'Channel the message came on (events are delivered in order per channel)';
COMMENT ON COLUMN mdm.events.enrollment_type IS 'Enrollment type of the channel (ids.type)';
COMMENT ON COLUMN mdm.events.topic IS 'mdm.<MessageType> of a check-in, or mdm.Connect of a command report';
COMMENT ON COLUMN mdm.events.created_at IS 'When the message was accepted';
COMMENT ON COLUMN mdm.events.command_uuid IS 'mdm.Connect: the report''s CommandUUID as sent (NULL for Idle)';
COMMENT ON COLUMN mdm.events.status IS 'mdm.Connect: the report''s Status';
COMMENT ON COLUMN mdm.events.token_update_tally IS 'mdm.TokenUpdate: the channel''s TokenUpdate count after this one';
COMMENT ON COLUMN mdm.events.delivered_at IS 'When the receiver answered a 2xx';
COMMENT ON COLUMN mdm.events.last_error_at IS 'When the last delivery failed';
COMMENT ON COLUMN mdm.events.body IS 'The message as received (raw_payload)';
COMMENT ON COLUMN mdm.events.attempts IS 'Times the event was claimed for delivery';
COMMENT ON COLUMN mdm.events.next_attempt_at IS 'Not claimable before (backoff after a failed delivery)';
COMMENT ON COLUMN mdm.events.claimed_until IS 'Leased to a front end until then';
COMMENT ON COLUMN mdm.events.last_error IS 'Why the last delivery failed (HTTP status or transport error)';
SELECT pg_catalog.pg_extension_config_dump('mdm.events', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.events_id_seq', '');

-- The webhook body of an event (MicroMDM's Event, NanoMDM's event.json).
CREATE FUNCTION mdm_internal._event_json(e mdm.events) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'topic', e.topic,
        'event_id', e.id::text,
        'created_at', to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        CASE WHEN e.topic = 'mdm.Connect' THEN 'acknowledge_event' ELSE 'checkin_event' END,
        jsonb_build_object(
            -- a User Enrollment's device channel ID is its EnrollmentID
            CASE WHEN e.enrollment_type IN ('User Enrollment (Device)', 'User Enrollment')
                 THEN 'enrollment_id' ELSE 'udid' END, e.device_id,
            'ids', jsonb_build_object('id', e.enrollment_id, 'type', e.enrollment_type,
                                      'parent_id', CASE WHEN e.enrollment_id <> e.device_id
                                                        THEN e.device_id END),
            'raw_payload', translate(encode(e.body, 'base64'), E'\n', ''),
            'command_uuid', e.command_uuid,
            'status', e.status,
            'token_update_tally', e.token_update_tally)));

-- Claim up to max_events events for delivery: the oldest undelivered event
-- of each enrollment that is due and not leased to another claimer.
-- Returns the lease (attempt) to pass to mdm.event_result().
CREATE FUNCTION mdm.claim_events(max_events integer DEFAULT 100)
    RETURNS TABLE (device_id text, id bigint, attempt integer, enrollment_id text, event jsonb)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF max_events IS NULL OR max_events < 1 THEN
        RAISE EXCEPTION 'max_events must be at least 1, not %', coalesce(max_events::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mdm_internal._distributed() THEN
        -- no row locks across shards on Citus: leased event by event
        -- (schema/90_citus.sql)
        RETURN QUERY SELECT * FROM mdm_internal._claim_events_by_event(max_events);
        RETURN;
    END IF;
    RETURN QUERY
    WITH heads AS (
        SELECT e.device_id, e.id FROM mdm.events e
        WHERE e.delivered_at IS NULL AND e.next_attempt_at <= now()
          AND (e.claimed_until IS NULL OR e.claimed_until < now())
          AND NOT EXISTS (SELECT FROM mdm.events p
                          WHERE p.device_id = e.device_id AND p.enrollment_id = e.enrollment_id
                            AND p.delivered_at IS NULL AND p.id < e.id)
        ORDER BY e.id
        LIMIT max_events
        FOR UPDATE SKIP LOCKED)
    UPDATE mdm.events e
    SET attempts = e.attempts + 1,
        claimed_until = now() + make_interval(secs => mdm_internal._setting('mdm.event_claim_timeout')::integer)
    FROM heads h
    WHERE e.device_id = h.device_id AND e.id = h.id
    RETURNING e.device_id, e.id, e.attempts, e.enrollment_id, mdm_internal._event_json(e);
END $$;
COMMENT ON FUNCTION mdm.claim_events(integer) IS
    'Webhook worker: lease the oldest due undelivered event of each enrollment (at most max_events), with its JSON body';

-- The outcome of one delivery: a 2xx marks the event delivered; anything
-- else (http_status NULL for a transport error) schedules a retry.
-- Returns false when the lease was no longer the caller's (taken over
-- after mdm.event_claim_timeout, or already reported).
CREATE FUNCTION mdm.event_result(device_id text, id bigint, attempt integer, http_status integer,
                                 error text DEFAULT NULL) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    delay double precision;
BEGIN
    IF http_status BETWEEN 200 AND 299 THEN
        UPDATE mdm.events e SET delivered_at = now(), claimed_until = NULL
        WHERE e.device_id = event_result.device_id AND e.id = event_result.id
          AND e.attempts = attempt AND e.claimed_until IS NOT NULL AND e.delivered_at IS NULL;
        RETURN FOUND;
    END IF;
    delay := least(mdm_internal._setting('mdm.event_retry_base')::double precision
                   * power(2, least(greatest(attempt, 1) - 1, 30)),
                   mdm_internal._setting('mdm.event_retry_max')::double precision);
    UPDATE mdm.events e
    SET claimed_until = NULL, next_attempt_at = now() + make_interval(secs => delay),
        last_error = left(coalesce(CASE WHEN http_status IS NOT NULL THEN 'HTTP ' || http_status END
                                   || coalesce(': ' || error, ''), error, 'failed'), 1000),
        last_error_at = now()
    WHERE e.device_id = event_result.device_id AND e.id = event_result.id
      AND e.attempts = attempt AND e.claimed_until IS NOT NULL AND e.delivered_at IS NULL;
    RETURN FOUND;
END $$;
COMMENT ON FUNCTION mdm.event_result(text, bigint, integer, integer, text) IS
    'Webhook worker: report a delivery (2xx: delivered; otherwise retried with exponential backoff)';

-- Seconds until the next undelivered event is due (0: now; NULL: none), so
-- that a worker sleeps no longer than needed; and the backlog for metrics.
CREATE FUNCTION mdm.event_backlog(OUT undelivered bigint, OUT oldest_age double precision,
                                  OUT next_due_in double precision)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT count(*), extract(epoch FROM now() - min(e.created_at))::double precision,
               extract(epoch FROM min(greatest(e.next_attempt_at, e.claimed_until, now())) - now())::double precision
        FROM mdm.events e WHERE e.delivered_at IS NULL;
    END;
COMMENT ON FUNCTION mdm.event_backlog() IS
    'Undelivered webhook events, the age of the oldest in seconds, and seconds until the next is due';

CREATE VIEW mdm.view_event_backlog AS
    SELECT count(*) FILTER (WHERE e.delivered_at IS NULL) AS undelivered,
           count(*) FILTER (WHERE e.delivered_at IS NULL AND e.attempts > 0) AS retrying,
           min(e.created_at) FILTER (WHERE e.delivered_at IS NULL) AS oldest_undelivered_at,
           max(e.delivered_at) AS last_delivered_at,
           (array_agg(e.last_error ORDER BY e.last_error_at DESC)
                FILTER (WHERE e.last_error_at IS NOT NULL))[1] AS last_error,
           max(e.last_error_at) AS last_error_at
    FROM mdm.events e;
COMMENT ON COLUMN mdm.view_event_backlog.undelivered IS 'Events not delivered yet';
COMMENT ON COLUMN mdm.view_event_backlog.retrying IS 'Undelivered events tried at least once';
COMMENT ON COLUMN mdm.view_event_backlog.oldest_undelivered_at IS 'When the oldest undelivered event was recorded';
COMMENT ON COLUMN mdm.view_event_backlog.last_delivered_at IS 'The latest delivery (among events not yet pruned)';
COMMENT ON COLUMN mdm.view_event_backlog.last_error IS 'Why the latest failed delivery failed';
COMMENT ON COLUMN mdm.view_event_backlog.last_error_at IS 'When it failed';
COMMENT ON VIEW mdm.view_event_backlog IS
    'Webhook delivery: undelivered events, those being retried, the oldest undelivered, the last error';

-- Delete up to batch_size delivered events older than mdm.events_retention.
CREATE FUNCTION mdm_internal._prune_events(batch_size integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - make_interval(secs => mdm_internal._setting('mdm.events_retention')::integer);
    n integer;
BEGIN
    WITH doomed AS (SELECT e.device_id, e.id FROM mdm.events e
                    WHERE e.delivered_at <= cutoff LIMIT batch_size),
         gone AS (DELETE FROM mdm.events e USING doomed d
                  WHERE e.device_id = d.device_id AND e.id = d.id RETURNING 1)
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END $$;

REVOKE ALL ON FUNCTION mdm_internal._event_json(mdm.events), mdm_internal._prune_events(integer),
    mdm.claim_events(integer), mdm.event_result(text, bigint, integer, integer, text),
    mdm.event_backlog() FROM PUBLIC;
REVOKE ALL ON mdm.events, mdm.view_event_backlog FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mdm.claim_events(integer),
    mdm.event_result(text, bigint, integer, integer, text), mdm.event_backlog()
    TO mdm_frontend;
GRANT EXECUTE ON FUNCTION mdm.event_backlog() TO mdm_admin, mdm_reader;
-- the events carry raw messages: no reading role sees their bodies
GRANT SELECT (device_id, id, enrollment_id, enrollment_type, topic, created_at, command_uuid,
              status, token_update_tally, attempts, next_attempt_at, claimed_until,
              delivered_at, last_error, last_error_at)
    ON mdm.events TO mdm_reader, mdm_admin;
GRANT SELECT ON mdm.view_event_backlog TO mdm_reader, mdm_admin;
