-- NanoMDM's admin API (docs/frontend.md): the request's pieces in, the
-- HTTP status and NanoMDM's JSON object (APIResult, PushCertResponse,
-- ErrorResponse of its openapi.yaml) out, so that a front end only writes
-- the answer.  Errors are answered, not raised: the status comes from the
-- admin column of the SQLSTATE table in docs/front-end.md.  For mdm_admin.

-- HTTP status of an admin call that raised (docs/front-end.md).
CREATE FUNCTION mdm_internal._api_http_status(sqlstate text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN sqlstate IN ('22P03', '2200M', '22P02', '22021', '22003', '22008', '22007', '22030',
                          '22023', '22004', '0A000', '54000') THEN 400
        WHEN sqlstate = '42704' THEN 404
        WHEN sqlstate IN ('23505', '55000') THEN 409
        WHEN sqlstate = '23M01' THEN 403
        WHEN sqlstate IN ('53200', '40001', '40P01', '57P01', '57P02', '57P03')
             OR sqlstate LIKE '08%' THEN 503
        ELSE 500
    END;

-- What became of the push of each enrollment, in APIResult's per-ID form:
-- NanoMDM reports the APNs id of a push it sent; pushes here are jobs sent
-- by the front end's push sender, so push_result names the pending job and
-- push_error says why there is none, or why it cannot be sent yet.
-- PL/pgSQL rather than SQL: its plan is kept for the session (a SQL
-- function's is made again on every call of the statement that calls it).
CREATE FUNCTION mdm_internal._api_push_status(enrollment_ids text[]) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT coalesce(jsonb_object_agg(e.id, CASE
            WHEN NOT e.enabled THEN jsonb_build_object('push_error',
                'not pushed: the enrollment is not enabled (checked out, or enrolling again)')
            WHEN e.token_invalid_at IS NOT NULL THEN jsonb_build_object('push_error',
                format('not pushed: APNs refused the token (%s); the next TokenUpdate pushes',
                       coalesce(e.token_invalid_reason, 'no reason given')))
            -- (a fan-out's targets get their jobs when a push sender claims
            -- them: schema/40_push.sql; never distributed, where every push
            -- is a job)
            WHEN j.id IS NULL AND cardinality(enrollment_ids) > mdm_internal._setting('mdm.push_fanout_threshold')::integer
                 AND NOT mdm_internal._distributed()
                THEN jsonb_build_object('push_result', 'push waiting in a fan-out')
            WHEN j.id IS NULL THEN jsonb_build_object('push_error', 'no push job')
            WHEN c.topic IS NULL THEN jsonb_build_object('push_error',
                format('push job %s waits for a push certificate for topic "%s"', j.id, e.topic))
            ELSE jsonb_build_object('push_result', format('push job %s pending', j.id))
        END), '{}'::jsonb)
        FROM mdm.nano_enrollments e
        LEFT JOIN mdm.push_jobs j
               ON j.device_id = e.device_id AND j.enrollment_id = e.id AND j.state = 'pending'
        LEFT JOIN mdm.push_certs c ON c.topic = e.topic
        WHERE (e.device_id, e.id) IN (SELECT split_part(x.id, ':', 1), x.id
                                      FROM unnest(enrollment_ids) x(id)));
END $$;

-- IDs (distinct) that name no enrollment.  PL/pgSQL for its kept plan.
CREATE FUNCTION mdm_internal._api_unknown_ids(enrollment_ids text[]) RETURNS text[]
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT array_agg(DISTINCT x.id ORDER BY x.id)
        FROM unnest(enrollment_ids) x(id)
        WHERE NOT EXISTS (SELECT FROM mdm.nano_enrollments e
                          WHERE e.device_id = split_part(x.id, ':', 1) AND e.id = x.id));
END $$;

