#!/usr/bin/env bash
# pg_dump keeps the extension's data: fills a database through the API,
# dumps it, restores it into a fresh one, and compares every table's rows.
# Runs inside pg_virtualenv (test/in_cluster.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PGOPTIONS='-c client_min_messages=warning'
src=mdm_dump_src dst=mdm_dump_dst dump=$(mktemp)
trap 'rm -f "$dump"' EXIT
for db in $src $dst; do
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done
psql -X -q -v ON_ERROR_STOP=1 -d $src >/dev/null <<'SQL'
CREATE EXTENSION mdm_user;
SET mdm.require_identity = off;
CREATE TEMP TABLE v (name text, b64 text);
\copy v from program 'cd test/vectors && for f in checkin/* profiles/*; do printf "%s\t%s\n" "$f" "$(base64 -w0 "$f")"; done'
SELECT mdm.checkin(decode(b64, 'base64')) FROM v WHERE name ~ '^checkin/(0[1-6]|2)' ORDER BY name;
SELECT mdm.upload_profile(decode(b64, 'base64')) FROM v WHERE name ~ '^profiles/0[1258]' ORDER BY name;
SELECT mdm.install_profile(1, ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1']);
SELECT mdm.bind_profile(1, '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1');
INSERT INTO mdm.labels (name) VALUES ('all Macs');
INSERT INTO mdm.label_enrollments SELECT 1, id, id FROM mdm.nano_devices;
INSERT INTO mdm.profile_assignments VALUES (1, 'com.example.filevault', 'include');
SELECT mdm.reconcile();
-- an answered DeviceInformation: inventory
SELECT mdm.connect(convert_to(format('<plist><dict><key>UDID</key><string>980E3D0B-5A28-537C-B7CB-7AFD15AFB933</string>'
    '<key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>%s</string>'
    '<key>QueryResponses</key><dict><key>OSVersion</key><string>14.5</string></dict></dict></plist>',
    mdm.enqueue(ARRAY['980E3D0B-5A28-537C-B7CB-7AFD15AFB933'],
                '{"RequestType": "DeviceInformation", "Queries": ["OSVersion"]}'::jsonb)), 'UTF8'));
INSERT INTO mdm.trust_anchors (purpose, cert_pem) VALUES ('profile_signer', 'unused');
DELETE FROM mdm.trust_anchors;
SQL
# rows of every table, and where every sequence stands
counts="SELECT string_agg(c.relname || '=' || (xpath('/row/c/text()', query_to_xml(
            format(CASE c.relkind WHEN 'S' THEN 'SELECT last_value AS c FROM mdm.%I'
                                  ELSE 'SELECT count(*) AS c FROM mdm.%I' END, c.relname),
            false, true, '')))[1]::text, ' ' ORDER BY c.relname)
        FROM pg_class c WHERE c.relnamespace = 'mdm'::regnamespace AND c.relkind IN ('r', 'S')"
pg_dump -Fc -d $src -f "$dump"
pg_restore -d $dst "$dump"
before=$(psql -X -At -d $src -c "$counts")
after=$(psql -X -At -d $dst -c "$counts")
for db in $src $dst; do psql -X -q -d postgres -c "DROP DATABASE $db"; done
if [ "$before" != "$after" ]; then
    echo "dump and restore lost data:"; echo " before: $before"; echo " after:  $after"
    exit 1
fi
echo "dump and restore keep every table: $before"
