--
-- The plist layer: XML and binary plists to jsonb and back.
--

-- A command report with nested QueryResponses
SELECT jsonb_pretty(mdm.plist_to_jsonb(v('connect/07-acknowledged-deviceinformation.plist')));
SELECT mdm.plist_to_jsonb(v('connect/07-acknowledged-deviceinformation.plist'))
       #> '{QueryResponses,AvailableDeviceCapacity}' AS capacity;

-- XML and binary encodings of the same message give the same jsonb
SELECT x.name, mdm.plist_to_jsonb(x.body) = mdm.plist_to_jsonb(b.body) AS same
FROM vectors x JOIN vectors b ON b.name = replace(x.name, '.plist', '.bplist')
                                OR b.name = replace(x.name, '.mobileconfig', '.bplist.mobileconfig')
WHERE x.name <> b.name
ORDER BY 1;

-- Round trips are stable for every plist vector of checkin/, connect/,
-- profiles/ (the CMS-signed profile is not a plist) and our own:
-- jsonb -> plist -> jsonb gives the same jsonb, and the plist it writes
-- is a fixed point.
SELECT count(*) AS vectors,
       count(*) FILTER (WHERE mdm.plist_to_jsonb(mdm.jsonb_to_plist(j)) = j) AS jsonb_stable,
       count(*) FILTER (WHERE mdm.jsonb_to_plist(mdm.plist_to_jsonb(mdm.jsonb_to_plist(j)))
                              = mdm.jsonb_to_plist(j)) AS plist_stable
FROM (SELECT name, mdm.plist_to_jsonb(body) AS j FROM vectors
      WHERE name ~ '^(checkin|connect|profiles)/' AND name !~ 'signed'
         OR name ~ '^own/edge') s;

-- The mapping of every plist type
SELECT jsonb_pretty(mdm.plist_to_jsonb(v('own/edge-values.bplist')));
SELECT convert_from(mdm.jsonb_to_plist(mdm.plist_to_jsonb(v('own/edge-values.bplist'))), 'UTF8');

-- Data and dates in SQL
SELECT mdm.plist_data(mdm.plist_to_jsonb(v('checkin/02-tokenupdate-device.plist')) -> 'Token') AS token,
       mdm.plist_date('{"$date": "2026-11-28T09:46:28Z"}') AT TIME ZONE 'UTC' AS date;
-- plist_date reads only the form the mapping writes, in UTC whatever the
-- TimeZone, so it is immutable; plist_data only base64, as jsonb_to_plist
SET TimeZone = 'America/New_York';
SELECT mdm.plist_date('{"$date": "2026-11-28T09:46:28.25Z"}') AS date_ny,
       mdm.plist_date('{"$date": "1969-07-20T20:17:40Z"}') AS before_2001,
       mdm.plist_date('{"$date": "1932-12-13T20:45:52Z"}') AS first_date;
RESET TimeZone;
SELECT p.oid::regprocedure AS function, l.lanname, p.provolatile, p.proisstrict
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid IN ('mdm.plist_data(jsonb)'::regprocedure, 'mdm.plist_date(jsonb)'::regprocedure) ORDER BY 1;
SELECT t AS value, try(format('SELECT mdm.plist_date(%L)', t)) AS result
FROM unnest(ARRAY['{"$date": "now"}', '{"$date": "2026-11-28T09:46:28"}', '{"$date": "2026-11-28 09:46:28Z"}',
                  '{"$date": "2026-11-28T09:46:28+01:00"}', '{"$date": "2026-02-30T00:00:00Z"}',
                  '{"$date": "2070-01-01T00:00:00Z"}', '{"$date": 1}', '{"$date": null}']) AS t;
SELECT t AS value, try(format('SELECT mdm.plist_data(%L)', t)) AS result
FROM unnest(ARRAY['{"$data": "not base64!"}', '{"$data": 1}', '{"$data": null}']) AS t;
-- anything that is not a tagged value of the kind is NULL
SELECT t AS value, mdm.plist_data(t::jsonb) IS NULL AS data_null, mdm.plist_date(t::jsonb) IS NULL AS date_null
FROM unnest(ARRAY['"AAEC"', '"2026-11-28T09:46:28Z"', '[{"$data": "AAEC"}]', '{"$data": "AAEC", "x": 1}',
                  '{"$dict": {"$date": "2026-11-28T09:46:28Z"}}']) AS t;

-- Integers: negative values and the int64 limits, in both directions
SELECT mdm.plist_to_jsonb(convert_to('<plist><array><integer>-42</integer><integer>9223372036854775807</integer>'
                                     '<integer>-9223372036854775808</integer><integer>0x10</integer></array></plist>', 'UTF8'));
