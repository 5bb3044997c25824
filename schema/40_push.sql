-- Push jobs and push certificates.
--
-- The extension never talks to APNs.  It decides who must be pushed, keeps
-- that decision in mdm.push_jobs (created in the same transaction as the
-- work that needs it), and announces it with NOTIFY mdm_push.  The front
-- end LISTENs, calls mdm.claim_pushes(), sends, and reports each outcome
-- with mdm.push_result() (docs/front-end.md).

CREATE TABLE mdm.push_certs (
    topic text PRIMARY KEY CHECK (topic LIKE 'com.apple.mgmt.%'),
    cert_pem text NOT NULL,
    key_pem text NOT NULL,
    subject text NOT NULL,
    not_before timestamptz NOT NULL,
    not_after timestamptz NOT NULL,
    sha256 bytea NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mdm.push_certs IS
    'APNs push certificates by topic (the subject UID); the key is readable only through mdm.claim_pushes()';

CREATE SEQUENCE mdm.push_jobs_id_seq;
CREATE TABLE mdm.push_jobs (
    device_id text NOT NULL,
    id bigint NOT NULL DEFAULT nextval('mdm.push_jobs_id_seq'),
    enrollment_id text NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'claimed', 'sent', 'failed', 'superseded')),
    created_at timestamptz NOT NULL DEFAULT now(),
    not_before timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    claimed_at timestamptz,
    finished_at timestamptz,
    apns_status integer,
    apns_reason text,
    apns_id text,
    token_hex text,
    -- the job ID first: mdm.push_result() finds a job by its ID alone
    PRIMARY KEY (id, device_id)
);
ALTER SEQUENCE mdm.push_jobs_id_seq OWNED BY mdm.push_jobs.id;
-- at most one pending job per enrollment: later requests coalesce into it
CREATE UNIQUE INDEX push_jobs_one_pending ON mdm.push_jobs (device_id, enrollment_id)
    WHERE state = 'pending';
CREATE INDEX push_jobs_claimable ON mdm.push_jobs (not_before, id) WHERE state = 'pending';
CREATE INDEX push_jobs_claimed ON mdm.push_jobs (claimed_at) WHERE state = 'claimed';
CREATE INDEX push_jobs_enrollment ON mdm.push_jobs (device_id, enrollment_id, finished_at);
-- maintenance prunes finished jobs by age: rows arrive in time order
CREATE INDEX push_jobs_created_at ON mdm.push_jobs USING brin (created_at);
COMMENT ON TABLE mdm.push_jobs IS
    'APNs pushes to send: pending (waiting, perhaps for a certificate or a retry time), claimed by a front end, sent, failed or superseded';
COMMENT ON COLUMN mdm.push_jobs.not_before IS 'Not claimable before this time (retry backoff)';
COMMENT ON COLUMN mdm.push_jobs.attempts IS 'How many times the job was claimed';
COMMENT ON COLUMN mdm.push_jobs.token_hex IS
    'The push token of the last claim: a 410 invalidates the enrollment''s token only if it is still this one';

CREATE TABLE mdm.push_attempts (
    device_id text NOT NULL,
    job_id bigint NOT NULL,
    attempt integer NOT NULL,
    apns_status integer NOT NULL,
    apns_reason text,
    apns_id text,
    token_hex text,
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, job_id, attempt)
);
COMMENT ON TABLE mdm.push_attempts IS 'Every APNs outcome the front end reported';
COMMENT ON COLUMN mdm.push_attempts.token_hex IS 'The push token that was pushed';

-- Pushes for a large fan-out (more targets than mdm.push_fanout_threshold):
-- rather than a push job per target in the enqueue's transaction, the
-- targets' IDs in chunks, which mdm.claim_pushes() turns into claimed jobs
-- batch by batch.  Written in the enqueue's transaction (invisible to a
-- claim until it commits, like the jobs it stands for), locked by the
-- claim that takes a chunk (SKIP LOCKED: two front ends take different
-- chunks), and deleted when its last target has a job.
CREATE TABLE mdm.push_fanouts (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    chunk integer NOT NULL,
    enrollment_ids text[] COMPRESSION lz4 NOT NULL,
    next_target integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, chunk)
);
CREATE INDEX push_fanouts_created_at ON mdm.push_fanouts (created_at, id, chunk);
COMMENT ON TABLE mdm.push_fanouts IS
    'Pushes of a large fan-out still to be made into push jobs: chunks of enrollment IDs that mdm.claim_pushes() expands';
COMMENT ON COLUMN mdm.push_fanouts.id IS 'The fan-out (one per enqueue or push call)';
COMMENT ON COLUMN mdm.push_fanouts.chunk IS 'Which chunk of the fan-out''s targets';
COMMENT ON COLUMN mdm.push_fanouts.enrollment_ids IS 'Enrollment IDs to push, in (device_id, id) order';
COMMENT ON COLUMN mdm.push_fanouts.next_target IS 'Position in enrollment_ids of the first target without its job yet';
COMMENT ON COLUMN mdm.push_fanouts.created_at IS 'When the fan-out was queued';

-- The integrity the derived rows' foreign keys used to keep on a delete:
-- an enrollment deleted (by hand: the extension never deletes one) takes
-- its queue items, results, push jobs and attempts with it, set-based.
-- (On Citus the foreign keys do it again: schema/90_citus.sql.)
CREATE FUNCTION mdm_internal._enrollments_deleted() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mdm.nano_command_results r USING old_rows o
    WHERE r.device_id = o.device_id AND r.id = o.id;
    DELETE FROM mdm.nano_enrollment_queue q USING old_rows o
    WHERE q.device_id = o.device_id AND q.id = o.id;
    DELETE FROM mdm.push_attempts a USING mdm.push_jobs j, old_rows o
    WHERE j.device_id = o.device_id AND j.enrollment_id = o.id
      AND a.device_id = j.device_id AND a.job_id = j.id;
    DELETE FROM mdm.push_jobs j USING old_rows o
    WHERE j.device_id = o.device_id AND j.enrollment_id = o.id;
    RETURN NULL;
