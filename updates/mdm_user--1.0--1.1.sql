-- mdm_user 1.0 -> 1.1: what changed in SQL objects since release 1.0.
-- Each change here is also made in schema/ (docs/releasing.md); test/upgrade/run
-- checks that an upgraded 1.0 and a fresh 1.1 are the same.

\echo Use "ALTER EXTENSION mdm_user UPDATE TO '1.1'" to load this file. \quit

-- Issue 16, bytes per Mac: an identity certificate is kept once.  The bound
-- certificate is in mdm.device_identities.cert_der; nano_devices.identity_cert
-- keeps only an Authenticate's certificate that is not the bound one.  Rows
-- written before keep their copy until the device's next Authenticate.
-- Authenticate: (re-)enrollment of a device.  raw is NULL when the message
-- is logged (src/checkin_path.c): a message is kept in one place only.  So
-- is its identity certificate: the bound one (checked or bound before this
-- runs) is in mdm.device_identities, and nano_devices.identity_cert keeps
-- only one that is not.
CREATE OR REPLACE FUNCTION mdm_internal._checkin_authenticate(p_device_id text, msg jsonb, raw bytea,
                                          p_identity_cert bytea) RETURNS mdm.reply
    LANGUAGE plpgsql AS $$
DECLARE
    -- now(), read once: Citus takes no STABLE function inside a CASE of an UPDATE
    at timestamptz := now();
    unbound_cert bytea := p_identity_cert;
BEGIN
    IF p_identity_cert IS NOT NULL THEN
        PERFORM FROM mdm.device_identities i
        WHERE i.device_id = p_device_id AND i.cert_sha256 = sha256(p_identity_cert);
        IF FOUND THEN
            unbound_cert := NULL;
        END IF;
    END IF;
    INSERT INTO mdm.nano_devices AS d
        (id, serial_number, device_name, model, model_name, product_name, os_version,
         build_version, imei, meid, identity_cert, authenticate, authenticate_at)
    VALUES (p_device_id, msg->>'SerialNumber', msg->>'DeviceName', msg->>'Model',
            msg->>'ModelName', msg->>'ProductName', msg->>'OSVersion', msg->>'BuildVersion',
            msg->>'IMEI', msg->>'MEID', unbound_cert, raw, now())
    ON CONFLICT (id) DO UPDATE SET
        serial_number = excluded.serial_number, device_name = excluded.device_name,
        model = excluded.model, model_name = excluded.model_name,
        product_name = excluded.product_name, os_version = excluded.os_version,
        build_version = excluded.build_version, imei = excluded.imei, meid = excluded.meid,
        -- a message without a certificate keeps the last one
        identity_cert = CASE WHEN p_identity_cert IS NULL THEN d.identity_cert
                             ELSE excluded.identity_cert END,
        authenticate = excluded.authenticate, authenticate_at = excluded.authenticate_at,
        checked_out_at = NULL, updated_at = excluded.updated_at;

    -- Serialise with writers that add work for the device's channels: every
    -- row they insert (queue items, push jobs, profile deliveries) holds a
    -- foreign-key lock (FOR KEY SHARE) on its enrollment until they commit,
    -- and FOR UPDATE waits for it, so the statements below see that work
    -- and clear it; a writer that comes later waits for this transaction
    -- and sees the channels disabled.  In id order, as writers insert in
    -- (device_id, id) order, so neither can hold one lock the other waits
    -- for while waiting for another.  See docs/queue.md (concurrency).
    PERFORM FROM mdm.nano_enrollments WHERE device_id = p_device_id ORDER BY id FOR UPDATE;
    -- a re-enrollment: every channel waits for its next TokenUpdate; the
    -- device channel, which this message came on, was seen now
    UPDATE mdm.nano_enrollments
    SET enabled = false, updated_at = now(),
        last_seen_at = CASE WHEN id = p_device_id THEN at ELSE last_seen_at END
    WHERE device_id = p_device_id AND (enabled OR id = p_device_id);
    UPDATE mdm.device_secrets SET bootstrap_token = NULL, bootstrap_token_at = now()
    WHERE device_id = p_device_id AND bootstrap_token IS NOT NULL;
    -- and the commands still waiting for any of its channels are dropped,
    -- with the pushes for them (the old tokens are void)
    UPDATE mdm.nano_enrollment_queue SET active = false, cleared_at = now(),
           cleared_reason = 're-enrollment'
    WHERE device_id = p_device_id AND active;
    UPDATE mdm.push_jobs SET state = 'superseded', finished_at = now(), apns_reason = 're-enrollment'
    WHERE device_id = p_device_id AND state = 'pending';
    -- a new enrollment starts without managed profiles: reconcile delivers
    -- them again once its channels have their TokenUpdate
    DELETE FROM mdm.profile_deliveries WHERE device_id = p_device_id;
    RETURN mdm_internal._reply_empty();
END $$;
COMMENT ON COLUMN mdm.nano_devices.identity_cert IS
    'Identity certificate (DER) of the last Authenticate that carried one, when it is not the bound one; NULL when it is (mdm.device_identities.cert_der: the certificate is kept once)';