SELECT convert_from(mdm.jsonb_to_plist('[-42, 9223372036854775807, -9223372036854775808]'), 'UTF8');
SELECT try($$SELECT mdm.plist_to_jsonb(convert_to('<plist><integer>9223372036854775808</integer></plist>', 'UTF8'))$$);
SELECT try($$SELECT mdm.plist_to_jsonb(convert_to('<plist><integer>-9223372036854775809</integer></plist>', 'UTF8'))$$);
SELECT try($$SELECT mdm.jsonb_to_plist('9223372036854775808')$$);

-- Reals keep a fractional part; whole JSON numbers are integers
SELECT mdm.plist_to_jsonb(convert_to('<array><real>2</real><real>0.1</real><real>-1.5e3</real><real>1e30</real></array>', 'UTF8'));
SELECT convert_from(mdm.jsonb_to_plist('[2.0, 0.1, -1500.0, 3]'), 'UTF8');

-- Scalars at the root, empty containers, tagged values
SELECT mdm.plist_to_jsonb(mdm.jsonb_to_plist('"text"')) AS string,
       mdm.plist_to_jsonb(mdm.jsonb_to_plist('{"$data": "AAEC"}')) AS data,
       mdm.plist_to_jsonb(mdm.jsonb_to_plist('{"$date": "2001-01-01T00:00:00Z"}')) AS date,
       mdm.plist_to_jsonb(mdm.jsonb_to_plist('{"a": {}, "b": []}')) AS empty;

-- A dict whose only key looks like a tag is wrapped in {"$dict": ...}
SELECT mdm.plist_to_jsonb(convert_to('<dict><key>$data</key><string>not data</string></dict>', 'UTF8')) AS escaped;
SELECT convert_from(mdm.jsonb_to_plist('{"$dict": {"$data": "not data"}}'), 'UTF8');

-- Strings: entities, CDATA, comments, whitespace, non-ASCII, CR
SELECT mdm.plist_to_jsonb(convert_to(E'\uFEFF<?xml version="1.0" encoding="utf-8"?>\n<!-- c -->\n<plist version="1.0">'
    '<array><string>a &amp; b &lt;c&gt; &#233;&#x263A; <![CDATA[<raw>]]><!-- x --> end </string>'
    '<string/><string>  two  spaces  </string><string>Zoë</string></array></plist>', 'UTF8'));
SELECT mdm.plist_to_jsonb(mdm.jsonb_to_plist(E'"line\\r\\nbreak <&>"')) = E'"line\\r\\nbreak <&>"'::jsonb AS cr_kept;

-- Dates: fractions of a second, before 2001, and the range libplist holds
SELECT mdm.plist_to_jsonb(mdm.jsonb_to_plist('[{"$date": "2026-11-28T09:46:28.25Z"}, {"$date": "1969-07-20T20:17:40Z"}]'));
SELECT try($$SELECT mdm.jsonb_to_plist('{"$date": "2070-01-01T00:00:00Z"}')$$);
SELECT try($$SELECT mdm.jsonb_to_plist('{"$date": "2026-02-30T00:00:00Z"}')$$);
SELECT try($$SELECT mdm.plist_to_jsonb(convert_to('<date>yesterday</date>', 'UTF8'))$$);

-- Malformed XML plists are refused, never guessed at
SELECT t AS input, try(format('SELECT mdm.plist_to_jsonb(convert_to(%L, ''UTF8''))', t)) AS result
FROM unnest(ARRAY[
    '<plist><integer>12abc</integer></plist>',
    '<plist><real>1.5x</real></plist>',
    '<plist><real>nan</real></plist>',
    '<plist><data>AA$=</data></plist>',
    '<plist><true>yes</true></plist>',
    '<plist><dict><key>a</key><integer>1</integer><key>a</key><integer>2</integer></dict></plist>',
    '<plist><dict><key>a</key></dict></plist>',
    '<plist><dict><string>a</string></dict></plist>',
    '<plist><array><key>a</key></array></plist>',
    '<plist><dict/></plist><dict/>',
    '<plist><dict/><dict/></plist>',
    '<plist><dict></array></plist>',
    '<plist><bogus/></plist>',
    '<plist><string>&nbsp;</string></plist>',
    '<plist><string>&#0;</string></plist>',
    '<plist><string>&#xD800;</string></plist>',
    '<?xml version="1.0" encoding="ISO-8859-1"?><plist><string/></plist>',
    '<plist><string>unterminated',
    '<plist></plist>',
    '',
    'bplist15'
]) AS t;
SELECT try($$SELECT mdm.plist_to_jsonb('\xfeff003c0070'::bytea)$$) AS utf16;

