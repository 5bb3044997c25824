-- Security: device identities bound to devices, and least-privilege roles.
--
-- Binding rule (docs/security.md):
--   - the identity a device presents in its first Authenticate is bound to
--     it (trust on first use); when device_identity trust anchors are
--     stored, it must chain to one of them and be valid, and then any
--     message may bind it.  Without anchors, no other message binds: a
--     device with no binding (enrolled while mdm.require_identity was off,
--     or released by an administrator) must enroll again;
--   - every later message of the device or of any of its user channels must
--     present that same certificate (the user channel uses the device's);
--   - a certificate bound to one device is refused for any other;
--   - a new certificate replaces the binding only on an Authenticate whose
--     certificate chains to a stored anchor, or after an administrator
--     called mdm.release_device_identity().  A new Authenticate alone never
--     does: that would let anyone take over a UDID.

--   - a device migrated from another server (docs/migration.md) is bound
--     'imported' by the SHA-256 its old server kept (no DER), or, taken in
--     through mdm.migrate_checkin() or import_nanomdm(bind_on_next_message),
--     bound to the certificate of its 'next message' (cert_sha256 NULL until then).
CREATE TABLE mdm.device_identities (
    device_id text PRIMARY KEY,
    cert_sha256 bytea,
    cert_der bytea,
    not_after timestamptz,
    bound_via text NOT NULL CHECK (bound_via IN ('first use', 'trust anchor', 'imported',
                                                 'next message')),
    bound_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((cert_sha256 IS NULL) = (bound_via = 'next message')),
    CHECK ((cert_der IS NOT NULL AND not_after IS NOT NULL)
           OR bound_via IN ('imported', 'next message'))
);
COMMENT ON TABLE mdm.device_identities IS
    'The identity certificate bound to each device; its user channels present the same one';
SELECT pg_catalog.pg_extension_config_dump('mdm.device_identities', '');

-- "One certificate, one device": every bound certificate by its hash.
-- Apart from device_identities so that each table has one key: a message
-- checks its identity by device (device_identities), and only a binding
-- (a first Authenticate, a re-binding, a release) touches this table, by
-- certificate.  Distributed, the two are sharded by their own keys
-- (docs/citus.md).
CREATE TABLE mdm.identity_certs (
    cert_sha256 bytea PRIMARY KEY,
    device_id text NOT NULL
);
COMMENT ON TABLE mdm.identity_certs IS
    'The device each bound identity certificate belongs to (a certificate is bound to one device only)';
COMMENT ON COLUMN mdm.identity_certs.cert_sha256 IS 'SHA-256 of a bound identity certificate in DER';
COMMENT ON COLUMN mdm.identity_certs.device_id IS 'The device it is bound to (mdm.device_identities)';
SELECT pg_catalog.pg_extension_config_dump('mdm.identity_certs', '');

-- Whether a message's certificate is the one bound to its device, and
-- still good, is part of the dispatchers' lookups (src/checkin_path.c,
-- src/connect_path.c): by device, never by certificate across the fleet;
-- _check_identity() handles everything else.