-- 200 when no ID failed, 500 when all did, else 207 (NanoMDM's rule).
CREATE FUNCTION mdm_internal._api_result_status(per_id jsonb, n_ids integer, error_key text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    RETURN (
        SELECT CASE WHEN count(*) = 0 THEN 200 WHEN count(*) >= n_ids THEN 500 ELSE 207 END
        FROM jsonb_each(coalesce(per_id, '{}')) r
        WHERE r.value ? error_key);

-- PUT /v1/enqueue/{ids}[?nopush=1]: body is a full command plist (Command
-- and CommandUUID, XML or binary), queued with its CommandUUID.  Unknown
-- IDs and channels that cannot take the command get a per-ID
-- command_error and the others get the command (207); a command refused
-- as a whole (not a command, unknown RequestType, CommandUUID taken) is
-- answered with command_error and the status of its SQLSTATE.
CREATE FUNCTION mdm.api_enqueue(enrollment_ids text[], command bytea, nopush boolean DEFAULT false,
                                OUT status integer, OUT result jsonb)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cmd jsonb;
    parts record;
    rtype text;
    rt mdm.apple_request_types;
    per_id jsonb;
    ok_ids text[];
    st text;
    msg text;
BEGIN
    nopush := coalesce(nopush, false);
    IF enrollment_ids IS NULL OR cardinality(enrollment_ids) = 0 OR '' = ANY (enrollment_ids) THEN
        status := 400;
        result := jsonb_build_object('error', 'no enrollment ID in the path');
        RETURN;
    END IF;
    BEGIN
        cmd := mdm.plist_to_jsonb(command);
        IF cmd IS NULL OR jsonb_typeof(cmd) <> 'object' OR NOT cmd ? 'Command' THEN
            RAISE EXCEPTION 'the body is not a command plist (a dictionary with Command and CommandUUID)'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        parts := mdm_internal._command_parts(cmd);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        status := mdm_internal._api_http_status(st);
        result := jsonb_build_object('error', msg, 'command_error', msg);
        RETURN;
    END;
    rtype := parts.command->>'RequestType';
    result := jsonb_build_object('command_uuid', parts.command_uuid, 'request_type', rtype);
    IF nopush THEN
        result := result || '{"no_push": true}';
    END IF;
    SELECT * INTO rt FROM mdm.apple_request_types WHERE request_type = rtype;
    WITH t AS (
        SELECT ids.id,
               CASE WHEN e.id IS NULL THEN 'unknown enrollment'
                    WHEN rt.request_type IS NOT NULL
                         AND NOT mdm_internal._request_allowed(rt, e.type, mdm.device_platform(d.model))
                    THEN format('RequestType "%s" is not supported on this enrollment''s channel (%s)',
                                rtype, e.type)
               END AS error
        FROM (SELECT DISTINCT x.id FROM unnest(enrollment_ids) x(id)) ids
        LEFT JOIN mdm.nano_enrollments e ON e.device_id = split_part(ids.id, ':', 1) AND e.id = ids.id
        LEFT JOIN mdm.nano_devices d ON d.id = e.device_id)
    SELECT coalesce(jsonb_object_agg(t.id, jsonb_build_object('command_error', t.error))
                        FILTER (WHERE t.error IS NOT NULL), '{}'),
           array_agg(t.id ORDER BY t.id) FILTER (WHERE t.error IS NULL)
    INTO per_id, ok_ids
    FROM t;
    IF ok_ids IS NULL THEN
        status := 500;
        result := result || jsonb_build_object(
            'command_error', 'no enrollment can take the command: nothing was queued',
            'status', per_id);
        RETURN;
    END IF;
    BEGIN
        PERFORM mdm.enqueue(ok_ids, cmd, 0, false, NOT nopush);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        status := mdm_internal._api_http_status(st);
        result := result || jsonb_build_object('error', msg, 'command_error', msg);
        IF per_id <> '{}' THEN
            result := result || jsonb_build_object('status', per_id);
        END IF;
        RETURN;
    END;
    IF NOT nopush THEN
        per_id := per_id || mdm_internal._api_push_status(ok_ids);
    END IF;
    IF per_id <> '{}' THEN
        result := result || jsonb_build_object('status', per_id);
    END IF;
    status := CASE WHEN per_id @? '$.*.command_error' OR per_id @? '$.*.push_error' THEN 207 ELSE 200 END;
END $$;
COMMENT ON FUNCTION mdm.api_enqueue(text[], bytea, boolean) IS
    'NanoMDM API PUT /v1/enqueue: queue a command plist to enrollments; returns the HTTP status and APIResult';

-- GET /v1/push/{ids}: a push job for each enrollment.
CREATE FUNCTION mdm.api_push(enrollment_ids text[], OUT status integer, OUT result jsonb)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    unknown text[];
    known text[];
    per_id jsonb;
    st text;
    msg text;
BEGIN
    IF enrollment_ids IS NULL OR cardinality(enrollment_ids) = 0 OR '' = ANY (enrollment_ids) THEN
        status := 400;
        result := jsonb_build_object('error', 'no enrollment ID in the path');
        RETURN;
    END IF;
    unknown := mdm_internal._api_unknown_ids(enrollment_ids);
    SELECT array_agg(DISTINCT x.id) INTO known
    FROM unnest(enrollment_ids) x(id) WHERE x.id <> ALL (coalesce(unknown, '{}'));
    per_id := coalesce((SELECT jsonb_object_agg(u, '{"push_error": "unknown enrollment"}'::jsonb)
                        FROM unnest(unknown) u), '{}');
    IF known IS NOT NULL THEN
        BEGIN
            PERFORM mdm.push(known);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            status := mdm_internal._api_http_status(st);
            result := jsonb_build_object('error', msg, 'push_error', msg);
            RETURN;
        END;
        per_id := per_id || mdm_internal._api_push_status(known);
    END IF;
    result := jsonb_build_object('status', per_id);
    status := mdm_internal._api_result_status(per_id, (SELECT count(*) FROM jsonb_object_keys(per_id))::integer,
                                     'push_error');
END $$;
COMMENT ON FUNCTION mdm.api_push(text[]) IS
    'NanoMDM API GET /v1/push: push jobs for enrollments; returns the HTTP status and APIResult';

-- {"topic", "not_after"} of a stored certificate.
CREATE FUNCTION mdm_internal._api_pushcert_response(p_topic text) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN (SELECT jsonb_build_object('topic', c.topic,
                                      'not_after', to_char(c.not_after AT TIME ZONE 'UTC',
                                                           'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
            FROM mdm.push_certs c WHERE c.topic = p_topic);

-- PUT /v1/pushcert: a PEM certificate and its unencrypted key, concatenated.
CREATE FUNCTION mdm.api_pushcert(pem bytea, OUT status integer, OUT result jsonb)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    body text;
    cert_pem text;
    key_pem text;
    st text;
    msg text;
BEGIN
    BEGIN
        IF pem IS NULL OR length(pem) = 0 THEN
            RAISE EXCEPTION 'the body is empty: send the certificate and its key, PEM, concatenated'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        body := convert_from(pem, 'UTF8');
        -- base64 has no '-': a block ends at the first '-----END'
        cert_pem := (regexp_match(body, '-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----'))[1];
        key_pem := (regexp_match(body,
            '(-----BEGIN (RSA |EC )?PRIVATE KEY-----[^-]*-----END (RSA |EC )?PRIVATE KEY-----)'))[1];
        IF cert_pem IS NULL OR key_pem IS NULL THEN
            RAISE EXCEPTION 'the body has no PEM %', CASE WHEN cert_pem IS NULL THEN 'certificate'
                                                          ELSE 'unencrypted private key' END
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- two statements: the STABLE reader sees what the upload wrote
        -- only in a later statement
        body := mdm.upload_push_cert(cert_pem || E'\n', key_pem || E'\n');
        result := mdm_internal._api_pushcert_response(body);
        status := 200;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        status := mdm_internal._api_http_status(st);
        result := jsonb_build_object('error', msg);
    END;
END $$;
COMMENT ON FUNCTION mdm.api_pushcert(bytea) IS
    'NanoMDM API PUT /v1/pushcert: store a push certificate and key (PEM, concatenated); returns the HTTP status and PushCertResponse';

-- GET /v1/pushcert?topic=
CREATE FUNCTION mdm.api_pushcert_get(topic text, OUT status integer, OUT result jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF topic IS NULL OR topic = '' THEN
        status := 400;
        result := jsonb_build_object('error', 'missing topic query parameter');
        RETURN;
    END IF;
    result := mdm_internal._api_pushcert_response(topic);
    IF result IS NULL THEN
        status := 404;
        result := jsonb_build_object('error', format('no push certificate for topic "%s"', topic));
    ELSE
        status := 200;
    END IF;
END $$;
COMMENT ON FUNCTION mdm.api_pushcert_get(text) IS
    'NanoMDM API GET /v1/pushcert: topic and expiry of a stored push certificate';

REVOKE ALL ON FUNCTION mdm_internal._api_http_status(text), mdm_internal._api_push_status(text[]),
    mdm_internal._api_unknown_ids(text[]), mdm_internal._api_result_status(jsonb, integer, text),
    mdm_internal._api_pushcert_response(text), mdm.api_enqueue(text[], bytea, boolean),
    mdm.api_push(text[]), mdm.api_pushcert(bytea), mdm.api_pushcert_get(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mdm.api_enqueue(text[], bytea, boolean), mdm.api_push(text[]),
    mdm.api_pushcert(bytea), mdm.api_pushcert_get(text) TO mdm_admin;
