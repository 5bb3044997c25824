--
-- Hostile input at every entry point that takes a plist: each vector of
-- test/vectors/bad/ (oversize, deep nesting in binary and XML, shared
-- references that would expand to 2^23 nodes, invalid UTF-8, truncation,
-- wrong types, an entity bomb) raises its SQLSTATE, writes nothing, uses
-- little memory, and the backend stays up.
--
SELECT reset_mdm();
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist', 'checkin/05-tokenupdate-user.plist']) n;
CREATE FUNCTION row_counts() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(format('%s=%s', c.relname,
                             (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM mdm.%I', c.relname),
                                                                   false, true, '')))[1]), ' ' ORDER BY c.relname)
    FROM pg_class c WHERE c.relnamespace = 'mdm'::regnamespace AND c.relkind = 'r'
$$;
SELECT row_counts() AS before \gset
SELECT malloc_bytes AS malloc_before FROM mdm.backend_memory() \gset

CREATE TEMP TABLE entry_points (entry text, statement text);
INSERT INTO entry_points VALUES
    ('checkin', 'SELECT mdm.checkin(v(%L))'),
    ('connect', 'SELECT mdm.connect(v(%L))'),
    ('upload_profile', 'SELECT mdm.upload_profile(v(%L))'),
    ('enqueue (plist)', 'SELECT mdm.enqueue(ARRAY[''980E3D0B-5A28-537C-B7CB-7AFD15AFB933''], v(%L))'),
    ('plist_to_jsonb', 'SELECT mdm.plist_to_jsonb(v(%L))');
SELECT name,
       max(sqlstate) FILTER (WHERE entry = 'checkin') AS checkin,
       max(sqlstate) FILTER (WHERE entry = 'connect') AS connect,
       max(sqlstate) FILTER (WHERE entry = 'upload_profile') AS upload_profile,
       max(sqlstate) FILTER (WHERE entry = 'enqueue (plist)') AS enqueue,
       max(sqlstate) FILTER (WHERE entry = 'plist_to_jsonb') AS plist_to_jsonb
FROM (SELECT name, entry, split_part(try(format(statement, name)), ':', 1) AS sqlstate
      FROM vectors, entry_points WHERE name ~ '^bad/') r
GROUP BY name ORDER BY name;

-- nothing was written, the backend is up, and its memory did not grow by
-- what libplist would have needed (bad/20 alone would take about 2 GB)
SELECT row_counts() = :'before' AS nothing_written;
SELECT malloc_bytes - :malloc_before < 16 * 1024 * 1024 AS little_memory, pg_backend_pid() > 0 AS backend_up
FROM mdm.backend_memory();

-- Every function of the extension (the API in mdm and the helpers in
-- mdm_internal) called with NULL for every argument, as its owner: a
-- documented error or a result, never a crashed backend (C functions that
-- are not STRICT read their arguments themselves).
-- Functions that change settings or schedules are left out.
SELECT p.proname, split_part(try(format('SELECT count(x.r::text) FROM (SELECT %I.%I(%s) AS r) x',
           p.pronamespace::regnamespace, p.proname,
           (SELECT string_agg(format('NULL::%s', t::regtype), ', ' ORDER BY i)
            FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)))), ':', 1) AS sqlstate
FROM pg_proc p
WHERE p.pronamespace IN ('mdm'::regnamespace, 'mdm_internal'::regnamespace) AND p.prokind = 'f'
  AND p.prorettype <> 'trigger'::regtype
  AND p.proname NOT IN ('schedule_maintenance')
ORDER BY p.proname, p.oid::regprocedure::text;
SELECT pg_backend_pid() > 0 AS backend_still_up;
