-- Periodic upkeep: mdm.run_maintenance() and its scheduling with pg_cron.
--
-- run_maintenance() is the one function periodic work goes through.  It is
-- single-flight (an advisory lock), does nothing on a standby, and works in
-- bounded batches so that a backlog drains over several runs instead of one
-- long transaction.

-- Where the reconcile sweep of run_maintenance() goes on from: the last
-- device it reconciled.  One row; not dumped (a restore starts a new sweep).
CREATE TABLE mdm.maintenance_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    reconcile_after text NOT NULL DEFAULT ''
);
INSERT INTO mdm.maintenance_state DEFAULT VALUES;
COMMENT ON TABLE mdm.maintenance_state IS
    'Progress of the reconcile sweep of mdm.run_maintenance(): the device ID it continues after';

-- The safety net of profile delivery: reconcile the next batch_size
-- devices after where the last run stopped, wrapping around, so that every
-- device is reconciled every (devices / batch_size) runs without one long
-- transaction.  Like mdm.reconcile() it holds 'mdm.reconcile.devices'
-- exclusively, so that no first TokenUpdate reconciles one of its devices
-- at the same time (docs/profiles.md); it only tries, and skips the slice
-- while a reconcile() or such a TokenUpdate runs.  Not the single-flight
-- lock of reconcile(): an administrator's reconcile() waits for this run
-- instead of being skipped.
CREATE FUNCTION mdm_internal._reconcile_slice(batch_size integer) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    after text;
    batch text[];
    result jsonb;
    last_device text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('mdm.reconcile.devices')) THEN
        RETURN jsonb_build_object('skipped', 'a reconcile() or a first TokenUpdate is running');
    END IF;
    INSERT INTO mdm.maintenance_state DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT reconcile_after INTO after FROM mdm.maintenance_state FOR UPDATE;
    batch := ARRAY(SELECT id FROM mdm.nano_devices WHERE id > after ORDER BY id LIMIT batch_size);
    IF cardinality(batch) = 0 AND after <> '' THEN
        batch := ARRAY(SELECT id FROM mdm.nano_devices ORDER BY id LIMIT batch_size);
    END IF;
    IF cardinality(batch) = 0 THEN
        RETURN jsonb_build_object('devices', 0, 'installs', 0, 'removes', 0);
    END IF;
    result := mdm_internal._reconcile_batch(batch);
    -- (the last device in a variable of its own: Citus 13.2.2 crashes on an
    -- UPDATE of a reference table that sets a column to an array element)
    last_device := batch[cardinality(batch)];
    UPDATE mdm.maintenance_state SET reconcile_after = last_device;
    RETURN jsonb_build_object('devices', cardinality(batch)) || result;
END $$;

-- Delete up to batch_size rows of finished history older than the retention.
CREATE FUNCTION mdm_internal._prune_history(batch_size integer) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - make_interval(secs => mdm_internal._setting('mdm.history_retention')::integer);
    n_messages integer;
    n_queue integer;
    n_orphans integer;
    n_pushes integer;
    n_commands integer;
    doomed_commands uuid[];
