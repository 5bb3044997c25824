--
-- Set-up shared by the regression suite: the extension, the test vectors
-- (read by the client from test/vectors/, not by the server), and a helper
-- that runs a statement and reports its SQLSTATE, message and detail.
--
CREATE EXTENSION mdm_user;
-- The suites send messages without a device identity; sql/50_security.sql
-- turns the requirement back on and tests identities.
ALTER DATABASE :"DBNAME" SET mdm.require_identity = off;
SET mdm.require_identity = off;

CREATE TABLE vectors (name text PRIMARY KEY, body bytea NOT NULL);
CREATE TEMP TABLE vectors_b64 (name text, b64 text);
\copy vectors_b64 from program 'cd test/vectors && for f in */*; do case "$f" in *.md) continue;; esac; printf "%s\t%s\n" "$f" "$(base64 -w0 "$f")"; done'
INSERT INTO vectors SELECT name, decode(b64, 'base64') FROM vectors_b64;
SELECT split_part(name, '/', 1) AS dir, count(*) FROM vectors GROUP BY 1 ORDER BY 1;

-- v('checkin/01-authenticate.plist') is the bytes of that vector
CREATE FUNCTION v(vector text) RETURNS bytea
    LANGUAGE sql STABLE STRICT
    RETURN (SELECT body FROM vectors WHERE name = vector);

-- run a statement; return 'ok' or 'SQLSTATE: message (detail)'
CREATE FUNCTION try(statement text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text;
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || CASE WHEN det <> '' THEN ' (' || det || ')' ELSE '' END;
END $$;

-- empty every data table of the extension, so each suite starts afresh
-- What the derived rows' foreign keys used to guarantee and their writers
-- now keep (schema/30_queue.sql): the invariants broken, none if '{}'.
-- The suites that run the paths call it once they have.
CREATE FUNCTION integrity() RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(broken ORDER BY broken), '{}') FROM (
        SELECT 'queue item without its enrollment' FROM mdm.nano_enrollment_queue q
        WHERE NOT EXISTS (SELECT FROM mdm.nano_enrollments e WHERE e.device_id = q.device_id AND e.id = q.id)
        UNION
        SELECT 'queue item without its command' FROM mdm.nano_enrollment_queue q
        WHERE q.plist IS NULL AND NOT EXISTS (SELECT FROM mdm.nano_commands c WHERE c.command_uuid = q.command_uuid)
        UNION
        SELECT 'command kept in its item and in nano_commands' FROM mdm.nano_enrollment_queue q
        WHERE q.plist IS NOT NULL AND EXISTS (SELECT FROM mdm.nano_commands c WHERE c.command_uuid = q.command_uuid)
        UNION
        SELECT 'command kept in its item queued to another' FROM mdm.nano_enrollment_queue q
        WHERE q.plist IS NOT NULL AND EXISTS (SELECT FROM mdm.nano_enrollment_queue o
                                              WHERE o.command_uuid = q.command_uuid
                                                AND (o.device_id, o.id) <> (q.device_id, q.id))
        UNION
        SELECT 'result without its queue item' FROM mdm.nano_command_results r
        WHERE NOT EXISTS (SELECT FROM mdm.nano_enrollment_queue q
                          WHERE q.device_id = r.device_id AND q.id = r.id AND q.command_uuid = r.command_uuid)
        UNION
        SELECT 'push job without its enrollment' FROM mdm.push_jobs j
        WHERE NOT EXISTS (SELECT FROM mdm.nano_enrollments e WHERE e.device_id = j.device_id AND e.id = j.enrollment_id)
        UNION
        SELECT 'push attempt without its job' FROM mdm.push_attempts a
        WHERE NOT EXISTS (SELECT FROM mdm.push_jobs j WHERE j.device_id = a.device_id AND j.id = a.job_id)
        UNION
        SELECT 'queue fan-out without its command' FROM mdm.queue_fanouts f
        WHERE NOT EXISTS (SELECT FROM mdm.nano_commands c WHERE c.command_uuid = f.command_uuid)
        UNION
        SELECT 'queue fan-out not distinct and in byte order' FROM mdm.queue_fanouts f
        WHERE EXISTS (SELECT FROM unnest(f.enrollment_ids) WITH ORDINALITY a(id, n)
                      JOIN unnest(f.enrollment_ids) WITH ORDINALITY b(id, n) ON b.n = a.n + 1
                      WHERE NOT a.id COLLATE "C" < b.id)
        UNION
        SELECT 'queue fan-out chunks overlap' FROM mdm.queue_fanouts f JOIN mdm.queue_fanouts g
            ON g.command_uuid = f.command_uuid AND g.chunk > f.chunk
        WHERE g.first_id COLLATE "C" <= f.last_id
        UNION
        SELECT 'queue fan-out target with its queue item' FROM mdm.queue_fanouts f
        CROSS JOIN LATERAL unnest(f.enrollment_ids) t(id)
        JOIN mdm.nano_enrollment_queue q ON q.command_uuid = f.command_uuid AND q.id = t.id
        -- (a push fan-out or a queue fan-out may name an enrollment deleted
        -- since: the claim and the expansion skip it, as the claim skips a
        -- disabled one)
    ) x(broken)
$$;
CREATE FUNCTION reset_mdm() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE (SELECT 'TRUNCATE ' || string_agg(format('%I.%I', n.nspname, c.relname), ', ')
                    || ' RESTART IDENTITY CASCADE'
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'mdm' AND c.relkind = 'r' AND c.relname NOT LIKE 'apple\_%');
END $$;
