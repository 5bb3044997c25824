-- Benchmark set-up (test/bench/run): the message generators every workload
-- shares, the floor table, and NanoMDM's PostgreSQL table model in schema
-- nanomdm for "the application way".  Loaded into a throwaway cluster after
-- CREATE EXTENSION mdm_user.
--
-- Every workload builds its message from the device number :d and the
-- channel :u (0 device, 1 user) with the same SQL functions, and reads the
-- device's certificate (DER for mdm_user, its SHA-256 for the application
-- way and the floor) with one primary-key lookup in bench.certs, so all
-- three pay the same per-message overhead; the "harness" workload measures
-- that overhead alone.

CREATE SCHEMA bench;

-- One distinct identity certificate per device (test/bench/gen_certs.py).
CREATE TABLE bench.certs (
    i int PRIMARY KEY,
    der bytea NOT NULL,
    sha256 bytea GENERATED ALWAYS AS (sha256(der)) STORED,
    sha256_hex text GENERATED ALWAYS AS (encode(sha256(der), 'hex')) STORED
);

CREATE FUNCTION bench.udid(i int) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN '0BE0C000-0000-4000-8000-' || lpad(upper(to_hex(i)), 12, '0');
CREATE FUNCTION bench.user_part(i int) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN 'B0B0B0B0-0000-4000-8000-' || lpad(upper(to_hex(i)), 12, '0');
-- enrollment ID of device i's device channel (u = 0) or user channel (u = 1)
CREATE FUNCTION bench.eid(i int, u int) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE WHEN u = 1 THEN bench.udid(i) || ':' || bench.user_part(i) ELSE bench.udid(i) END;
CREATE FUNCTION bench.token(i int, u int) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN decode(md5(i || ':' || u) || md5(u || ':' || i), 'hex');
CREATE FUNCTION bench.push_magic(i int, u int) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN upper(md5('pm' || i || ':' || u)::uuid::text);
CREATE FUNCTION bench.topic() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN 'com.apple.mgmt.External.8f2d1c7a-3b4e-4f5a-9c6d-7e8f9a0b1c2d';

-- The user channel's identity keys, as a Mac sends them.
CREATE FUNCTION bench.user_keys(i int) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN format(E'\t<key>NotOnConsole</key>\n\t<false/>\n'
                  || E'\t<key>UDID</key>\n\t<string>%s</string>\n'
                  || E'\t<key>UserID</key>\n\t<string>%s</string>\n'
                  || E'\t<key>UserLongName</key>\n\t<string>Bench User %s</string>\n'
                  || E'\t<key>UserShortName</key>\n\t<string>bench%s</string>\n',
                  bench.udid(i), bench.user_part(i), i, i);

