-- mdm_user install script, built by the Makefile from schema/*.sql in name order.
\echo Use "CREATE EXTENSION mdm_user" to load this file. \quit

-- Plain SQL in this script resolves names in pg_catalog first.
SET LOCAL search_path = pg_catalog, pg_temp;

COMMENT ON SCHEMA mdm IS 'mdm_user: Apple MDM server logic (check-in, command queue, profiles, push jobs)';

-- The extension's internal helpers (functions, types and views named _*):
-- a member of the extension, owned by it, dropped with it, and not an
-- interface.  No role has USAGE on it: the API functions that call helpers
-- run as the extension's owner (SECURITY DEFINER) and name them qualified,
-- and views reach theirs by OID, which needs EXECUTE on the function but no
-- USAGE on the schema (schema/70_security.sql).
CREATE SCHEMA mdm_internal;
REVOKE ALL ON SCHEMA mdm_internal FROM PUBLIC;
COMMENT ON SCHEMA mdm_internal IS
    'mdm_user internals: helpers of the mdm functions; not an interface, granted to no role (\df mdm.* is the API)';