BEGIN
    WITH doomed AS (SELECT device_id, id FROM mdm.checkin_messages
                    WHERE received_at < cutoff LIMIT batch_size),
         gone AS (DELETE FROM mdm.checkin_messages m USING doomed d
                  WHERE m.device_id = d.device_id AND m.id = d.id RETURNING 1)
    SELECT count(*) INTO n_messages FROM gone;

    -- finished or cleared queue items, with their results (no foreign key
    -- cascades: schema/30_queue.sql)
    WITH doomed AS (SELECT device_id, id, command_uuid FROM mdm.nano_enrollment_queue
                    WHERE NOT active AND coalesce(finished_at, cleared_at) < cutoff
                    LIMIT batch_size),
         gone AS (DELETE FROM mdm.nano_enrollment_queue q USING doomed d
                  WHERE q.device_id = d.device_id AND q.id = d.id
                    AND q.command_uuid = d.command_uuid
                  RETURNING q.device_id, q.id, q.command_uuid),
         results AS (DELETE FROM mdm.nano_command_results r USING gone g
                     WHERE r.device_id = g.device_id AND r.id = g.id AND r.command_uuid = g.command_uuid)
    SELECT count(*) INTO n_queue FROM gone;

    WITH doomed AS (SELECT device_id, id FROM mdm.orphan_reports
                    WHERE received_at < cutoff LIMIT batch_size),
         gone AS (DELETE FROM mdm.orphan_reports o USING doomed d
                  WHERE o.device_id = d.device_id AND o.id = d.id RETURNING 1)
    SELECT count(*) INTO n_orphans FROM gone;

    -- (a job finishes after it is created: the old ones are found by their
    -- creation, through the BRIN index), with their attempts; and pending
    -- jobs whose enrollment is gone (a hand delete racing a fan-out's
    -- claim can leave one: no foreign key, schema/30_queue.sql), through
    -- the index of pending jobs
    WITH finished AS (SELECT device_id, id FROM mdm.push_jobs
                      WHERE created_at < cutoff
                        AND state IN ('sent', 'failed', 'superseded') AND finished_at < cutoff
                      LIMIT batch_size),
         orphaned AS (SELECT j.device_id, j.id FROM mdm.push_jobs j
                      WHERE j.state = 'pending'
                        AND NOT EXISTS (SELECT FROM mdm.nano_enrollments e
                                        WHERE e.device_id = j.device_id AND e.id = j.enrollment_id)
                      LIMIT batch_size),
         doomed AS (SELECT device_id, id FROM finished UNION SELECT device_id, id FROM orphaned),
         gone AS (DELETE FROM mdm.push_jobs j USING doomed d
                  WHERE j.device_id = d.device_id AND j.id = d.id RETURNING j.device_id, j.id),
         attempts AS (DELETE FROM mdm.push_attempts a USING gone g
                      WHERE a.device_id = g.device_id AND a.job_id = g.id)
    SELECT count(*) INTO n_pushes FROM gone;

    -- commands no queue item refers to any more
    IF mdm_internal._distributed() THEN
        -- on Citus (docs/citus.md): no sub-select from a reference table
        -- correlated with a distributed one; the old commands' items are
        -- looked up in one pass over the shards instead
        doomed_commands := ARRAY(SELECT c.command_uuid FROM mdm.nano_commands c
                                 WHERE c.created_at < cutoff);
        doomed_commands := ARRAY(SELECT u FROM unnest(doomed_commands) u
                                 EXCEPT
                                 SELECT q.command_uuid FROM mdm.nano_enrollment_queue q
                                 WHERE q.command_uuid = ANY (doomed_commands));
        DELETE FROM mdm.nano_commands c
        WHERE c.command_uuid = ANY (doomed_commands[1:batch_size]);
        GET DIAGNOSTICS n_commands = ROW_COUNT;
    ELSE
        WITH doomed AS (SELECT c.command_uuid FROM mdm.nano_commands c
                        WHERE c.created_at < cutoff
                          AND NOT EXISTS (SELECT FROM mdm.nano_enrollment_queue q
                                          WHERE q.command_uuid = c.command_uuid)
                          -- (nor a chunk of targets still waiting: schema/30_queue.sql)
                          AND NOT EXISTS (SELECT FROM mdm.queue_fanouts f
                                          WHERE f.command_uuid = c.command_uuid)
                        LIMIT batch_size),
             gone AS (DELETE FROM mdm.nano_commands c USING doomed d
                      WHERE c.command_uuid = d.command_uuid RETURNING 1)
        SELECT count(*) INTO n_commands FROM gone;
    END IF;

    RETURN jsonb_build_object('checkin_messages', n_messages, 'queue_items', n_queue,
                              'orphan_reports', n_orphans, 'push_jobs', n_pushes,
                              'commands', n_commands);
END $$;

