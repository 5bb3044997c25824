--
-- Binary plists that multiply bytes: libplist 2.2 copies a string or data
-- object for every reference to it, so a small body can stand for a tree
-- of gigabytes.  The binary pre-scan bounds the expanded size (strings,
-- keys and data once every reference is copied) by mdm.max_message_bytes
-- and refuses more with 54000 before libplist sees the bytes.  Each shape
-- below, at every entry point that takes a plist (the device endpoints,
-- a profile upload, a command as a plist, the Payload of an InstallProfile,
-- the conversion itself), is refused, and the
-- backend's peak resident set (VmHWM) grows by less than twice
-- mdm.max_message_bytes; the tree at the bound is accepted.
--
SELECT reset_mdm();
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist']) n;

-- A binary plist of the given objects (object 0 is the root), with 4-byte
-- offsets and references.
CREATE FUNCTION bp_head(kind int, n int) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN CASE WHEN n < 15 THEN set_byte('\x00'::bytea, 0, kind * 16 + n)
                ELSE set_byte('\x00'::bytea, 0, kind * 16 + 15) || '\x12'::bytea || int4send(n) END;
CREATE FUNCTION bp_refs(refs int[]) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN coalesce((SELECT string_agg(int4send(r), ''::bytea ORDER BY i)
                     FROM unnest(refs) WITH ORDINALITY u(r, i)), '\x');
CREATE FUNCTION bp_array(refs int[]) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN bp_head(10, cardinality(refs)) || bp_refs(refs);
CREATE FUNCTION bp_dict(keys int[], vals int[]) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN bp_head(13, cardinality(keys)) || bp_refs(keys) || bp_refs(vals);
CREATE FUNCTION bp_ascii(s text) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN bp_head(5, length(s)) || convert_to(s, 'UTF8');
CREATE FUNCTION bp_data(n int) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN bp_head(4, n) || convert_to(repeat('D', n), 'UTF8');
-- n UTF-16 units of U+4E2D: 2 bytes each in the plist, 3 in UTF-8
CREATE FUNCTION bp_utf16(n int) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN bp_head(6, n) || decode(repeat('4e2d', n), 'hex');
CREATE FUNCTION bp(objs bytea[]) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    body bytea := convert_to('bplist00', 'UTF8');
    offsets bytea := '\x';
    o bytea;
    table_at int;
BEGIN
    FOREACH o IN ARRAY objs LOOP
        offsets := offsets || int4send(length(body));
        body := body || o;
    END LOOP;
    table_at := length(body);
    RETURN body || offsets || '\x0000000000000404'::bytea
           || int8send(cardinality(objs)) || int8send(0) || int8send(table_at);
END $$;

-- The shapes: one value referenced many times from an array, from a
-- dictionary's values, as a dictionary key (through a shared dictionary),
-- and through nested arrays; data, ASCII strings and UTF-16 strings.
CREATE TEMP TABLE shapes (shape text PRIMARY KEY, body bytea NOT NULL);
INSERT INTO shapes VALUES
    ('data in an array', bp(ARRAY[bp_array(array_fill(1, ARRAY[5000])), bp_data(64000)])),
    ('string in an array', bp(ARRAY[bp_array(array_fill(1, ARRAY[5000])), bp_ascii(repeat('S', 64000))])),
    ('UTF-16 string in an array', bp(ARRAY[bp_array(array_fill(1, ARRAY[5000])), bp_utf16(30000)])),
    ('data as dictionary values',
     bp(ARRAY[bp_dict(ARRAY(SELECT g FROM generate_series(2, 2001) g), array_fill(1, ARRAY[2000])), bp_data(64000)]
        || ARRAY(SELECT bp_ascii('k' || g) FROM generate_series(1, 2000) g))),
    ('string as a dictionary key',
     bp(ARRAY[bp_array(array_fill(1, ARRAY[5000])), bp_dict(ARRAY[2], ARRAY[3]),
              bp_ascii(repeat('K', 64000)), '\x09'::bytea])),
    ('data through nested arrays',
     bp(ARRAY[bp_array(array_fill(1, ARRAY[300])), bp_array(array_fill(2, ARRAY[300])), bp_data(1000)])),
    ('a message dictionary with a shared value',
     bp(ARRAY[bp_dict(ARRAY[1, 2, 3], ARRAY[4, 5, 6]), bp_ascii('MessageType'), bp_ascii('UDID'),
              bp_ascii('Junk'), bp_ascii('Authenticate'), bp_ascii('UDID-1'),
              bp_array(array_fill(7, ARRAY[5000])), bp_data(64000)]));
SELECT shape, length(body) AS bytes FROM shapes ORDER BY shape;

