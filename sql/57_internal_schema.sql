--
-- The API and the internals: schema mdm holds the API (\df mdm.* lists it),
-- the helpers (named _...) live in schema mdm_internal, which belongs to the
-- extension and is granted to no one.
--

-- nothing named _... is left in mdm: functions, relations, types
SELECT count(*) AS mdm_underscore_functions FROM pg_proc
WHERE pronamespace = 'mdm'::regnamespace AND proname LIKE '\_%';
SELECT count(*) AS mdm_underscore_relations FROM pg_class
WHERE relnamespace = 'mdm'::regnamespace AND relname LIKE '\_%';
SELECT count(*) AS mdm_underscore_types FROM pg_type
WHERE typnamespace = 'mdm'::regnamespace AND typname LIKE '\_%' AND typelem = 0;
-- and everything in mdm_internal is named _...
SELECT count(*) > 0 AS has_helpers, count(*) FILTER (WHERE proname NOT LIKE '\_%') AS not_underscore
FROM pg_proc WHERE pronamespace = 'mdm_internal'::regnamespace;

-- mdm_internal is a member of the extension (dropped with it, not dumped)
SELECT e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
WHERE d.classid = 'pg_namespace'::regclass AND d.objid = 'mdm_internal'::regnamespace
  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e';

-- no privilege on the schema for anyone but its owner: PUBLIC and the roles
SELECT count(*) AS schema_grants FROM pg_namespace n, aclexplode(n.nspacl) a
WHERE n.nspname = 'mdm_internal' AND a.grantee <> n.nspowner;
SELECT r AS role, has_schema_privilege(r, 'mdm_internal', 'USAGE') AS usage,
       has_schema_privilege(r, 'mdm_internal', 'CREATE') AS "create"
FROM unnest(ARRAY['mdm_admin', 'mdm_frontend', 'mdm_reader']) r ORDER BY r;
-- nothing in it for PUBLIC (functions, views, types); EXECUTE on the three
-- functions the reporting views call, for the roles that read them
SELECT count(*) AS public_function_grants FROM pg_proc p, aclexplode(p.proacl) a
WHERE p.pronamespace = 'mdm_internal'::regnamespace AND a.grantee = 0;
SELECT count(*) AS public_relation_grants FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relnamespace = 'mdm_internal'::regnamespace AND a.grantee = 0;
-- (types of its own; a view's row type follows the view's privileges)
SELECT count(*) AS public_type_grants FROM pg_type t, aclexplode(coalesce(t.typacl, acldefault('T', t.typowner))) a
WHERE t.typnamespace = 'mdm_internal'::regnamespace AND t.typelem = 0 AND a.grantee = 0
  AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c');
SELECT p.oid::regprocedure AS function, a.grantee::regrole AS grantee, a.privilege_type
FROM pg_proc p, aclexplode(p.proacl) a
WHERE p.pronamespace = 'mdm_internal'::regnamespace AND a.grantee <> p.proowner
ORDER BY p.oid::regprocedure::text COLLATE "C", a.grantee::regrole::text COLLATE "C";

-- the roles cannot name a helper, and need not: their API calls and views work
SET ROLE mdm_admin;
SELECT try($$SELECT mdm_internal._setting('mdm.events')$$) AS admin_names_helper;
SELECT count(*) >= 0 AS admin_reads_profile_status FROM mdm.view_profile_status;
-- a trigger's helper runs as the writer: the unknown-profile notice
INSERT INTO mdm.labels (name) VALUES ('regress-internal') RETURNING id AS label_id \gset
INSERT INTO mdm.profile_assignments VALUES (:label_id, 'com.example.not-uploaded', 'include');
DELETE FROM mdm.labels WHERE id = :label_id;
RESET ROLE;
SET ROLE mdm_reader;
SELECT try($$SELECT mdm_internal._setting('mdm.events')$$) AS reader_names_helper;
SELECT count(*) >= 0 AS reader_reads_profile_status FROM mdm.view_profile_status;
RESET ROLE;
SELECT reset_mdm();
SELECT encode(v('checkin/01-authenticate.plist'), 'base64') AS authenticate,
       encode(v('checkin/02-tokenupdate-device.plist'), 'base64') AS tokenupdate \gset
SET ROLE mdm_frontend;
SELECT try($$SELECT mdm_internal._reply_empty(200)$$) AS frontend_names_helper;
-- check-ins run the helpers (handlers, identity binding, push announcements)
SELECT (mdm.checkin(decode(:'authenticate', 'base64'))).status AS authenticate_status,
       (mdm.checkin(decode(:'tokenupdate', 'base64'))).status AS tokenupdate_status;
RESET ROLE;
SELECT count(*) AS enrollments FROM mdm.nano_enrollments;
SELECT reset_mdm();

-- every SECURITY DEFINER function pins its search path, and none puts
-- mdm_internal on it: helpers are always named schema-qualified
SELECT count(*) AS definer_without_search_path FROM pg_proc p
WHERE p.pronamespace IN ('mdm'::regnamespace, 'mdm_internal'::regnamespace) AND p.prosecdef
  AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%');
SELECT count(*) AS search_path_with_internal FROM pg_proc p, unnest(p.proconfig) c
WHERE p.pronamespace IN ('mdm'::regnamespace, 'mdm_internal'::regnamespace)
  AND c LIKE 'search\_path=%mdm\_internal%';

-- API functions that call helpers with the caller's rights would fail for
-- the roles (no USAGE on mdm_internal): only these two, which no role may
-- call (the default DeclarativeManagement handler runs inside mdm.checkin,
-- as the owner; mdm.distribute is for a superuser)
SELECT p.oid::regprocedure AS invoker_calling_helpers,
       (SELECT count(*) FROM aclexplode(p.proacl) a WHERE a.grantee <> p.proowner) AS grants
FROM pg_proc p
WHERE p.pronamespace = 'mdm'::regnamespace AND NOT p.prosecdef AND p.prosrc ~ 'mdm_internal\.'
ORDER BY p.oid::regprocedure::text COLLATE "C";

-- helpers the views of mdm call: EXECUTE for the roles that read them
SELECT DISTINCT v.oid::regclass::text AS view, p.oid::regprocedure::text AS helper,
       has_function_privilege('mdm_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('mdm_admin', p.oid, 'EXECUTE') AS admin
FROM pg_depend d
JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
WHERE v.relnamespace = 'mdm'::regnamespace AND p.pronamespace = 'mdm_internal'::regnamespace
ORDER BY 1, 2;