-- Push again to enrollments that have commands waiting and no push on the
-- way: those that have not polled since their last push (after
-- mdm.repush_interval, doubled for each unanswered push, at most a day),
-- and those that polled without getting a command that was queued before
-- the poll (its transaction committed after the poll had looked).  Driven
-- by the pending work, not by every enrollment.
CREATE FUNCTION mdm_internal._repush(batch_size integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    base interval := make_interval(secs => mdm_internal._setting('mdm.repush_interval')::integer);
    base_secs float8 := mdm_internal._setting('mdm.repush_interval')::float8;
    targets mdm_internal._target[];
BEGIN
    SELECT array_agg(ROW(e.device_id, e.id, e.type, NULL)::mdm_internal._target) INTO targets
    FROM (SELECT e.device_id, e.id, e.type
          FROM (SELECT DISTINCT q.device_id, q.id FROM mdm.nano_enrollment_queue q
                WHERE q.active) w
          JOIN mdm.nano_enrollments e ON e.device_id = w.device_id AND e.id = w.id
          CROSS JOIN LATERAL (
              SELECT count(*) AS unanswered, max(j.finished_at) AS last_push
              FROM mdm.push_jobs j
              WHERE j.device_id = e.device_id AND j.enrollment_id = e.id
                AND j.state = 'sent' AND j.finished_at > e.last_seen_at) p
          WHERE e.enabled AND e.token_invalid_at IS NULL
            AND (p.unanswered > 0
                     -- in seconds, the exponent capped where a minute
                     -- already exceeds a day: an interval would overflow
                     -- after about 32 unanswered pushes
                     AND p.last_push < now() - make_interval(secs => least(
                         base_secs * 2.0 ^ least(p.unanswered - 1, 20), 86400))
                 OR p.unanswered = 0 AND e.last_seen_at < now() - base
                     AND EXISTS (SELECT FROM mdm.nano_enrollment_queue q
                                 WHERE q.device_id = e.device_id AND q.id = e.id AND q.active
                                   AND q.sent_at IS NULL AND q.created_at < e.last_seen_at))
            AND NOT EXISTS (SELECT FROM mdm.push_jobs j
                            WHERE j.device_id = e.device_id AND j.enrollment_id = e.id
                              AND j.state IN ('pending', 'claimed'))
          LIMIT batch_size) e;
    IF targets IS NULL THEN
        RETURN 0;
    END IF;
    -- pending jobs, never a fan-out row: the test above sees jobs only
    RETURN mdm_internal._announce_pushes(targets, lazy => false);
END $$;

-- Commands that waited longer than mdm.pending_command_lifetime for a
-- device that never came back are dropped (0 keeps them forever): neither
-- queued nor handed out within the lifetime.  A connect handing an item
-- out holds its row lock: the item is skipped, not dropped under it (and
-- the connect skips an item being dropped).  See docs/queue.md.
CREATE FUNCTION mdm_internal._expire_pending(batch_size integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    lifetime integer := mdm_internal._setting('mdm.pending_command_lifetime')::integer;
    expired integer := 0;
    cutoff timestamptz;
    item record;
BEGIN
    IF lifetime = 0 THEN
        RETURN 0;
    END IF;
    IF mdm_internal._distributed() THEN
        -- on Citus (docs/citus.md), where a row lock cannot span shards: the
        -- candidates read without a lock, each then expired by its key with
        -- the conditions checked again (a poll that has just handed it out
        -- keeps it)
        cutoff := now() - make_interval(secs => lifetime);
        FOR item IN SELECT q.device_id, q.id, q.command_uuid FROM mdm.nano_enrollment_queue q
                    WHERE q.active AND q.created_at < cutoff AND (q.sent_at IS NULL OR q.sent_at < cutoff)
                    LIMIT batch_size
        LOOP
            UPDATE mdm.nano_enrollment_queue q
            SET active = false, cleared_at = now(), cleared_reason = 'expired'
            WHERE q.device_id = item.device_id AND q.id = item.id AND q.command_uuid = item.command_uuid
              AND q.active AND q.created_at < cutoff AND (q.sent_at IS NULL OR q.sent_at < cutoff);
            CONTINUE WHEN NOT FOUND;
            expired := expired + 1;
            UPDATE mdm.profile_deliveries p
            SET status = 'failed', updated_at = now(),
                error_chain = jsonb_build_array(jsonb_build_object('LocalizedDescription',
                    'The command expired before the device fetched it (mdm.pending_command_lifetime).'))
            WHERE p.device_id = item.device_id AND p.enrollment_id = item.id
              AND p.command_uuid = item.command_uuid;
        END LOOP;
        RETURN expired;
    END IF;
    WITH doomed AS (SELECT device_id, id, command_uuid FROM mdm.nano_enrollment_queue
                    WHERE active AND created_at < now() - make_interval(secs => lifetime)
                      AND (sent_at IS NULL OR sent_at < now() - make_interval(secs => lifetime))
                    LIMIT batch_size
                    FOR UPDATE SKIP LOCKED),
         gone AS (UPDATE mdm.nano_enrollment_queue q
                  SET active = false, cleared_at = now(), cleared_reason = 'expired'
                  FROM doomed d
                  WHERE q.device_id = d.device_id AND q.id = d.id AND q.command_uuid = d.command_uuid
                  RETURNING q.device_id, q.id, q.command_uuid),
         profiles AS (UPDATE mdm.profile_deliveries p
                      SET status = 'failed', updated_at = now(),
                          error_chain = jsonb_build_array(jsonb_build_object('LocalizedDescription',
                              'The command expired before the device fetched it (mdm.pending_command_lifetime).'))
                      FROM gone g
                      WHERE p.device_id = g.device_id AND p.enrollment_id = g.id AND p.command_uuid = g.command_uuid)
    SELECT count(*) INTO expired FROM gone;
    RETURN expired;
END $$;

CREATE FUNCTION mdm.run_maintenance(batch_size integer DEFAULT 10000) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result jsonb;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1, not %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_is_in_recovery() THEN
        RETURN jsonb_build_object('skipped', 'standby');
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('mdm.run_maintenance')) THEN
        RETURN jsonb_build_object('skipped', 'another run_maintenance() is running');
    END IF;
    -- first: what follows (expiry, re-push) reads queue items
    result := jsonb_build_object('expanded_fanouts',
                                 mdm_internal._expand_old_queue_fanouts(greatest(batch_size / 1000, 1)))
              || jsonb_build_object('released_push_claims', mdm_internal._release_stale_claims(),
                                 'expired_commands', mdm_internal._expire_pending(batch_size),
                                 'repushed', mdm_internal._repush(batch_size))
              || mdm_internal._prune_history(batch_size)
              || jsonb_build_object('events', mdm_internal._prune_events(batch_size));
    -- last: it holds its lock until the end of the transaction
    RETURN result || jsonb_build_object('reconciled', mdm_internal._reconcile_slice(batch_size));
END $$;
COMMENT ON FUNCTION mdm.run_maintenance(integer) IS
    'Periodic upkeep (single-flight, bounded batches, a no-op on a standby): stale push claims, expired commands, re-push, a slice of reconcile, history pruning';

-- Register run_maintenance() with pg_cron when pg_cron is there.
CREATE FUNCTION mdm.schedule_maintenance(schedule text DEFAULT '* * * * *') RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cron_db text := current_setting('cron.database_name', true);
    command text := 'SELECT mdm.run_maintenance()';
    statement text;
BEGIN
    IF cron_db IS NULL THEN
        RETURN 'pg_cron is not loaded. Add pg_cron to shared_preload_libraries, set '
            || 'cron.database_name, restart, CREATE EXTENSION pg_cron in that database, and call '
            || 'mdm.schedule_maintenance() again; or run "' || command || '" every minute from any scheduler.';
    END IF;
    statement := format('SELECT cron.schedule_in_database(%L, %L, %L, %L)',
                        'mdm_user maintenance ' || current_database(), schedule, command,
                        current_database());
    IF cron_db <> current_database() THEN
        RETURN 'pg_cron runs in database ' || quote_ident(cron_db)
            || '; run this statement there: ' || statement;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RETURN 'pg_cron is loaded but not installed in this database: run CREATE EXTENSION pg_cron, '
            || 'then mdm.schedule_maintenance() again.';
    END IF;
    EXECUTE statement;
    RETURN format('scheduled %L in database %s (%s)', command, current_database(), schedule);
END $$;
COMMENT ON FUNCTION mdm.schedule_maintenance(text) IS
    'Schedule mdm.run_maintenance() with pg_cron, or say what to run where when that cannot be done from here';
