-- mdm_user install script, built by the Makefile from schema/*.sql in name order.
\echo Use "CREATE EXTENSION mdm_user" to load this file. \quit

-- Plain SQL in this script resolves names in pg_catalog first.
SET LOCAL search_path = pg_catalog, pg_temp;

COMMENT ON SCHEMA mdm IS 'mdm_user: Apple MDM server logic (check-in, command queue, profiles, push jobs)';
