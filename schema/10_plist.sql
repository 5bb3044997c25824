-- The plist layer: XML and binary plists to jsonb and back (src/plist_*.c).

CREATE FUNCTION mdm.plist_to_jsonb(plist bytea) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'mdm_plist_to_jsonb'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.plist_to_jsonb(bytea) IS
    'Convert an XML or binary plist to jsonb; data and dates become {"$data": base64} and {"$date": "...Z"}; empty input (a reply without a body) is NULL';

-- The same for input that must be a plist: empty input is an error.
CREATE FUNCTION mdm_internal._plist_to_jsonb_strict(plist bytea) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'mdm_plist_to_jsonb_strict'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;

CREATE FUNCTION mdm.jsonb_to_plist(value jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'mdm_jsonb_to_plist'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.jsonb_to_plist(jsonb) IS
    'Convert jsonb (in the mapping of mdm.plist_to_jsonb) to an XML plist';

-- The tagged values, read with the rules of mdm.jsonb_to_plist: the same
-- base64, the same date form (UTC, no time zone, no special values), so
-- both are truly immutable.
CREATE FUNCTION mdm.plist_data(value jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'mdm_plist_data'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.plist_data(jsonb) IS
    'The bytes of a plist data value in jsonb form ({"$data": base64}); NULL for other jsonb; an error if the base64 is invalid';

CREATE FUNCTION mdm.plist_date(value jsonb) RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'mdm_plist_date'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.plist_date(jsonb) IS
    'The time of a plist date value in jsonb form ({"$date": "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"}); NULL for other jsonb; an error for any other date text';

CREATE FUNCTION mdm.backend_memory(reset_peak boolean DEFAULT false,
                                   OUT malloc_bytes bigint, OUT context_bytes bigint,
                                   OUT rss_bytes bigint, OUT peak_rss_bytes bigint)
    AS 'MODULE_PATHNAME', 'mdm_backend_memory'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION mdm.backend_memory(boolean) IS
    'Memory this backend holds: malloc''ed bytes (libplist, OpenSSL), PostgreSQL memory-context bytes, and its resident set now and at its peak (VmRSS, VmHWM); reset_peak first resets the peak to the current resident set';
REVOKE ALL ON FUNCTION mdm.backend_memory(boolean) FROM PUBLIC;