END $$;
CREATE TRIGGER delete_derived AFTER DELETE ON mdm.nano_enrollments
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_internal._enrollments_deleted();

-- What the foreign keys did on a TRUNCATE: nano_enrollments can only be
-- truncated with CASCADE or beside the tables that still reference it
-- (profile_bindings, label_enrollments, profile_deliveries: without them
-- PostgreSQL refuses), and CASCADE emptied the derived tables too.  So a
-- TRUNCATE of nano_enrollments truncates them as well, which CASCADE no
-- longer reaches (there are no foreign keys).
CREATE FUNCTION mdm_internal._enrollments_truncated() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    t text;
    found_row boolean;
BEGIN
    -- (one already named in the same TRUNCATE is empty, and in use: skipped)
    FOREACH t IN ARRAY ARRAY['nano_command_results', 'nano_enrollment_queue', 'push_attempts', 'push_jobs'] LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM mdm.%I)', t) INTO found_row;
        IF found_row THEN
            EXECUTE format('TRUNCATE mdm.%I', t);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER truncate_derived AFTER TRUNCATE ON mdm.nano_enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION mdm_internal._enrollments_truncated();

-- What the foreign keys (NO ACTION) did on an update of an enrollment's
-- key: refuse it while derived rows name the old key (the extension never
-- changes a key; a hand UPDATE would leave them orphans).
CREATE FUNCTION mdm_internal._enrollment_key_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM mdm.nano_enrollment_queue q
               WHERE q.device_id = OLD.device_id AND q.id = OLD.id)
       OR EXISTS (SELECT FROM mdm.nano_command_results r
                  WHERE r.device_id = OLD.device_id AND r.id = OLD.id)
       OR EXISTS (SELECT FROM mdm.push_jobs j
                  WHERE j.device_id = OLD.device_id AND j.enrollment_id = OLD.id)
       OR EXISTS (SELECT FROM mdm.queue_fanouts f
                  WHERE f.first_id COLLATE "C" <= OLD.id AND f.last_id COLLATE "C" >= OLD.id
                    AND OLD.id = ANY (f.enrollment_ids)) THEN
        RAISE EXCEPTION 'cannot change the key of enrollment (%, %): queue items, results or push jobs refer to it',
                        OLD.device_id, OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER update_key_derived BEFORE UPDATE OF device_id, id ON mdm.nano_enrollments
    FOR EACH ROW WHEN (OLD.device_id IS DISTINCT FROM NEW.device_id OR OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION mdm_internal._enrollment_key_changed();

SELECT pg_catalog.pg_extension_config_dump('mdm.push_certs', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.push_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.push_jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.push_attempts', '');
SELECT pg_catalog.pg_extension_config_dump('mdm.push_fanouts', '');

-- Certificates, without their keys, and how long they have left.
CREATE VIEW mdm.view_push_certs AS
SELECT topic, subject, not_before, not_after,
       floor(extract(epoch FROM not_after - now()) / 86400)::integer AS days_to_expiry,
       encode(sha256, 'hex') AS sha256, uploaded_at
FROM mdm.push_certs;
COMMENT ON VIEW mdm.view_push_certs IS 'Push certificates and days to expiry (keys are not shown)';

-- Enrollments whose topic has no certificate: their pushes wait.
CREATE VIEW mdm.view_enrollments_without_push_cert AS
SELECT e.device_id, e.id AS enrollment_id, e.topic, e.token_update_at,
       (SELECT count(*) FROM mdm.push_jobs j
        WHERE j.device_id = e.device_id AND j.enrollment_id = e.id AND j.state = 'pending') AS waiting_jobs
FROM mdm.nano_enrollments e
WHERE NOT EXISTS (SELECT FROM mdm.push_certs c WHERE c.topic = e.topic);
COMMENT ON VIEW mdm.view_enrollments_without_push_cert IS
    'Enrollments whose TokenUpdate topic has no uploaded push certificate; their push jobs wait';

-- Jobs operators should look at: failed without retry, and waiting ones;
-- and the targets of a large fan-out still without their job.
CREATE VIEW mdm.view_push_problems AS
SELECT j.device_id, j.enrollment_id, j.id AS job_id, j.state, j.attempts, j.apns_status,
       j.apns_reason, j.created_at, j.finished_at,
       CASE WHEN j.state = 'failed' THEN 'failed'
            WHEN NOT EXISTS (SELECT FROM mdm.push_certs c WHERE c.topic = e.topic) THEN 'no push certificate'
            WHEN j.not_before > now() THEN 'waiting to retry'
       END AS problem
FROM mdm.push_jobs j
JOIN mdm.nano_enrollments e ON e.device_id = j.device_id AND e.id = j.enrollment_id
WHERE j.state = 'failed'
   OR (j.state = 'pending' AND (j.not_before > now()
       OR NOT EXISTS (SELECT FROM mdm.push_certs c WHERE c.topic = e.topic)))
UNION ALL
SELECT e.device_id, e.id, NULL::bigint, 'fan-out', 0, NULL::integer, NULL::text, f.created_at,
       NULL::timestamptz, 'waiting in a fan-out'
FROM mdm.push_fanouts f
CROSS JOIN LATERAL unnest(f.enrollment_ids[f.next_target:]) t(id)
JOIN mdm.nano_enrollments e ON e.device_id = split_part(t.id, ':', 1) AND e.id = t.id;
COMMENT ON VIEW mdm.view_push_problems IS
    'Failed push jobs, pending ones that wait for a certificate or a retry time, and targets waiting in a fan-out';

-- Create push jobs for targets (coalescing into pending ones) and NOTIFY
-- once if any was created.  Disabled channels and dead tokens are skipped.
-- Generic plan, for the reason given at mdm_internal._targets().
-- More targets than mdm.push_fanout_threshold (on a single server): one
-- push_fanouts row per chunk of targets instead, expanded by the claim,
-- which checks each target then; the count is of the targets.  lazy =>
-- false (maintenance's batch-limited repush) always makes pending jobs,
-- which coalesce with later requests as fan-out rows cannot.
CREATE FUNCTION mdm_internal._announce_pushes(targets mdm_internal._target[], lazy boolean DEFAULT true)
    RETURNS integer
    LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    created integer;
    ids text[];
BEGIN
    IF lazy AND cardinality(targets) > mdm_internal._setting('mdm.push_fanout_threshold')::integer
       AND NOT mdm_internal._distributed() THEN
        ids := ARRAY(SELECT t.enrollment_id FROM unnest(targets) t);
        INSERT INTO mdm.push_fanouts (id, chunk, enrollment_ids)
        SELECT f.id, c.n, ids[c.n * 1000 + 1 : c.n * 1000 + 1000]
        FROM (SELECT gen_random_uuid() AS id) f,
             generate_series(0, (cardinality(ids) - 1) / 1000) AS c(n);
        PERFORM pg_notify('mdm_push', '');
        RETURN cardinality(ids);
    END IF;
    -- A pending job that a request coalesces into stays locked until this
    -- transaction ends (DO UPDATE ... WHERE false locks the row and writes
    -- nothing): a front end claiming meanwhile skips it, so the push cannot
    -- go out, and be answered by a poll, before the work it announces is
    -- visible.  Sorted, so that concurrent fan-outs lock in the same order;
    -- distinct, as ON CONFLICT DO UPDATE must not meet one key twice.
    WITH created_jobs AS (
        INSERT INTO mdm.push_jobs AS j (device_id, enrollment_id)
        SELECT DISTINCT e.device_id, e.id
        FROM unnest(targets) t
        JOIN mdm.nano_enrollments e ON e.device_id = t.device_id AND e.id = t.enrollment_id
        WHERE e.enabled AND e.token_invalid_at IS NULL
        ORDER BY e.device_id, e.id
        ON CONFLICT (device_id, enrollment_id) WHERE state = 'pending'
            DO UPDATE SET not_before = j.not_before WHERE false
        RETURNING 1)
    SELECT count(*) INTO created FROM created_jobs;
    IF created > 0 THEN
        -- a constant payload: PostgreSQL folds equal notifications of one
        -- transaction into one
        PERFORM pg_notify('mdm_push', '');
    END IF;
    RETURN created;
END $$;

-- Push without a command, e.g. to wake a device.
CREATE FUNCTION mdm.push(enrollment_ids text[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    targets mdm_internal._target[] := mdm_internal._targets(enrollment_ids);
BEGIN
    -- say which enrollments cannot be pushed, rather than skip them quietly
    PERFORM mdm_internal._notice_unpushable(targets);
    RETURN mdm_internal._announce_pushes(targets);
END $$;
COMMENT ON FUNCTION mdm.push(text[]) IS
    'Create push jobs for enrollments (coalescing with pending ones); returns how many were created';

-- Claimed jobs that were never reported within mdm.push_claim_timeout end
-- (superseded), and a new pending job takes their place, unless one is
-- pending already or the claims keep timing out (mdm.push_max_attempts:
-- then the job fails, so a job that makes the front end die is not handed
-- out for ever).  A new job rather than the same one claimed again: a late
-- report of the lost claim names its job, so it is never taken for the
-- report of a later claim, with another token.
CREATE FUNCTION mdm_internal._release_stale_claims() RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    released integer;
    renewed integer;
BEGIN
    IF mdm_internal._distributed() THEN
        -- no row locks across shards on Citus (schema/90_citus.sql)
        RETURN mdm_internal._release_stale_claims_by_job();
    END IF;
    -- usually none: one probe of the claimed index rather than the
    -- statement below, whose plan (from the statistics of an empty
    -- push_jobs) walks every job
    IF NOT EXISTS (SELECT FROM mdm.push_jobs j
                   WHERE j.state = 'claimed'
                     AND j.claimed_at < now() - make_interval(secs => mdm_internal._setting('mdm.push_claim_timeout')::integer)) THEN
        RETURN 0;
    END IF;
    WITH stale AS (
        SELECT j.device_id, j.id,
               CASE WHEN j.attempts >= mdm_internal._setting('mdm.push_max_attempts')::integer THEN 'failed'
                    ELSE 'superseded' END AS new_state
        FROM mdm.push_jobs j
        WHERE j.state = 'claimed'
          AND j.claimed_at < now() - make_interval(secs => mdm_internal._setting('mdm.push_claim_timeout')::integer)
        ORDER BY j.claimed_at
        LIMIT 10000
        FOR UPDATE SKIP LOCKED),
    ended AS (
        UPDATE mdm.push_jobs j
        SET state = s.new_state, finished_at = now(),
            apns_reason = CASE s.new_state
                              WHEN 'failed' THEN 'claim timed out on every attempt'
                              ELSE 'claim timed out' END
        FROM stale s WHERE j.device_id = s.device_id AND j.id = s.id
        RETURNING j.device_id, j.enrollment_id, j.attempts, j.state),
    counted AS (SELECT count(*) AS n FROM ended),
    renewed_jobs AS (
        INSERT INTO mdm.push_jobs AS p (device_id, enrollment_id, attempts)
        -- one per enrollment, though two claims of it may time out at once
        SELECT DISTINCT ON (e.device_id, e.id) e.device_id, e.id, x.attempts
        FROM ended x
        JOIN mdm.nano_enrollments e ON e.device_id = x.device_id AND e.id = x.enrollment_id
        WHERE x.state = 'superseded' AND e.enabled AND e.token_invalid_at IS NULL
        ORDER BY e.device_id, e.id, x.attempts DESC
        ON CONFLICT (device_id, enrollment_id) WHERE state = 'pending'
            DO UPDATE SET not_before = p.not_before WHERE false
        RETURNING 1)
    SELECT (SELECT n FROM counted), (SELECT count(*) FROM renewed_jobs) INTO released, renewed;
    IF renewed > 0 THEN
        PERFORM pg_notify('mdm_push', '');
    END IF;
    RETURN released;
END $$;

-- apns-expiration of a push claimed now (mdm.push_expiration seconds from
-- now; 0 asks APNs to deliver at once or not at all).
CREATE FUNCTION mdm_internal._apns_expiration() RETURNS bigint
    LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s = 0 THEN 0 ELSE extract(epoch FROM now())::bigint + s END
    FROM (SELECT mdm_internal._setting('mdm.push_expiration')::bigint) AS x(s)
$$;

-- Up to max_jobs push jobs made from the oldest fan-outs' next targets,
-- claimed at once (state claimed, attempt 1: the insert is the claim).  A
-- chunk is taken FOR UPDATE SKIP LOCKED, so that concurrent claims expand
-- different chunks, and its position moves on in the same transaction:
-- if the claim rolls back, the targets are expanded again.  Each target is
-- checked as _announce_pushes() checks it, now: disabled channels and
-- dead tokens are skipped; a channel with a pending job is left to that
-- job (it is claimed later than this, so after the enqueue committed),
-- and so is one with a claimed job, whose push is on the way (made by an
-- earlier chunk of this claim, or another fan-out): one push per target
-- however many fan-outs name it (a device that polled before the
-- commands were visible is pushed again by maintenance, _repush());
-- one whose topic has no certificate gets a pending job that waits for it.
CREATE FUNCTION mdm_internal._claim_fanouts(max_jobs integer)
    RETURNS TABLE (job_id bigint, enrollment_id text, token_hex text, push_magic text,
                   topic text, cert_pem text, key_pem text, apns_expiration bigint,
                   apns_priority integer, apns_push_type text)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    f record;
    want integer := max_jobs;
    last integer;
    made integer;
    expiration bigint := mdm_internal._apns_expiration();
BEGIN
    WHILE want > 0 LOOP
        SELECT x.id, x.chunk, x.enrollment_ids, x.next_target INTO f
        FROM mdm.push_fanouts x
        ORDER BY x.created_at, x.id, x.chunk
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        EXIT WHEN NOT FOUND;
        last := least(f.next_target + want - 1, cardinality(f.enrollment_ids));
        IF last = cardinality(f.enrollment_ids) THEN
            DELETE FROM mdm.push_fanouts x WHERE x.id = f.id AND x.chunk = f.chunk;
        ELSE
            UPDATE mdm.push_fanouts x SET next_target = last + 1 WHERE x.id = f.id AND x.chunk = f.chunk;
        END IF;
        -- the commands these targets wait for in large fan-outs get their
        -- queue items now, before their pushes go out (in this transaction:
        -- the poll a push brings finds them; a chunk someone else is
        -- expanding is left to them, and the poll waits for it)
        PERFORM mdm_internal._expand_queue_fanouts(r.lo, r.hi, skip_locked => true)
        FROM (SELECT min(t.id COLLATE "C") AS lo, max(t.id COLLATE "C") AS hi
              FROM unnest(f.enrollment_ids[f.next_target:last]) t(id)) r
        WHERE EXISTS (SELECT FROM mdm.queue_fanouts q
                      WHERE q.first_id COLLATE "C" <= r.hi AND q.last_id COLLATE "C" >= r.lo);
        -- each target looked up once: the jobs are numbered here, so that
        -- what the claim returns comes from the same rows as what it inserts
        -- (targets whose topic has no certificate wait in a pending job)
        RETURN QUERY
        WITH targets AS MATERIALIZED (
            SELECT e.device_id, e.id, e.token_hex, e.push_magic, e.topic, c.topic IS NOT NULL AS has_cert,
                   CASE WHEN c.topic IS NOT NULL AND NOT EXISTS (
                            SELECT FROM mdm.push_jobs p
                            WHERE p.device_id = e.device_id AND p.enrollment_id = e.id
                              AND p.state IN ('pending', 'claimed'))
                        THEN nextval('mdm.push_jobs_id_seq') END AS job_id
            FROM unnest(f.enrollment_ids[f.next_target:last]) t(id)
            JOIN mdm.nano_enrollments e ON e.device_id = split_part(t.id, ':', 1) AND e.id = t.id
            LEFT JOIN mdm.push_certs c ON c.topic = e.topic
            WHERE e.enabled AND e.token_invalid_at IS NULL),
        waiting AS (
            INSERT INTO mdm.push_jobs AS j (device_id, enrollment_id)
            SELECT t.device_id, t.id FROM targets t WHERE NOT t.has_cert
            ON CONFLICT (device_id, enrollment_id) WHERE state = 'pending' DO NOTHING),
        made_jobs AS (
            INSERT INTO mdm.push_jobs AS j (device_id, id, enrollment_id, state, claimed_at, attempts, token_hex)
            SELECT t.device_id, t.job_id, t.id, 'claimed', now(), 1, t.token_hex
            FROM targets t WHERE t.job_id IS NOT NULL)
        SELECT t.job_id, t.id, t.token_hex, t.push_magic, t.topic, pc.cert_pem, pc.key_pem,
               expiration,
               10, 'mdm'::text
        FROM targets t
        JOIN mdm.push_certs pc ON pc.topic = t.topic
        WHERE t.job_id IS NOT NULL
        ORDER BY t.job_id;
        GET DIAGNOSTICS made = ROW_COUNT;
        want := want - made;
    END LOOP;
END $$;

-- The front end takes pending jobs with everything the APNs request needs.
CREATE FUNCTION mdm.claim_pushes(max_jobs integer DEFAULT 500)
    RETURNS TABLE (job_id bigint, enrollment_id text, token_hex text, push_magic text,
                   topic text, cert_pem text, key_pem text, apns_expiration bigint,
                   apns_priority integer, apns_push_type text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    -- Right after a fan-out the statistics still say push_jobs is nearly
    -- empty, and the planner joined every pending job to its enrollment and
    -- sorted them all (2 s per claim of 500 with 100,000 pending): walk the
    -- claimable index in order instead, and stop at max_jobs.  No JIT: a
    -- disabled plan's cost would start it (2 s of compiling).
    SET enable_bitmapscan = off SET enable_seqscan = off SET jit = off AS $$
DECLARE
    claimed integer := 0;
    n integer;
    fanouts_first boolean;
BEGIN
    IF max_jobs IS NULL OR max_jobs < 1 THEN
        RAISE EXCEPTION 'max_jobs must be at least 1, not %', coalesce(max_jobs::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mdm_internal._distributed() THEN
        -- no row locks across shards on Citus: claimed job by job (schema/90_citus.sql)
        RETURN QUERY SELECT * FROM mdm_internal._claim_pushes_by_job(max_jobs);
        RETURN;
    END IF;
    PERFORM mdm_internal._release_stale_claims();
    -- oldest first between jobs and large fan-outs (mdm.push_fanouts): a
    -- fan-out older than every claimable job is expanded before them, so
    -- that a sustained backlog of newer jobs does not starve it
    fanouts_first := EXISTS (
        SELECT FROM mdm.push_fanouts f
        WHERE f.created_at < coalesce((SELECT j.not_before FROM mdm.push_jobs j
                                       WHERE j.state = 'pending' AND j.not_before <= now()
                                       ORDER BY j.not_before, j.id LIMIT 1), 'infinity'));
    IF fanouts_first THEN
        RETURN QUERY SELECT * FROM mdm_internal._claim_fanouts(max_jobs);
        GET DIAGNOSTICS claimed = ROW_COUNT;
        IF claimed >= max_jobs THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT j.device_id, j.id
        FROM mdm.push_jobs j
        JOIN mdm.nano_enrollments e ON e.device_id = j.device_id AND e.id = j.enrollment_id
        WHERE j.state = 'pending' AND j.not_before <= now()
          -- never a channel waiting for its TokenUpdate (re-enrolled or
          -- checked out) or with a dead token: its token and PushMagic are void
          AND e.enabled AND e.token_invalid_at IS NULL
          AND EXISTS (SELECT FROM mdm.push_certs c WHERE c.topic = e.topic)
        ORDER BY j.not_before, j.id
        LIMIT max_jobs - claimed
        FOR UPDATE OF j SKIP LOCKED),
    claimed AS (
        UPDATE mdm.push_jobs j
        SET state = 'claimed', claimed_at = now(), attempts = j.attempts + 1,
            token_hex = e.token_hex
        FROM picked p, mdm.nano_enrollments e
        WHERE j.device_id = p.device_id AND j.id = p.id
          AND e.device_id = j.device_id AND e.id = j.enrollment_id
        RETURNING j.device_id, j.id, j.enrollment_id)
    SELECT c.id, c.enrollment_id, e.token_hex, e.push_magic, e.topic, pc.cert_pem, pc.key_pem,
           mdm_internal._apns_expiration(),
           10, 'mdm'::text
    FROM claimed c
    JOIN mdm.nano_enrollments e ON e.device_id = c.device_id AND e.id = c.enrollment_id
    JOIN mdm.push_certs pc ON pc.topic = e.topic
    ORDER BY c.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    claimed := claimed + n;
    IF NOT fanouts_first AND claimed < max_jobs THEN
        -- the rest of the batch from large fan-outs
        RETURN QUERY SELECT * FROM mdm_internal._claim_fanouts(max_jobs - claimed);
    END IF;
END $$;
COMMENT ON FUNCTION mdm.claim_pushes(integer) IS
    'Claim up to max_jobs pending push jobs (SKIP LOCKED) with token, PushMagic, topic, certificate and key';

-- How long the oldest claimable job has waited (what claim_pushes would
-- take first), for the front end's metrics: one index probe.
CREATE FUNCTION mdm.push_backlog_age() RETURNS double precision
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT greatest(0, (
        SELECT extract(epoch FROM now() - j.not_before)::double precision
        FROM mdm.push_jobs j
        JOIN mdm.nano_enrollments e ON e.device_id = j.device_id AND e.id = j.enrollment_id
        WHERE j.state = 'pending' AND j.not_before <= now()
          AND EXISTS (SELECT FROM mdm.push_certs c WHERE c.topic = e.topic)
        ORDER BY j.not_before, j.id
        LIMIT 1), (
        -- a fan-out's targets are claimable from its commit
        SELECT extract(epoch FROM now() - f.created_at)::double precision
        FROM mdm.push_fanouts f ORDER BY f.created_at LIMIT 1))
$$;
COMMENT ON FUNCTION mdm.push_backlog_age() IS
    'Seconds the oldest claimable push job has waited since it became claimable; 0 when none';

-- The front end reports what APNs answered for a claimed job.  A report
-- that comes after the claim timed out is still recorded, and a dead token
-- is dead however late the news; the job, ended by the timeout, keeps its
-- state.
-- mdm_internal._push_result_on() records it for a job whose device is known:
-- mdm.push_result() finds the device, mdm.push_results() on Citus finds
-- those of its whole batch at once (schema/90_citus.sql).
CREATE FUNCTION mdm_internal._push_result_on(job_device text, job_id bigint, apns_status integer,
                                    apns_reason text, apns_id text)
    RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    j mdm.push_jobs;
    new_state text;
    retry_at timestamptz;
    token_dead boolean := apns_status = 410 OR (apns_status = 400 AND apns_reason = 'BadDeviceToken');
    token_current boolean;
    finished timestamptz;
BEGIN
    IF apns_status IS NULL OR apns_status NOT BETWEEN 100 AND 599 THEN
        RAISE EXCEPTION 'invalid APNs status %', coalesce(apns_status::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the job locked by its whole key: a row lock by job ID alone would
    -- have to look at every shard of a distributed push_jobs (docs/citus.md)
    SELECT * INTO j FROM mdm.push_jobs p
    WHERE p.device_id = job_device AND p.id = _push_result_on.job_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'push job % does not exist', job_id USING ERRCODE = 'undefined_object';
    ELSIF j.claimed_at IS NULL THEN
        RAISE EXCEPTION 'push job % was never claimed', job_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Only jobs returned by mdm.claim_pushes() have an outcome to report.';
    END IF;

    INSERT INTO mdm.push_attempts (device_id, job_id, attempt, apns_status, apns_reason, apns_id, token_hex)
    VALUES (j.device_id, j.id, j.attempts, apns_status, apns_reason, apns_id, j.token_hex)
    ON CONFLICT ON CONSTRAINT push_attempts_pkey DO UPDATE SET
        apns_status = excluded.apns_status, apns_reason = excluded.apns_reason,
        apns_id = excluded.apns_id, token_hex = excluded.token_hex, reported_at = excluded.reported_at;

    IF token_dead THEN
        -- only the token that was pushed: a TokenUpdate may have brought a
        -- new one since the claim
        UPDATE mdm.nano_enrollments e SET token_invalid_at = now(),
               token_invalid_reason = concat_ws(' ', apns_status, apns_reason)
        WHERE e.device_id = j.device_id AND e.id = j.enrollment_id
          AND e.token_hex = j.token_hex AND e.token_invalid_at IS NULL;
        token_current := FOUND OR EXISTS (
            SELECT FROM mdm.nano_enrollments e
            WHERE e.device_id = j.device_id AND e.id = j.enrollment_id
              AND e.token_hex = j.token_hex);
        IF token_current THEN
            -- no pushes to this channel until its next TokenUpdate
            UPDATE mdm.push_jobs p SET state = 'failed', finished_at = now(),
                   apns_reason = 'token invalidated by job ' || j.id
            WHERE p.device_id = j.device_id AND p.enrollment_id = j.enrollment_id
              AND p.state = 'pending' AND p.id <> j.id;
        END IF;
    END IF;

    IF j.state <> 'claimed' THEN
        -- decided already: a late report of a claim that timed out (its
        -- job superseded by a new one), or a report sent twice; it is kept
        RAISE NOTICE 'push job % is % already: the report is recorded but changes nothing', j.id, j.state
            USING DETAIL = 'The claim timed out (mdm.push_claim_timeout) or the outcome was reported before; the job keeps its state.';
        RETURN j.state;
    END IF;

    IF apns_status = 200 THEN
        new_state := 'sent';
    ELSIF token_dead AND token_current THEN
        new_state := 'failed';
    ELSIF token_dead OR apns_status = 429 OR apns_status >= 500 THEN
        -- retry: after a backoff, or at once when the dead token was an old
        -- one (the next claim reads the channel's new token)
        IF j.attempts >= mdm_internal._setting('mdm.push_max_attempts')::integer AND NOT token_dead THEN
            new_state := 'failed';
        ELSIF EXISTS (SELECT FROM mdm.push_jobs p WHERE p.device_id = j.device_id
                      AND p.enrollment_id = j.enrollment_id AND p.state = 'pending'
                      AND p.id <> j.id) THEN
            new_state := 'superseded';
        ELSE
            new_state := 'pending';
            -- base * 2^(attempts - 1), at most mdm.push_retry_max, in
            -- seconds before it becomes an interval (which would overflow
            -- past 2^43 s); the exponent stops at 30, where even a base of
            -- 1 s exceeds the largest allowed maximum (7 days)
            retry_at := CASE WHEN token_dead THEN now() ELSE now() + make_interval(secs => least(
                mdm_internal._setting('mdm.push_retry_base')::float8 * 2.0 ^ least(greatest(j.attempts - 1, 0), 30),
                mdm_internal._setting('mdm.push_retry_max')::float8)) END;
        END IF;
    ELSE
        -- certificate and topic errors: retrying will not help; operators see it
        new_state := 'failed';
    END IF;

    finished := CASE WHEN new_state = 'pending' THEN NULL ELSE now() END;
    UPDATE mdm.push_jobs p
    SET state = new_state,
        finished_at = finished,
        not_before = coalesce(retry_at, p.not_before),
        apns_status = _push_result_on.apns_status, apns_reason = _push_result_on.apns_reason,
        apns_id = _push_result_on.apns_id
    WHERE p.device_id = j.device_id AND p.id = j.id;
    RETURN new_state;
END $$;

CREATE FUNCTION mdm.push_result(job_id bigint, apns_status integer, apns_reason text DEFAULT NULL,
                                apns_id text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- the job's device first (on Citus one read over the shards)
    RETURN mdm_internal._push_result_on((SELECT p.device_id FROM mdm.push_jobs p WHERE p.id = push_result.job_id),
                               job_id, apns_status, apns_reason, apns_id);
END $$;
COMMENT ON FUNCTION mdm.push_result(bigint, integer, text, text) IS
    'Record an APNs outcome: 200 sent; 410/BadDeviceToken invalidates the token; 429/5xx retry with backoff; else failed';

-- Many outcomes in one call, each as mdm.push_result() would record it.
-- The common one, a 200 about a claimed job, is recorded set-based (three
-- statements for the batch instead of three per job); any other row goes
-- through mdm.push_result(), errors included.
CREATE FUNCTION mdm.push_results(job_ids bigint[], apns_statuses integer[],
                                 apns_reasons text[] DEFAULT NULL, apns_ids text[] DEFAULT NULL)
    RETURNS TABLE (job_id bigint, state text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    -- a batch is a few hundred jobs: look each up by its index, whatever the
    -- statistics say (after a fan-out they say push_jobs is nearly empty)
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
    SET enable_mergejoin = off SET jit = off AS $$
DECLARE
    handled integer[];
BEGIN
    IF job_ids IS NULL OR apns_statuses IS NULL
       OR cardinality(job_ids) <> cardinality(apns_statuses)
       OR cardinality(apns_reasons) <> cardinality(job_ids)
       OR cardinality(apns_ids) <> cardinality(job_ids) THEN
        RAISE EXCEPTION 'job_ids and apns_statuses must be given, and every array must have the same length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mdm_internal._distributed() THEN
        -- no row locks across shards on Citus: the batch's devices read at
        -- once, then job by job on its shard (schema/90_citus.sql)
        RETURN QUERY SELECT * FROM mdm_internal._push_results_by_job(job_ids, apns_statuses, apns_reasons, apns_ids);
        RETURN;
    END IF;
    -- 200 about a job still claimed, named once in the batch: sent
    WITH input AS (
        SELECT t.j, t.s, t.n FROM unnest(job_ids, apns_statuses) WITH ORDINALITY AS t(j, s, n)),
    ok AS (
        SELECT i.j, min(i.n)::integer AS n FROM input i
        GROUP BY i.j HAVING count(*) = 1 AND min(i.s) = 200 AND max(i.s) = 200),
    -- each job's key through the primary key, in ID order: joined to the
    -- batch with a state filter, the planner, trusting the statistics of
    -- an empty push_jobs, scanned every claimed job for each job of the
    -- batch (250,000 rows, 50 ms for 500)
    found AS (
        SELECT p.device_id, p.id, ok.n
        FROM (SELECT * FROM ok ORDER BY ok.j) ok
        CROSS JOIN LATERAL (
            SELECT p.device_id, p.id FROM mdm.push_jobs p WHERE p.id = ok.j LIMIT 1) p),
    -- no row lock first: the update locks each job and checks its state
    -- again on the version it locks (a claim that timed out meanwhile is
    -- left to mdm.push_result() below)
    sent AS (
        UPDATE mdm.push_jobs p
        SET state = 'sent', finished_at = now(), apns_status = 200, apns_reason = apns_reasons[f.n],
            apns_id = apns_ids[f.n]
        FROM found f
        WHERE p.device_id = f.device_id AND p.id = f.id AND p.state = 'claimed'
        RETURNING p.device_id, p.id, p.attempts, p.token_hex, f.n),
    -- a job still claimed has no outcome recorded for its current attempt
    -- (every report of an attempt ends the claim in the same transaction,
    -- and each claim counts a new attempt): a plain insert
    attempts AS (
        INSERT INTO mdm.push_attempts (device_id, job_id, attempt, apns_status, apns_reason, apns_id, token_hex)
        SELECT s.device_id, s.id, s.attempts, 200, apns_reasons[s.n], apns_ids[s.n], s.token_hex
        FROM sent s)
    SELECT coalesce(array_agg(sent.n), '{}') INTO handled FROM sent;
    RETURN QUERY SELECT job_ids[h], 'sent'::text FROM unnest(handled) h;
    IF cardinality(handled) = cardinality(job_ids) THEN
        RETURN;					-- the usual batch: all sent
    END IF;
    -- everything else, one by one, in order
    RETURN QUERY
        SELECT t.j, mdm.push_result(t.j, t.s, apns_reasons[t.n], apns_ids[t.n])
        FROM unnest(job_ids, apns_statuses) WITH ORDINALITY AS t(j, s, n)
        WHERE t.n <> ALL (handled)
        ORDER BY t.n;
END $$;
COMMENT ON FUNCTION mdm.push_results(bigint[], integer[], text[], text[]) IS
    'Record many APNs outcomes at once, each as mdm.push_result() does; one row (job, new state) per outcome';

-- Check a PEM certificate and key with OpenSSL (src/push_cert.c).
CREATE FUNCTION mdm_internal._inspect_push_cert(cert_pem text, key_pem text,
                                       OUT topic text, OUT subject text, OUT not_before timestamptz,
                                       OUT not_after timestamptz, OUT sha256 bytea)
    AS 'MODULE_PATHNAME', 'mdm_inspect_push_cert'
    LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION mdm_internal._inspect_push_cert(text, text) FROM PUBLIC;

CREATE FUNCTION mdm.upload_push_cert(cert_pem text, key_pem text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c record;
BEGIN
    IF cert_pem IS NULL OR key_pem IS NULL THEN
        RAISE EXCEPTION 'certificate and key must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    c := mdm_internal._inspect_push_cert(cert_pem, key_pem);
    INSERT INTO mdm.push_certs (topic, cert_pem, key_pem, subject, not_before, not_after, sha256)
    VALUES (c.topic, cert_pem, key_pem, c.subject, c.not_before, c.not_after, c.sha256)
    ON CONFLICT (topic) DO UPDATE SET
        cert_pem = excluded.cert_pem, key_pem = excluded.key_pem, subject = excluded.subject,
        not_before = excluded.not_before, not_after = excluded.not_after,
        sha256 = excluded.sha256, uploaded_at = excluded.uploaded_at;
    PERFORM 1 FROM mdm.push_jobs j JOIN mdm.nano_enrollments e
                   ON e.device_id = j.device_id AND e.id = j.enrollment_id
    WHERE j.state = 'pending' AND e.topic = c.topic
    LIMIT 1;
    IF FOUND THEN
        -- jobs that waited for this certificate are claimable now
        PERFORM pg_notify('mdm_push', '');
    END IF;
    RETURN c.topic;
END $$;
COMMENT ON FUNCTION mdm.upload_push_cert(text, text) IS
    'Store an APNs MDM push certificate and its key (PEM); returns the topic. A renewal replaces the old pair';

-- The MDM payload of an enrollment profile, in its Configuration wrapper.
CREATE FUNCTION mdm.enrollment_profile(
        server_url text,
        identity_payload_uuid uuid,
        topic text DEFAULT NULL,
        checkin_url text DEFAULT NULL,
        access_rights integer DEFAULT 8191,
        sign_message boolean DEFAULT true,
        server_capabilities text[] DEFAULT ARRAY['com.apple.mdm.per-user-connections',
                                                 'com.apple.mdm.bootstraptoken'],
        extra_payloads jsonb DEFAULT '[]',
        payload_identifier text DEFAULT 'com.example.mdm',
        display_name text DEFAULT 'MDM enrollment')
    RETURNS bytea
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    the_topic text := topic;
    mdm_payload jsonb;
BEGIN
    IF the_topic IS NULL THEN
        SELECT min(c.topic) INTO the_topic FROM mdm.push_certs c HAVING count(*) = 1;
        IF the_topic IS NULL THEN
            RAISE EXCEPTION 'no topic given, and there is not exactly one push certificate'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSIF NOT EXISTS (SELECT FROM mdm.push_certs c WHERE c.topic = the_topic) THEN
        RAISE EXCEPTION 'no push certificate for topic "%"', the_topic
            USING ERRCODE = 'undefined_object', HINT = 'Upload it with mdm.upload_push_cert().';
    END IF;
    IF jsonb_typeof(extra_payloads) <> 'array' THEN
        RAISE EXCEPTION 'extra_payloads must be a JSON array of payload dictionaries'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- devices talk to an MDM server over https only
    IF server_url !~* '^https://[^/]' OR checkin_url !~* '^https://[^/]' THEN
        RAISE EXCEPTION 'ServerURL and CheckInURL must be https URLs, not "%"',
                        CASE WHEN server_url !~* '^https://[^/]' THEN server_url ELSE checkin_url END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give the full URL the front end serves, such as https://mdm.example.com/mdm.';
    END IF;
    -- PayloadUUIDs in the upper-case form of IdentityCertificateUUID, so
    -- that the same UUID matches whatever case it was given in
    extra_payloads := mdm_internal._upper_payload_uuids(extra_payloads);
    IF NOT EXISTS (SELECT FROM jsonb_array_elements(extra_payloads) p
                   WHERE p->>'PayloadUUID' = upper(identity_payload_uuid::text)) THEN
        RAISE EXCEPTION 'IdentityCertificateUUID % matches no payload of the profile', identity_payload_uuid
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The device looks for its identity (a SCEP, ACME or PKCS #12 payload) in the enrollment profile itself.',
                  HINT = 'Pass the identity payload in extra_payloads with this PayloadUUID.';
    END IF;
    mdm_payload := jsonb_strip_nulls(jsonb_build_object(
        'PayloadType', 'com.apple.mdm',
        'PayloadVersion', 1,
        'PayloadIdentifier', payload_identifier || '.mdm',
        'PayloadUUID', upper(gen_random_uuid()::text),
        'PayloadDisplayName', display_name,
        'Topic', the_topic,
        'ServerURL', server_url,
        'CheckInURL', coalesce(checkin_url, server_url),
        'IdentityCertificateUUID', upper(identity_payload_uuid::text),
        'AccessRights', access_rights,
        'SignMessage', sign_message,
        'CheckOutWhenRemoved', true,
        'ServerCapabilities', to_jsonb(server_capabilities)));
    -- no top-level PayloadScope: a System-scoped enrollment profile keeps
    -- macOS from opening the user channel
    RETURN mdm.jsonb_to_plist(jsonb_build_object(
        'PayloadType', 'Configuration',
        'PayloadVersion', 1,
        'PayloadIdentifier', payload_identifier,
        'PayloadUUID', upper(gen_random_uuid()::text),
        'PayloadDisplayName', display_name,
        'PayloadContent', extra_payloads || jsonb_build_array(mdm_payload)));
END $$;
COMMENT ON FUNCTION mdm.enrollment_profile(text, uuid, text, text, integer, boolean, text[], jsonb, text, text) IS
    'An unsigned enrollment profile: the MDM payload (with per-user connections) and the extra payloads, the identity among them. Under trust on first use a device that enrolls again with a new identity is refused: store the SCEP CA as a device_identity trust anchor before the first re-enrollment';