-- Hostile binary plists of our own
SELECT name, try(format('SELECT mdm.plist_to_jsonb(v(%L))', name)) AS result
FROM vectors WHERE name ~ '^own/' AND name !~ 'edge' ORDER BY name;

-- Every hostile vector of bad/ converts or fails with its documented SQLSTATE
SELECT name, left(try(format('SELECT mdm.plist_to_jsonb(v(%L))', name)), 150) AS result
FROM vectors WHERE name ~ '^bad/' ORDER BY name;

-- The limits are settings
SET mdm.max_nesting_depth = 2;
SELECT try($$SELECT mdm.plist_to_jsonb(convert_to('<array><array><array/></array></array>', 'UTF8'))$$);
SELECT try($$SELECT mdm.jsonb_to_plist('[[[]]]')$$);
SELECT mdm.jsonb_to_plist('[[]]') IS NOT NULL AS two_levels_ok;
RESET mdm.max_nesting_depth;
SET mdm.max_plist_nodes = 5;
SELECT try($$SELECT mdm.plist_to_jsonb(convert_to('<array><true/><true/><true/><true/><true/></array>', 'UTF8'))$$);
RESET mdm.max_plist_nodes;
SET mdm.max_message_bytes = '16MB';
-- with the size limit raised, 100,000 levels of XML nesting still stop at the depth limit
SELECT try($$SELECT mdm.plist_to_jsonb(v('bad/10-deep-nesting.plist'))$$);
SELECT length(mdm.plist_to_jsonb(v('bad/13-huge-string.plist')) ->> 'UDID') AS huge_string_udid;
RESET mdm.max_message_bytes;

-- Characters XML 1.0 cannot represent at all (C0 controls other than tab,
-- LF and CR; U+FFFE, U+FFFF) are refused when writing, naming where they are
SELECT t AS value, try(format('SELECT mdm.jsonb_to_plist(%L)', t)) AS result
FROM unnest(ARRAY['"a\u0001b"', '{"Command": {"Items": ["ok", "x\u001fy"]}}', '{"a": {"ke\u0007y": 1}}',
                  '{"a": {"$dict": {"$data": "\uffff"}}}', '["\ufffe"]', '{"name": "Zoë\u000b"}']) AS t;
-- tab, LF, CR, DEL, C1 controls and U+FFFD are written
SELECT mdm.plist_to_jsonb(mdm.jsonb_to_plist('"\t\n\r\u007f\u0085\ufffd"'))
       = '"\t\n\r\u007f\u0085\ufffd"'::jsonb AS allowed_kept;
-- a binary plist may carry a control character, and jsonb too; XML cannot
SELECT mdm.plist_to_jsonb(v('own/control-char.bplist')) AS from_binary,
       try($$SELECT mdm.jsonb_to_plist(mdm.plist_to_jsonb(v('own/control-char.bplist')))$$) AS to_xml;
-- and the XML reader refuses them, raw or as character references
SELECT d AS input, try(format('SELECT mdm.plist_to_jsonb(convert_to(%L, ''UTF8''))', x)) AS result
FROM (VALUES ('&#1; in a string', '<plist><string>&#1;</string></plist>'),
             ('&#x1F; in a key', '<dict><key>&#x1F;</key><true/></dict>'),
             ('&#xFFFE;', '<string>&#xFFFE;</string>'),
             ('&#xFFFF;', '<string>&#xFFFF;</string>'),
             ('raw U+0001 in a string', E'<plist><string>a\x01b</string></plist>'),
             ('raw U+001B in a comment', E'<!-- \x1b --><plist><true/></plist>'),
             ('raw U+FFFF in a key', E'<dict><key>\uFFFF</key><true/></dict>'),
             ('&#9;&#10;&#13; are fine', '<string>&#9;&#10;&#13;</string>')) AS t(d, x);

-- jsonb that has no plist form
SELECT try($$SELECT mdm.jsonb_to_plist('{"a": null}')$$);
SELECT try($$SELECT mdm.jsonb_to_plist('{"$data": "not base64!"}')$$);
SELECT try($$SELECT mdm.jsonb_to_plist('{"$data": 1}')$$);
SELECT try($$SELECT mdm.jsonb_to_plist('{"$dict": []}')$$);

-- The limits can be set only by superusers
CREATE ROLE regress_mdm_plist_tester;
SET ROLE regress_mdm_plist_tester;
SELECT try($$SET mdm.max_message_bytes = '1GB'$$);
RESET ROLE;
DROP ROLE regress_mdm_plist_tester;