CREATE FUNCTION mdm_internal._verify_identity_chain(cert_der bytea, anchors_pem text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'mdm_verify_identity_chain'
    LANGUAGE C STABLE STRICT;

-- The device_identity trust anchors as one PEM text, or NULL when there are none.
-- (A quoted body, not RETURN: Citus' local execution sends the text of a
-- SQL-standard body as a query.)
CREATE FUNCTION mdm_internal._identity_anchors() RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT string_agg(cert_pem, E'\n' ORDER BY id) FROM mdm.trust_anchors
    WHERE purpose = 'device_identity'
$$;

CREATE FUNCTION mdm_internal._refuse_identity(message text, detail text, hint text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    IF hint IS NULL THEN
        RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_authorization_specification', DETAIL = detail;
    END IF;
    RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_authorization_specification', DETAIL = detail,
                                       HINT = hint;
END $$;

-- Check (and on first use, bind) the identity of a message of a device.
CREATE FUNCTION mdm_internal._check_identity(p_device_id text, p_authenticate boolean, cert bytea,
                                    cert_sha256 bytea, not_after timestamptz) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    b mdm.device_identities;
    anchors text;
    anchored boolean;
BEGIN
    IF cert IS NULL THEN
        IF mdm_internal._setting('mdm.require_identity') = 'on' THEN
            PERFORM mdm_internal._refuse_identity('message carries no device identity',
                'The front end must pass the client certificate or the Mdm-Signature header (mdm.require_identity is on).');
        END IF;
        RETURN;
    END IF;

    SELECT * INTO b FROM mdm.device_identities WHERE device_id = p_device_id;
    IF FOUND AND b.bound_via = 'next message' THEN
        PERFORM mdm_internal._bind_next_message(p_device_id, cert, cert_sha256, not_after);
        RETURN;
    END IF;
    IF FOUND AND b.cert_sha256 = cert_sha256 THEN
        IF b.bound_via = 'trust anchor' AND b.not_after < now() THEN
            PERFORM mdm_internal._refuse_identity('device identity certificate has expired',
                format('It expired at %s.', b.not_after));
        END IF;
        RETURN;
    END IF;

    anchors := mdm_internal._identity_anchors();
    anchored := anchors IS NOT NULL AND mdm_internal._verify_identity_chain(cert, anchors);
    IF FOUND THEN
        -- another certificate for a bound device
        IF NOT (p_authenticate AND anchored) THEN
            PERFORM mdm_internal._refuse_identity(
                format('device identity does not match device "%s"', p_device_id),
                CASE WHEN p_authenticate AND anchors IS NULL
                     THEN 'The device is bound to another certificate; with no trust anchors stored, only an administrator can release it (mdm.release_device_identity).'
                     WHEN p_authenticate
                     THEN 'The device is bound to another certificate, and this one does not chain to a stored trust anchor.'
                     ELSE 'The message comes with a certificate other than the one bound to the device.' END,
                CASE WHEN p_authenticate
                     THEN 'A device that enrolls again gets a new identity. Store the CA that issues identities (your SCEP CA) as a device_identity trust anchor so that re-enrollments are accepted: INSERT INTO mdm.trust_anchors (purpose, cert_pem) VALUES (''device_identity'', ''<PEM>''). ' || format('For this device alone: SELECT mdm.release_device_identity(%L).', p_device_id) END);
        END IF;
    ELSIF anchors IS NOT NULL AND NOT anchored THEN
        PERFORM mdm_internal._refuse_identity('device identity certificate is not trusted',
            'It does not chain to a stored device_identity trust anchor, or it is not valid now.');
    ELSIF NOT p_authenticate AND NOT anchored THEN
        -- trust on first use happens at enrollment only: else whoever
        -- speaks first for a device with no binding would own it
        IF mdm_internal._setting('mdm.require_identity') = 'on' THEN
            PERFORM mdm_internal._refuse_identity(format('device "%s" has no bound identity', p_device_id),
                'An identity is bound at the device''s Authenticate; the device enrolled while mdm.require_identity was off, or its identity was released. It must enroll again.');
        END IF;
        RETURN;
    END IF;
    IF b.device_id IS NOT NULL THEN
        -- re-binding by a trust anchor: the old certificate is free again
        PERFORM mdm_internal._claim_identity_cert(cert_sha256, p_device_id);
        DELETE FROM mdm.identity_certs c WHERE c.cert_sha256 = b.cert_sha256 AND c.device_id = p_device_id;
        UPDATE mdm.device_identities i
        SET cert_sha256 = _check_identity.cert_sha256, cert_der = cert,
            not_after = _check_identity.not_after, bound_via = 'trust anchor', bound_at = now()
        WHERE i.device_id = p_device_id;
        RETURN;
    END IF;
    -- first use; when another message of the device binds at the same time,
    -- the first to commit wins and this one must match it
    INSERT INTO mdm.device_identities (device_id, cert_sha256, cert_der, not_after, bound_via)
    VALUES (p_device_id, cert_sha256, cert, not_after,
            CASE WHEN anchored THEN 'trust anchor' ELSE 'first use' END)
    ON CONFLICT (device_id) DO NOTHING;
    IF NOT FOUND THEN
        PERFORM FROM mdm.device_identities i
        WHERE i.device_id = p_device_id AND i.cert_sha256 = _check_identity.cert_sha256;
        IF NOT FOUND THEN
            PERFORM mdm_internal._refuse_identity(format('device identity does not match device "%s"', p_device_id),
                'Another certificate was bound to the device at the same time.');
        END IF;
    END IF;
    PERFORM mdm_internal._claim_identity_cert(cert_sha256, p_device_id);
END $$;

-- Record that a certificate is bound to a device, refusing one bound to
-- another device.  When two devices bind one certificate at the same time,
-- the second waits for the first (the primary key) and is refused.
CREATE FUNCTION mdm_internal._claim_identity_cert(p_cert_sha256 bytea, p_device_id text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    owner text;
BEGIN
    INSERT INTO mdm.identity_certs (cert_sha256, device_id) VALUES (p_cert_sha256, p_device_id)
    ON CONFLICT (cert_sha256) DO NOTHING;
    IF NOT FOUND THEN
        SELECT c.device_id INTO owner FROM mdm.identity_certs c WHERE c.cert_sha256 = p_cert_sha256;
        IF owner IS DISTINCT FROM p_device_id THEN
            PERFORM mdm_internal._refuse_identity('device identity belongs to another device',
                'A certificate is bound to one device only.');
        END IF;
    END IF;
END $$;

-- A migrated device waiting for its binding: the certificate of the message
-- it sends first is bound (it must chain to an anchor when there are any).
CREATE FUNCTION mdm_internal._bind_next_message(p_device_id text, cert bytea, p_cert_sha256 bytea,
                                       p_not_after timestamptz) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    anchors text := mdm_internal._identity_anchors();
    anchored boolean := anchors IS NOT NULL AND mdm_internal._verify_identity_chain(cert, anchors);
BEGIN
    IF anchors IS NOT NULL AND NOT anchored THEN
        PERFORM mdm_internal._refuse_identity('device identity certificate is not trusted',
            'It does not chain to a stored device_identity trust anchor, or it is not valid now.');
    END IF;
    UPDATE mdm.device_identities i
    SET cert_sha256 = p_cert_sha256, cert_der = cert, not_after = p_not_after,
        bound_via = CASE WHEN anchored THEN 'trust anchor' ELSE 'first use' END, bound_at = now()
    WHERE i.device_id = p_device_id AND i.bound_via = 'next message';
    IF FOUND THEN
        -- one certificate, one device (refused when bound elsewhere)
        PERFORM mdm_internal._claim_identity_cert(p_cert_sha256, p_device_id);
    ELSE
        -- another message of the device bound it meanwhile: this one must match
        PERFORM FROM mdm.device_identities i
        WHERE i.device_id = p_device_id AND i.cert_sha256 = p_cert_sha256;
        IF NOT FOUND THEN
            PERFORM mdm_internal._refuse_identity(format('device identity does not match device "%s"', p_device_id),
                'Another certificate was bound to the device at the same time.');
        END IF;
    END IF;
END $$;

CREATE FUNCTION mdm.release_device_identity(device_id text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    released bytea;
BEGIN
    DELETE FROM mdm.device_identities i WHERE i.device_id = release_device_identity.device_id
    RETURNING i.cert_sha256 INTO released;
    IF released IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM mdm.identity_certs c
    WHERE c.cert_sha256 = released AND c.device_id = release_device_identity.device_id;
    RETURN true;
END $$;
COMMENT ON FUNCTION mdm.release_device_identity(text) IS
    'Release a device''s identity binding, e.g. after a wipe: its next Authenticate binds a new certificate';

-- Roles.  They are cluster-wide, so they are created only if missing (and
-- stay when the extension is dropped); privileges are this database's.
--   mdm_frontend: the HTTP front end; calls the device endpoints and the
--                 push calls, reads no table
--   mdm_admin:    commands, profiles, labels, certificates, maintenance
--   mdm_reader:   reporting; reads tables and views without secrets
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mdm_frontend', 'mdm_admin', 'mdm_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mdm FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mdm_internal FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA mdm FROM PUBLIC;
GRANT USAGE ON SCHEMA mdm TO mdm_frontend, mdm_admin, mdm_reader;

-- the pure conversions, to everyone who uses the schema
GRANT EXECUTE ON FUNCTION mdm.plist_to_jsonb(bytea), mdm.jsonb_to_plist(jsonb), mdm.plist_data(jsonb),
    mdm.plist_date(jsonb), mdm.plist_data_value(bytea), mdm.device_platform(text),
    mdm.raw_message_bytes(mdm.raw_message), mdm.raw_message_pack(bytea)
    TO mdm_frontend, mdm_admin, mdm_reader;

GRANT EXECUTE ON FUNCTION mdm.checkin(bytea, bytea, text), mdm.connect(bytea, bytea, text),
    mdm.claim_pushes(integer), mdm.push_result(bigint, integer, text, text),
    mdm.push_results(bigint[], integer[], text[], text[])
    TO mdm_frontend;
GRANT EXECUTE ON FUNCTION mdm.push_backlog_age() TO mdm_frontend, mdm_admin, mdm_reader;

GRANT EXECUTE ON FUNCTION
    mdm.enqueue(text[], jsonb, integer, boolean, boolean),
    mdm.enqueue(text[], bytea, integer, boolean, boolean),
    mdm.enqueue(text[], text, integer, boolean, boolean),
    mdm.push(text[]), mdm.upload_push_cert(text, text),
    mdm.enrollment_profile(text, uuid, text, text, integer, boolean, text[], jsonb, text, text),
    mdm.upload_profile(bytea, boolean), mdm.install_profile(bigint, text[]),
    mdm.remove_profile(bigint, text[]), mdm.bind_profile(bigint, text), mdm.unbind_profile(text),
    mdm.reconcile(integer), mdm.run_maintenance(integer), mdm.release_device_identity(text)
    TO mdm_admin;

-- reading: everything but secrets and raw messages (keys, tokens, raw
-- check-in messages, profile contents, command bodies, application
-- values).  Command results are readable: they are what reporting is for,
-- and may hold sensitive answers (ActivationLockBypassCode, say).
GRANT SELECT (id, serial_number, device_name, model, model_name, product_name, os_version,
              build_version, imei, meid, authenticate_at, enrolled_at, checked_out_at, updated_at)
    ON mdm.nano_devices TO mdm_reader, mdm_admin;
GRANT SELECT (device_id, id, user_short_name, user_long_name, user_authenticate_at,
              user_authenticate_digest_at, accepted_at, declined_at, created_at, updated_at)
    ON mdm.nano_users TO mdm_reader, mdm_admin;
GRANT SELECT ON mdm.nano_command_results, mdm.orphan_reports,
    mdm.profile_payloads, mdm.profile_bindings, mdm.labels, mdm.label_enrollments, mdm.idp_groups,
    mdm.idp_group_members, mdm.label_idp_users, mdm.idp_user_enrollments, mdm.idp_user_logins,
    mdm.profile_assignments, mdm.profile_deliveries, mdm.trust_anchors, mdm.device_identities,
    mdm.apple_schema_source, mdm.apple_checkin_messages, mdm.apple_request_types, mdm.apple_payload_types,
    mdm.view_queue, mdm.view_command_results, mdm.view_push_certs, mdm.view_push_problems,
    mdm.view_enrollments_without_push_cert, mdm.view_profile_status
    TO mdm_reader, mdm_admin;
GRANT SELECT (device_id, id, user_id, type, topic, enabled, token_update_tally, token_update_at,
              awaiting_configuration, not_on_console, last_seen_at, exchange_started_at,
              token_invalid_at, token_invalid_reason, created_at, updated_at)
    ON mdm.nano_enrollments TO mdm_reader, mdm_admin;
GRANT SELECT (command_uuid, request_type, payload_identifier, payload_scope, created_at)
    ON mdm.nano_commands TO mdm_reader, mdm_admin;
-- (not the plist of a command kept in its item, as not nano_commands.plist)
GRANT SELECT (device_id, id, command_uuid, priority, active, created_at, sent_at, sent_count,
              finished_at, cleared_at, cleared_reason, request_type)
    ON mdm.nano_enrollment_queue TO mdm_reader, mdm_admin;
GRANT SELECT ON mdm.push_fanouts TO mdm_reader, mdm_admin;
GRANT SELECT ON mdm.queue_fanouts TO mdm_reader, mdm_admin;
GRANT SELECT (device_id, id, enrollment_id, state, created_at, not_before, attempts, claimed_at,
              finished_at, apns_status, apns_reason, apns_id)
    ON mdm.push_jobs TO mdm_reader, mdm_admin;
GRANT SELECT (device_id, job_id, attempt, apns_status, apns_reason, apns_id, reported_at)
    ON mdm.push_attempts TO mdm_reader, mdm_admin;
GRANT SELECT (device_id, id, enrollment_id, message_type, received_at, identity_cert_sha256, reply_status)
    ON mdm.checkin_messages TO mdm_reader, mdm_admin;
GRANT SELECT (id, payload_identifier, version, payload_uuid, display_name, scope, scope_from, sha256,
              signed, signer_subject, signer_sha256, variables, channel_mismatch_allowed, uploaded_at)
    ON mdm.profiles TO mdm_reader, mdm_admin;

-- functions the views call with the reader's rights: a view names them by
-- OID, so EXECUTE is enough and mdm_internal stays without USAGE for anyone
GRANT EXECUTE ON FUNCTION mdm_internal._desired_profiles(text[]), mdm_internal._all_device_ids(), mdm_internal._setting(text)
    TO mdm_reader, mdm_admin;

-- administering: labels, IdP mapping, assignments, values, trust anchors
GRANT INSERT, UPDATE, DELETE ON mdm.labels, mdm.label_enrollments, mdm.idp_groups,
    mdm.idp_group_members, mdm.label_idp_users, mdm.idp_user_enrollments, mdm.idp_user_logins,
    mdm.profile_assignments, mdm.enrollment_values, mdm.trust_anchors
    TO mdm_admin;
GRANT SELECT ON mdm.enrollment_values, mdm.profiles TO mdm_admin;
-- No sequence privileges: the admin-writable tables with generated IDs
-- (labels, trust_anchors) use identity columns, whose INSERTs need none.
-- (nextval()/currval() on any sequence of the schema stay the owner's;
-- use INSERT ... RETURNING id.)
