--
-- Security: the device identity (client certificate or Mdm-Signature) is
-- bound to its device at first use and required on every later message of
-- the device and of its user channels; trust anchors; re-binding; the
-- roles and what each may do; pinned search paths.
--
SELECT reset_mdm();
\! sh test/identity_certs.sh results/identity
\set mac_pem `cat results/identity/mac.crt`
\set mac_der `cat results/identity/mac.der.b64`
\set mac2_pem `cat results/identity/mac2.crt`
\set mac_new_pem `cat results/identity/mac-new.crt`
\set ca_pem `cat results/identity/ca.crt`
\set issued_pem `cat results/identity/issued.crt`
\set sig_tokenupdate `cat results/identity/sig-tokenupdate.b64`
\set sig_idle_user `cat results/identity/sig-idle-user.b64`
\set sig_tokenupdate_mac2 `cat results/identity/sig-tokenupdate-mac2.b64`
SET mdm.require_identity = on;
CREATE FUNCTION checkin_as(vector text, cert text, sig text DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT try(format('SELECT mdm.checkin(v(%L), %L::bytea, %L)', vector, convert_to(cert, 'UTF8'), sig))
$$;
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
    SELECT format('devices=%s enrollments=%s tally=%s identities=%s messages=%s',
        (SELECT count(*) FROM mdm.nano_devices), (SELECT count(*) FROM mdm.nano_enrollments),
        (SELECT sum(token_update_tally) FROM mdm.nano_enrollments),
        (SELECT count(*) FROM mdm.device_identities), (SELECT count(*) FROM mdm.checkin_messages))
$$;

-- Without an identity, nothing is accepted while mdm.require_identity is on
SELECT try($$SELECT mdm.checkin(v('checkin/01-authenticate.plist'))$$) AS no_identity;

-- The seed's Mac enrolls with its certificate (PEM); it is bound at first use
SELECT checkin_as('checkin/01-authenticate.plist', :'mac_pem') AS authenticate;
SELECT device_id, bound_via, cert_sha256 = sha256(decode(:'mac_der', 'base64')) AS is_mac_cert
FROM mdm.device_identities;
-- the same certificate in DER, then the user channel with the device's certificate
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'), decode(:'mac_der', 'base64'))).status AS der;
SELECT checkin_as('checkin/05-tokenupdate-user.plist', :'mac_pem') AS user_channel;
SELECT identity_cert_sha256 = sha256(decode(:'mac_der', 'base64')) AS logged_as_der, count(*)
FROM mdm.checkin_messages GROUP BY 1;

-- Another device's certificate cannot act for this UDID, on either channel,
-- and changes nothing
SELECT counts() AS before \gset
SELECT checkin_as('checkin/02-tokenupdate-device.plist', :'mac2_pem') AS other_device_cert;
SELECT checkin_as('checkin/05-tokenupdate-user.plist', :'mac2_pem') AS other_cert_on_user_channel;
SELECT try(format('SELECT mdm.connect(v(%L), %L::bytea)', 'connect/02-idle-user-seed.plist',
                  convert_to(:'mac2_pem', 'UTF8'))) AS other_cert_on_connect;
SELECT checkin_as('checkin/01-authenticate.plist', :'mac2_pem') AS new_authenticate_does_not_rebind;
SELECT counts() = :'before' AS nothing_changed;

-- Mdm-Signature: a CMS signature over the exact body, by the bound certificate
SELECT try(format('SELECT mdm.checkin(v(%L), NULL, %L)', 'checkin/02-tokenupdate-device.plist', :'sig_tokenupdate')) AS valid_signature;
SELECT try(format('SELECT mdm.connect(v(%L), NULL, %L)', 'connect/02-idle-user-seed.plist', :'sig_idle_user')) AS valid_signature_user_channel;
SELECT try(format('SELECT mdm.checkin(v(%L), NULL, %L)', 'checkin/05-tokenupdate-user.plist', :'sig_tokenupdate')) AS signature_over_other_body;
SELECT try(format('SELECT mdm.checkin(v(%L), NULL, %L)', 'checkin/02-tokenupdate-device.plist', :'sig_tokenupdate_mac2')) AS signed_by_other_device;
SELECT try(format('SELECT mdm.checkin(v(%L), %L::bytea, %L)', 'checkin/02-tokenupdate-device.plist',
                  convert_to(:'mac2_pem', 'UTF8'), :'sig_tokenupdate')) AS certificate_and_signature_disagree;
SELECT try(format('SELECT mdm.checkin(v(%L), NULL, %L)', 'checkin/02-tokenupdate-device.plist', 'bm90IGEgc2lnbmF0dXJl')) AS garbage_signature;
SELECT try(format('SELECT mdm.checkin(v(%L), %L::bytea)', 'checkin/02-tokenupdate-device.plist', 'garbage')) AS garbage_certificate;

-- A certificate bound to one device is refused for another
SELECT checkin_as('checkin/20-authenticate-mac2.plist', :'mac_pem') AS reused_certificate;
SELECT checkin_as('checkin/20-authenticate-mac2.plist', :'mac2_pem') AS mac2_own_certificate;

-- Re-binding (a wiped Mac with a new identity): not by a new Authenticate,
-- only after an administrator releases the old binding...
SELECT checkin_as('checkin/01-authenticate.plist', :'mac_new_pem') AS new_identity;
SELECT mdm.release_device_identity('980E3D0B-5A28-537C-B7CB-7AFD15AFB933') AS released;
-- ... and then only by an Authenticate: a device without a binding is not
-- bound by whoever speaks for it first, on either channel
SELECT counts() AS before \gset
SELECT checkin_as('checkin/02-tokenupdate-device.plist', :'mac_new_pem') AS token_update_binds_nothing;
SELECT try(format('SELECT mdm.connect(v(%L), %L::bytea)', 'connect/02-idle-user-seed.plist',
                  convert_to(:'mac2_pem', 'UTF8'))) AS poll_binds_nothing;
SELECT counts() = :'before' AS nothing_changed;
SELECT checkin_as('checkin/01-authenticate.plist', :'mac_new_pem') AS new_identity_after_release;
SELECT checkin_as('checkin/02-tokenupdate-device.plist', :'mac_pem') AS old_identity_now_refused;

-- ... or when the new certificate chains to a stored trust anchor.  With
-- anchors stored, every new binding must chain to one.
INSERT INTO mdm.trust_anchors (purpose, cert_pem) VALUES ('device_identity', :'ca_pem');
SELECT checkin_as('checkin/38-authenticate-sharedipad.plist', :'mac_pem') AS untrusted_new_device;
SELECT checkin_as('checkin/01-authenticate.plist', :'issued_pem') AS rebind_by_anchor;
SELECT device_id, bound_via FROM mdm.device_identities ORDER BY 1;
SELECT checkin_as('checkin/02-tokenupdate-device.plist', :'issued_pem') AS with_anchored_identity;
DELETE FROM mdm.trust_anchors;

-- With the requirement off, messages without identity are accepted; an
-- identity that is given is still checked
SET mdm.require_identity = off;
SELECT try($$SELECT mdm.checkin(v('checkin/02-tokenupdate-device.plist'))$$) AS no_identity_allowed;
SELECT checkin_as('checkin/02-tokenupdate-device.plist', :'mac2_pem') AS wrong_identity_still_refused;
-- the requirement is a superuser setting
CREATE ROLE regress_mdm_someone;
SET ROLE regress_mdm_someone;
SELECT try('SET mdm.require_identity = off') AS ordinary_role;
RESET ROLE;
DROP ROLE regress_mdm_someone;

-- Roles: nothing is granted to PUBLIC
SELECT count(*) AS public_function_grants FROM pg_proc p, aclexplode(p.proacl) a
WHERE p.pronamespace = 'mdm'::regnamespace AND a.grantee = 0;
SELECT count(*) AS public_table_grants FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relnamespace = 'mdm'::regnamespace AND a.grantee = 0;

-- What each role may do.  The front end: the device endpoints and the push
-- calls, no table; the private key only through claim_pushes(); bootstrap
-- tokens only through GetBootstrapToken; no enqueue.
\! sh test/push_certs.sh results/push_certs
\set push_cert `cat results/push_certs/mdm.crt`
\set push_key `cat results/push_certs/mdm.key`
SELECT mdm.upload_push_cert(:'push_cert', :'push_key') IS NOT NULL AS push_cert;
SELECT (mdm.checkin(v('checkin/06-setbootstraptoken.plist'))).status AS bootstrap_token_stored;
SELECT mdm.push(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933']) AS push_job;
SELECT max(id) AS job FROM mdm.push_jobs \gset
CREATE FUNCTION can(statement text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN r = 'ok' THEN 'yes' ELSE 'no: ' || left(r, 60) END FROM try(statement) r
$$;
CREATE TEMP TABLE checks (role text, action text, statement text);
INSERT INTO checks VALUES
    ('mdm_frontend', 'mdm.checkin', $$SELECT mdm.checkin(v('checkin/07-getbootstraptoken.plist'))$$),
    ('mdm_frontend', 'mdm.connect', $$SELECT mdm.connect(v('connect/01-idle-device.plist'))$$),
    ('mdm_frontend', 'mdm.claim_pushes (keys included)', $$SELECT key_pem FROM mdm.claim_pushes()$$),
    ('mdm_frontend', 'mdm.push_result', format('SELECT mdm.push_result(%s, 200)', :job)),
    ('mdm_frontend', 'read push certificate keys', $$SELECT key_pem FROM mdm.push_certs$$),
    ('mdm_frontend', 'read bootstrap tokens', $$SELECT bootstrap_token FROM mdm.device_secrets$$),
    ('mdm_frontend', 'read enrollments', $$SELECT token_hex FROM mdm.nano_enrollments$$),
    ('mdm_frontend', 'mdm.enqueue', $$SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'], '{"RequestType": "ProfileList"}'::jsonb)$$),
    ('mdm_frontend', 'mdm.upload_profile', $$SELECT mdm.upload_profile(v('profiles/02-system-scoped-filevault.mobileconfig'))$$),
    ('mdm_admin', 'mdm.enqueue', $$SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'], '{"RequestType": "ProfileList"}'::jsonb)$$),
    ('mdm_admin', 'mdm.upload_profile', $$SELECT mdm.upload_profile(v('profiles/02-system-scoped-filevault.mobileconfig'))$$),
    ('mdm_admin', 'write labels', $$INSERT INTO mdm.labels (name) VALUES ('admins can')$$),
    ('mdm_admin', 'write trust anchors', $$INSERT INTO mdm.trust_anchors (purpose, cert_pem, note) VALUES ('profile_signer', '-', 'admins can') RETURNING id$$),
    ('mdm_admin', 'nextval on a sequence', $$SELECT nextval('mdm.push_jobs_id_seq')$$),
    ('mdm_admin', 'read view_profile_status', $$SELECT count(*) FROM mdm.view_profile_status$$),
    ('mdm_admin', 'mdm.reconcile', $$SELECT mdm.reconcile()$$),
    ('mdm_admin', 'mdm.checkin', $$SELECT mdm.checkin(v('checkin/07-getbootstraptoken.plist'))$$),
    ('mdm_admin', 'mdm.claim_pushes', $$SELECT mdm.claim_pushes()$$),
    ('mdm_admin', 'read push certificate keys', $$SELECT key_pem FROM mdm.push_certs$$),
    ('mdm_admin', 'read bootstrap tokens', $$SELECT bootstrap_token FROM mdm.device_secrets$$),
    ('mdm_admin', 'write profiles directly', $$DELETE FROM mdm.profiles$$),
    ('mdm_admin', 'mdm.schedule_maintenance', $$SELECT mdm.schedule_maintenance()$$),
    ('mdm_reader', 'read devices and queue views', $$SELECT count(*) FROM mdm.nano_devices, mdm.view_queue$$),
    ('mdm_reader', 'read view_profile_status', $$SELECT count(*) FROM mdm.view_profile_status$$),
    ('mdm_reader', 'read every view', $$SELECT (SELECT count(*) FROM mdm.view_profile_status) + (SELECT count(*) FROM mdm.view_push_problems)
        + (SELECT count(*) FROM mdm.view_command_results) + (SELECT count(*) FROM mdm.view_enrollments_without_push_cert)
        + (SELECT count(*) FROM mdm.view_push_certs)$$),
    ('mdm_reader', 'read enrollment state', $$SELECT id, enabled, last_seen_at FROM mdm.nano_enrollments$$),
    ('mdm_reader', 'read push tokens', $$SELECT token_hex FROM mdm.nano_enrollments$$),
    ('mdm_reader', 'read profile contents', $$SELECT mobileconfig FROM mdm.profiles$$),
    ('mdm_reader', 'read raw check-in messages', $$SELECT body FROM mdm.checkin_messages$$),
    ('mdm_reader', 'mdm.enqueue', $$SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'], '{"RequestType": "ProfileList"}'::jsonb)$$),
    ('mdm_reader', 'mdm.checkin', $$SELECT mdm.checkin(v('checkin/07-getbootstraptoken.plist'))$$);
GRANT SELECT ON vectors TO mdm_frontend, mdm_admin, mdm_reader;
GRANT EXECUTE ON FUNCTION v(text) TO mdm_frontend, mdm_admin, mdm_reader;
CREATE FUNCTION as_role(r text, statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    result := can(statement);
    RESET ROLE;
    RETURN result;
END $$;
SELECT role, action, as_role(role, statement) AS allowed FROM checks;
DELETE FROM mdm.trust_anchors WHERE note = 'admins can';
-- admin inserts need no sequence privilege (identity columns), so none is granted
SELECT count(*) AS sequence_grants FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relnamespace = 'mdm'::regnamespace AND c.relkind = 'S'
  AND a.grantee IN ('mdm_admin'::regrole, 'mdm_reader'::regrole, 'mdm_frontend'::regrole);
-- the front end's GetBootstrapToken returns the token it cannot read
SELECT mdm.plist_to_jsonb(body) ? 'BootstrapToken' AS through_get_bootstrap_token
FROM mdm.checkin(v('checkin/07-getbootstraptoken.plist'));

-- SECURITY DEFINER functions pin their search_path: objects planted in
-- another schema are never used
CREATE SCHEMA evil;
CREATE FUNCTION evil.split_part(text, text, integer) RETURNS text LANGUAGE sql AS $$ SELECT 'hijacked' $$;
CREATE FUNCTION evil.sha256(bytea) RETURNS bytea LANGUAGE sql AS $$ SELECT '\xdead'::bytea $$;
SET search_path = evil, public, pg_catalog;
SELECT mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'], '{"RequestType": "ProfileList"}'::jsonb) IS NOT NULL AS enqueue_unaffected;
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'), convert_to(:'issued_pem', 'UTF8'))).status AS checkin_unaffected;
RESET search_path;
DROP SCHEMA evil CASCADE;

-- raw device messages stay the owner's: mdm_reader and mdm_admin read no
-- Authenticate, UserAuthenticate (DigestResponse included), TokenUpdate,
-- identity certificate or check-in body
SELECT r AS role, t || '.' || c AS raw_column,
       has_column_privilege(r, 'mdm.' || t, c, 'SELECT') AS readable
FROM unnest(ARRAY['mdm_reader', 'mdm_admin']) r,
     (VALUES ('nano_devices', 'authenticate'), ('nano_devices', 'identity_cert'),
             ('nano_users', 'user_authenticate'), ('nano_users', 'user_authenticate_digest'),
             ('nano_enrollments', 'token_update'), ('checkin_messages', 'body')) x(t, c)
ORDER BY 1, 2;
