--
-- Parsing never leaks: 200,000 calls in one backend, half of them on
-- input that fails (libplist trees, iterators and key copies are freed by
-- a memory-context reset callback on every path), and the backend's malloc
-- and memory-context totals stay flat.
--
CREATE FUNCTION parse_many(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    good_xml bytea := v('checkin/05-tokenupdate-user.plist');
    good_bin bytea := v('checkin/05-tokenupdate-user.bplist');
    bad bytea[] := ARRAY[v('bad/20-shared-refs.bplist'), v('bad/11-binary-bad-offsets.bplist'),
                         v('bad/12-invalid-utf8.plist'), v('bad/14-xml-entity-bomb.plist'),
                         v('own/duplicate-key.bplist'), v('own/cycle.bplist'),
                         convert_to('<dict><key>a</key><array><string>x</string><integer>1q</integer></array></dict>', 'UTF8')];
    failures int := 0;
    j jsonb;
BEGIN
    FOR i IN 1..n LOOP
        IF i % 2 = 0 THEN
            j := mdm.plist_to_jsonb(CASE WHEN i % 4 = 0 THEN good_xml ELSE good_bin END);
        ELSE
            BEGIN
                j := mdm.plist_to_jsonb(bad[1 + (i / 2) % array_length(bad, 1)]);
            EXCEPTION WHEN OTHERS THEN
                failures := failures + 1;
            END;
        END IF;
    END LOOP;
    RETURN failures;
END $$;

-- A first run sizes the backend's caches (plan caches, subtransaction
-- bookkeeping: about 200 kB, once); the second run of 200,000 calls is
-- measured: a leak of even one byte per call would show.
SELECT parse_many(200000) AS failures;
SELECT malloc_bytes AS malloc_before, context_bytes AS context_before FROM mdm.backend_memory() \gset
SELECT parse_many(200000) AS failures;
SELECT malloc_bytes - :malloc_before < 64 * 1024 AS malloc_flat,
       context_bytes - :context_before < 64 * 1024 AS contexts_flat
FROM mdm.backend_memory();