CREATE FUNCTION bench.plist(inner_keys text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN E'<?xml version="1.0" encoding="UTF-8"?>\n'
        || E'<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
        || E'<plist version="1.0">\n<dict>\n' || inner_keys || E'</dict>\n</plist>\n';

CREATE FUNCTION bench.authenticate_text(i int) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN bench.plist(format(
        E'\t<key>BuildVersion</key>\n\t<string>23F79</string>\n'
        || E'\t<key>DeviceName</key>\n\t<string>Bench Mac %s</string>\n'
        || E'\t<key>MessageType</key>\n\t<string>Authenticate</string>\n'
        || E'\t<key>Model</key>\n\t<string>MacBookPro18,3</string>\n'
        || E'\t<key>ModelName</key>\n\t<string>MacBook Pro</string>\n'
        || E'\t<key>OSVersion</key>\n\t<string>14.5</string>\n'
        || E'\t<key>ProductName</key>\n\t<string>MacBookPro18,3</string>\n'
        || E'\t<key>SerialNumber</key>\n\t<string>BENCH%s</string>\n'
        || E'\t<key>Topic</key>\n\t<string>%s</string>\n'
        || E'\t<key>UDID</key>\n\t<string>%s</string>\n',
        i, lpad(i::text, 7, '0'), bench.topic(), bench.udid(i)));

CREATE FUNCTION bench.tokenupdate_text(i int, u int) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN bench.plist(format(
        E'%s\t<key>MessageType</key>\n\t<string>TokenUpdate</string>\n'
        || E'\t<key>PushMagic</key>\n\t<string>%s</string>\n'
        || E'\t<key>Token</key>\n\t<data>\n\t%s\n\t</data>\n'
        || E'\t<key>Topic</key>\n\t<string>%s</string>\n%s',
        CASE WHEN u = 0 THEN E'\t<key>AwaitingConfiguration</key>\n\t<false/>\n' ELSE '' END,
        bench.push_magic(i, u), encode(bench.token(i, u), 'base64'), bench.topic(),
        CASE WHEN u = 1 THEN bench.user_keys(i)
             ELSE format(E'\t<key>UDID</key>\n\t<string>%s</string>\n', bench.udid(i)) END));

-- A command report: Idle (cmd NULL) or a status about CommandUUID cmd.
CREATE FUNCTION bench.report_text(i int, u int, status text, cmd text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN bench.plist(
        CASE WHEN cmd IS NULL THEN '' ELSE format(E'\t<key>CommandUUID</key>\n\t<string>%s</string>\n', upper(cmd)) END
        || CASE WHEN status = 'Acknowledged' THEN E'\t<key>RequestType</key>\n\t<string>ProfileList</string>\n'
                || E'\t<key>ProfileList</key>\n\t<array/>\n' ELSE '' END
        || format(E'\t<key>Status</key>\n\t<string>%s</string>\n', status)
        || CASE WHEN u = 1 THEN bench.user_keys(i)
                ELSE format(E'\t<key>UDID</key>\n\t<string>%s</string>\n', bench.udid(i)) END);

CREATE FUNCTION bench.authenticate(i int) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN convert_to(bench.authenticate_text(i), 'UTF8');
CREATE FUNCTION bench.tokenupdate(i int, u int) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN convert_to(bench.tokenupdate_text(i, u), 'UTF8');
CREATE FUNCTION bench.report(i int, u int, status text, cmd text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN convert_to(bench.report_text(i, u, status, cmd), 'UTF8');

-- The command a NanoMDM API client uploads: a full {CommandUUID, Command} plist.
CREATE FUNCTION bench.command_text(cmd text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN bench.plist(format(
        E'\t<key>Command</key>\n\t<dict>\n\t\t<key>RequestType</key>\n\t\t<string>ProfileList</string>\n\t</dict>\n'
        || E'\t<key>CommandUUID</key>\n\t<string>%s</string>\n', upper(cmd)));

CREATE FUNCTION bench.command(cmd text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN convert_to(bench.command_text(cmd), 'UTF8');

-- The floor: storing a message takes at least one single-row upsert.
CREATE TABLE bench.floor (
    id text PRIMARY KEY,
    body bytea NOT NULL,
    cert_sha256 bytea,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Load devices first..last (every step-th) through mdm.checkin(), as the
-- devices themselves would: Authenticate, then a TokenUpdate on the device
-- channel and one on the user channel, each with the device's certificate.
CREATE PROCEDURE bench.load_mdm(first int, last int, step int) LANGUAGE plpgsql AS $$
DECLARE
    c bytea;
    s int;
BEGIN
    FOR d IN first..last BY step LOOP
        SELECT der INTO c FROM bench.certs WHERE i = d;
        s := (mdm.checkin(bench.authenticate(d), c)).status;
        s := s + (mdm.checkin(bench.tokenupdate(d, 0), c)).status;
        s := s + (mdm.checkin(bench.tokenupdate(d, 1), c)).status;
        IF s <> 600 THEN
            RAISE EXCEPTION 'loading device % failed: status sum %', d, s;
        END IF;
        IF d % 2000 < step THEN
            COMMIT;
        END IF;
    END LOOP;
END $$;

------------------------------------------------------------------------------
-- NanoMDM's PostgreSQL storage (micromdm/nanomdm storage/pgsql/schema.sql):
-- the same tables, keys, constraints and view.  Its updated_at triggers are
-- left out by default (test/bench/run --nanomdm-triggers adds them): without
-- them the application way does strictly less work per message.
CREATE SCHEMA nanomdm;

CREATE TABLE nanomdm.devices (
    id                  VARCHAR(255) NOT NULL,
    identity_cert       TEXT         NULL,
    serial_number       VARCHAR(127) NULL,
    unlock_token        TEXT         NULL,
    unlock_token_at     TIMESTAMP    NULL,
    authenticate        TEXT         NOT NULL,
    authenticate_at     TIMESTAMP    NOT NULL,
    token_update        TEXT         NULL,
    token_update_at     TIMESTAMP    NULL,
    bootstrap_token_b64 TEXT         NULL,
    bootstrap_token_at  TIMESTAMP    NULL,
    created_at          TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at          TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    CHECK (identity_cert IS NULL OR SUBSTRING(identity_cert FROM 1 FOR 27) = '-----BEGIN CERTIFICATE-----'),
    CHECK (serial_number IS NULL OR serial_number != ''),
    CHECK (unlock_token IS NULL OR LENGTH(unlock_token) > 0),
    CHECK (authenticate != ''),
    CHECK (token_update IS NULL OR token_update != ''),
    CHECK (bootstrap_token_b64 IS NULL OR bootstrap_token_b64 != '')
);
CREATE INDEX serial_number ON nanomdm.devices (serial_number);

CREATE TABLE nanomdm.users (
    id                          VARCHAR(255) NOT NULL,
    device_id                   VARCHAR(255) NOT NULL,
    user_short_name             VARCHAR(255) NULL,
    user_long_name              VARCHAR(255) NULL,
    token_update                TEXT         NULL,
    token_update_at             TIMESTAMP    NULL,
    user_authenticate           TEXT         NULL,
    user_authenticate_at        TIMESTAMP    NULL,
    user_authenticate_digest    TEXT         NULL,
    user_authenticate_digest_at TIMESTAMP    NULL,
    created_at                  TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at                  TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id, device_id),
    UNIQUE (id),
    FOREIGN KEY (device_id) REFERENCES nanomdm.devices (id) ON DELETE CASCADE ON UPDATE CASCADE,
    CHECK (user_short_name IS NULL OR user_short_name != ''),
    CHECK (user_long_name IS NULL OR user_long_name != ''),
    CHECK (token_update IS NULL OR token_update != ''),
    CHECK (user_authenticate IS NULL OR user_authenticate != ''),
    CHECK (user_authenticate_digest IS NULL OR user_authenticate_digest != '')
);

CREATE TABLE nanomdm.enrollments (
    id                 VARCHAR(255) NOT NULL,
    device_id          VARCHAR(255) NOT NULL,
    user_id            VARCHAR(255) NULL,
    type               VARCHAR(31)  NOT NULL,
    topic              VARCHAR(255) NOT NULL,
    push_magic         VARCHAR(127) NOT NULL,
    token_hex          VARCHAR(255) NOT NULL,
    enabled            BOOLEAN      NOT NULL DEFAULT TRUE,
    token_update_tally INTEGER      NOT NULL DEFAULT 1,
    last_seen_at       TIMESTAMP    NOT NULL,
    created_at         TIMESTAMP             DEFAULT CURRENT_TIMESTAMP,
    updated_at         TIMESTAMP             DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    CHECK (id != ''),
    FOREIGN KEY (device_id) REFERENCES nanomdm.devices (id) ON DELETE CASCADE ON UPDATE CASCADE,
    FOREIGN KEY (user_id) REFERENCES nanomdm.users (id) ON DELETE CASCADE ON UPDATE CASCADE,
    UNIQUE (user_id),
    CHECK (type != ''),
    CHECK (topic != ''),
    CHECK (push_magic != ''),
    CHECK (token_hex != '')
);
CREATE INDEX idx_type ON nanomdm.enrollments (type);

CREATE TABLE nanomdm.commands (
    command_uuid VARCHAR(127) NOT NULL,
    request_type VARCHAR(63)  NOT NULL,
    command      TEXT         NOT NULL,
    created_at   TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at   TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (command_uuid),
    CHECK (command_uuid != ''),
    CHECK (request_type != ''),
    CHECK (SUBSTRING(command FROM 1 FOR 5) = '<?xml')
);

CREATE TABLE nanomdm.command_results (
    id            VARCHAR(255) NOT NULL,
    command_uuid  VARCHAR(127) NOT NULL,
    status        VARCHAR(31)  NOT NULL,
    result        TEXT         NOT NULL,
    not_now_at    TIMESTAMP    NULL,
    not_now_tally INTEGER      NOT NULL DEFAULT 0,
    created_at    TIMESTAMP             DEFAULT CURRENT_TIMESTAMP,
    updated_at    TIMESTAMP             DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id, command_uuid),
    FOREIGN KEY (id) REFERENCES nanomdm.enrollments (id) ON DELETE CASCADE ON UPDATE CASCADE,
    FOREIGN KEY (command_uuid) REFERENCES nanomdm.commands (command_uuid) ON DELETE CASCADE ON UPDATE CASCADE,
    CHECK (status != ''),
    CHECK (SUBSTRING(result FROM 1 FOR 5) = '<?xml')
);
CREATE INDEX idx_status ON nanomdm.command_results (status);

CREATE TABLE nanomdm.enrollment_queue (
    id           VARCHAR(255) NOT NULL,
    command_uuid VARCHAR(127) NOT NULL,
    active       BOOLEAN      NOT NULL DEFAULT TRUE,
    priority     SMALLINT     NOT NULL DEFAULT 0,
    created_at   TIMESTAMP             DEFAULT CURRENT_TIMESTAMP,
    updated_at   TIMESTAMP             DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id, command_uuid),
    FOREIGN KEY (id) REFERENCES nanomdm.enrollments (id) ON DELETE CASCADE ON UPDATE CASCADE,
    FOREIGN KEY (command_uuid) REFERENCES nanomdm.commands (command_uuid) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE VIEW nanomdm.view_queue AS
SELECT q.id, q.created_at, q.active, q.priority, c.command_uuid, c.request_type, c.command,
       r.updated_at AS result_updated_at, r.status, r.result
FROM nanomdm.enrollment_queue AS q
INNER JOIN nanomdm.commands AS c ON q.command_uuid = c.command_uuid
LEFT JOIN nanomdm.command_results r ON r.command_uuid = q.command_uuid AND r.id = q.id
ORDER BY q.priority DESC, q.created_at;

CREATE TABLE nanomdm.push_certs (
    topic       VARCHAR(255) NOT NULL,
    cert_pem    TEXT         NOT NULL,
    key_pem     TEXT         NOT NULL,
    stale_token INTEGER      NOT NULL,
    created_at  TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at  TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (topic),
    CHECK (topic != ''),
    CHECK (SUBSTRING(cert_pem FROM 1 FOR 27) = '-----BEGIN CERTIFICATE-----'),
    CHECK (SUBSTRING(key_pem FROM 1 FOR 5) = '-----')
);

CREATE TABLE nanomdm.cert_auth_associations (
    id         VARCHAR(255) NOT NULL,
    sha256     CHAR(64)     NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id, sha256),
    CHECK (id != ''),
    CHECK (sha256 != '')
);

-- NanoMDM's updated_at triggers, for --nanomdm-triggers.
CREATE FUNCTION nanomdm.update_current_timestamp() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END $$;
CREATE PROCEDURE bench.nanomdm_triggers() LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['devices', 'users', 'enrollments', 'commands', 'command_results',
                             'enrollment_queue', 'push_certs', 'cert_auth_associations'] LOOP
        EXECUTE format('CREATE TRIGGER update_at_to_current_timestamp BEFORE UPDATE ON nanomdm.%I
                        FOR EACH ROW EXECUTE PROCEDURE nanomdm.update_current_timestamp()', t);
    END LOOP;
END $$;

-- What NanoMDM holds after devices first..last enrolled (Authenticate,
-- both TokenUpdates, the certificate association), set-based.
CREATE PROCEDURE bench.load_nanomdm(first int, last int) LANGUAGE sql
BEGIN ATOMIC
    INSERT INTO nanomdm.devices (id, identity_cert, serial_number, authenticate, authenticate_at,
                                 token_update, token_update_at)
    SELECT bench.udid(i),
           E'-----BEGIN CERTIFICATE-----\n' || encode(c.der, 'base64') || E'\n-----END CERTIFICATE-----\n',
           'BENCH' || lpad(i::text, 7, '0'), bench.authenticate_text(i), CURRENT_TIMESTAMP,
           bench.tokenupdate_text(i, 0), CURRENT_TIMESTAMP
    FROM generate_series(first, last) i JOIN bench.certs c USING (i);
    INSERT INTO nanomdm.users (id, device_id, user_short_name, user_long_name, token_update, token_update_at)
    SELECT bench.eid(i, 1), bench.udid(i), 'bench' || i, 'Bench User ' || i,
           bench.tokenupdate_text(i, 1), CURRENT_TIMESTAMP
    FROM generate_series(first, last) i;
    INSERT INTO nanomdm.enrollments (id, device_id, user_id, type, topic, push_magic, token_hex, last_seen_at)
    SELECT bench.eid(i, u), bench.udid(i), CASE WHEN u = 1 THEN bench.eid(i, 1) END,
           CASE WHEN u = 1 THEN 'User' ELSE 'Device' END, bench.topic(), bench.push_magic(i, u),
           encode(bench.token(i, u), 'hex'), CURRENT_TIMESTAMP
    FROM generate_series(first, last) i, generate_series(0, 1) u;
    INSERT INTO nanomdm.cert_auth_associations (id, sha256)
    SELECT bench.udid(i), c.sha256_hex FROM generate_series(first, last) i JOIN bench.certs c USING (i);
    INSERT INTO bench.floor (id, body, cert_sha256)
    SELECT bench.eid(i, u), bench.tokenupdate(i, u), c.sha256
    FROM generate_series(first, last) i JOIN bench.certs c USING (i), generate_series(0, 1) u;
END;

------------------------------------------------------------------------------
-- Poll latency against history (test/bench/run, phase history): Mac d's
-- device channel goes through n connect cycles (scripts/history_cycle.sql).
-- The same history in NanoMDM's tables: n acknowledged commands.
CREATE PROCEDURE bench.history_nanomdm(d int, n int) LANGUAGE sql
BEGIN ATOMIC
    INSERT INTO nanomdm.commands (command_uuid, request_type, command)
    SELECT format('HIST-%s-%s', d, k), 'ProfileList', bench.command_text(format('HIST-%s-%s', d, k))
    FROM generate_series(1, n) k;
    INSERT INTO nanomdm.enrollment_queue (id, command_uuid, created_at)
    SELECT bench.udid(d), format('HIST-%s-%s', d, k), now() - make_interval(secs => n - k)
    FROM generate_series(1, n) k;
    INSERT INTO nanomdm.command_results (id, command_uuid, status, result)
    SELECT bench.udid(d), format('HIST-%s-%s', d, k), 'Acknowledged',
           bench.report_text(d, 0, 'Acknowledged', format('HIST-%s-%s', d, k))
    FROM generate_series(1, n) k;
END;

-- Queue growth (phase growth): cycles take the next Mac in turn.
CREATE SEQUENCE bench.growth_seq;

-- Simulate the passing of mdm.history_retention plus a day: every
-- timestamp that pruning looks at moves back that far.
CREATE PROCEDURE bench.age_history() LANGUAGE plpgsql AS $$
DECLARE
    age interval := make_interval(secs => mdm_internal._setting('mdm.history_retention')::int + 86400);
BEGIN
    UPDATE mdm.checkin_messages SET received_at = received_at - age;
    UPDATE mdm.nano_enrollment_queue SET created_at = created_at - age, sent_at = sent_at - age,
           finished_at = finished_at - age, cleared_at = cleared_at - age;
    UPDATE mdm.nano_command_results SET created_at = created_at - age, updated_at = updated_at - age,
           not_now_at = not_now_at - age;
    UPDATE mdm.nano_commands SET created_at = created_at - age;
    UPDATE mdm.push_jobs SET created_at = created_at - age, not_before = not_before - age,
           claimed_at = claimed_at - age, finished_at = finished_at - age;
    UPDATE mdm.push_attempts SET reported_at = reported_at - age;
    UPDATE mdm.orphan_reports SET received_at = received_at - age;
    UPDATE mdm.nano_enrollments SET last_seen_at = last_seen_at - age;
END $$;