CREATE TEMP TABLE entry_points (entry text PRIMARY KEY, statement text);
INSERT INTO entry_points VALUES
    ('checkin', 'SELECT mdm.checkin(%L::bytea)'),
    ('connect', 'SELECT mdm.connect(%L::bytea)'),
    ('upload_profile', 'SELECT mdm.upload_profile(%L::bytea)'),
    ('enqueue (plist)', 'SELECT mdm.enqueue(ARRAY[''980E3D0B-5A28-537C-B7CB-7AFD15AFB933''], %L::bytea)'),
    ('enqueue (InstallProfile)', 'SELECT mdm.enqueue(ARRAY[''980E3D0B-5A28-537C-B7CB-7AFD15AFB933''], jsonb_build_object(''RequestType'', ''InstallProfile'', ''Payload'', mdm.plist_data_value(%L::bytea)))'),
    ('plist_to_jsonb', 'SELECT mdm.plist_to_jsonb(%L::bytea)');

-- the outcome of a statement, and how far it raised the peak resident set
CREATE FUNCTION peak_of(statement text, OUT outcome text, OUT peak_growth bigint)
    LANGUAGE plpgsql AS $$
DECLARE
    base bigint := (SELECT peak_rss_bytes FROM mdm.backend_memory(true));
BEGIN
    outcome := try(statement);
    peak_growth := (SELECT peak_rss_bytes FROM mdm.backend_memory()) - base;
END $$;

SELECT row_counts() AS before \gset
CREATE TEMP TABLE outcomes AS
SELECT s.shape, e.entry, p.outcome, p.peak_growth
FROM shapes s, entry_points e, peak_of(format(e.statement, s.body)) p;
SELECT shape, string_agg(DISTINCT split_part(outcome, ':', 1), ',') AS sqlstates,
       count(*) AS entry_points,
       max(peak_growth) < 2 * mdm_internal._setting('mdm.max_message_bytes')::bigint AS peak_bounded
FROM outcomes GROUP BY shape ORDER BY shape;
SELECT DISTINCT regexp_replace(outcome, '\d+ bytes', 'N bytes') AS error FROM outcomes;
SELECT row_counts() = :'before' AS nothing_written;

-- At the bound: 1,000,000 bytes of shared data are read (the same body
-- with one more reference is not), and converting them stays within a
-- small multiple of mdm.max_message_bytes.
SELECT o.n, split_part(o.outcome, ':', 1) AS outcome,
       o.peak_growth < 8 * mdm_internal._setting('mdm.max_message_bytes')::bigint AS peak_bounded
FROM (SELECT n, (peak_of(format('SELECT mdm.plist_to_jsonb(%L::bytea)',
                                bp(ARRAY[bp_array(array_fill(1, ARRAY[n])), bp_data(100000)])))).*
      FROM (VALUES (10), (11)) r(n)) o ORDER BY o.n;
SELECT jsonb_array_length(mdm.plist_to_jsonb(bp(ARRAY[bp_array(array_fill(1, ARRAY[10])), bp_data(100000)])));

-- The bound follows the setting.
SET mdm.max_message_bytes = '64kB';
SELECT try(format('SELECT mdm.plist_to_jsonb(%L::bytea)',
                  bp(ARRAY[bp_array(array_fill(1, ARRAY[7])), bp_data(10000)])));
RESET mdm.max_message_bytes;
SELECT try(format('SELECT mdm.plist_to_jsonb(%L::bytea)',
                  bp(ARRAY[bp_array(array_fill(1, ARRAY[7])), bp_data(10000)])));

-- Device identities are bounded too: a certificate or an Mdm-Signature
-- larger than mdm.max_identity_bytes is refused before OpenSSL reads it.
SELECT try(format('SELECT mdm.checkin(v(%L), %L::bytea)', 'checkin/01-authenticate.plist',
                  '\x30' || repeat('00', 70000)));
SELECT try(format('SELECT mdm.connect(v(%L), NULL, %L)', 'connect/01-idle-device.plist', repeat('A', 70000)));
SELECT try(format('SELECT mdm_internal._verify_identity_chain(%L::bytea, %L)', '\x30' || repeat('00', 70000), ''));
SELECT row_counts() = :'before' AS nothing_written;

-- A real that underflows is refused like one that overflows (22003);
-- subnormal values are kept.
SELECT try($$SELECT mdm.plist_to_jsonb(convert_to('<real>1e-400</real>', 'UTF8'))$$);
SELECT try($$SELECT mdm.plist_to_jsonb(convert_to('<real>-2.5E-999</real>', 'UTF8'))$$);
SELECT mdm.plist_to_jsonb(convert_to('<real>1e-310</real>', 'UTF8'))::text::float8 AS subnormal,
       mdm.plist_to_jsonb(convert_to('<real>0e-400</real>', 'UTF8')) AS zero;
