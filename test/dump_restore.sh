#!/usr/bin/env bash
# pg_dump keeps the extension's data: fills every table through the API
# (test/lib/fill.sql: check-ins, enqueues, reports, pushes, profiles, labels,
# IdP groups, identities, events), dumps the database (pg_dump -Fc),
# restores it into a fresh one, and compares every table (row count and md5
# of its ordered rows) and every sequence.  Fails if a table is empty before
# the dump (the fill must reach every table).  Runs inside pg_virtualenv
# (test/in_cluster.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PGOPTIONS='-c client_min_messages=warning'
src=mdm_dump_src dst=mdm_dump_dst work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for db in $src $dst; do
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done
psql -X -q -v ON_ERROR_STOP=1 -d $src -c "CREATE EXTENSION mdm_user"
psql -X -q -v ON_ERROR_STOP=1 -v certdir="$work/certs" -d $src -f test/lib/fill.sql >/dev/null
# one line per table (name|rows|md5 of the ordered row texts) and per
# sequence (name|last_value|is_called).  mdm.maintenance_state is not dumped
# on purpose (a restore starts a new reconcile sweep): only its row count.
fingerprints() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(r, E''\n'' ORDER BY r), '''')) FROM (SELECT %s AS r FROM %s t) s',
              c.oid::regclass, CASE c.relname WHEN 'maintenance_state' THEN '''not dumped''' ELSE 't::text' END,
              c.oid::regclass)
FROM pg_class c WHERE c.relnamespace = 'mdm'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1 \gexec
SELECT format('SELECT %L, last_value, is_called FROM %s', c.oid::regclass, c.oid::regclass)
FROM pg_class c WHERE c.relnamespace = 'mdm'::regnamespace AND c.relkind = 'S' ORDER BY 1 \gexec
SQL
}
fingerprints $src > "$work/before"
pg_dump -Fc -d $src -f "$work/dump"
pg_restore -d $dst "$work/dump"
fingerprints $dst > "$work/after"
for db in $src $dst; do psql -X -q -d postgres -c "DROP DATABASE $db"; done
empty=$(awk -F'|' 'length($3) == 32 && $2 == 0 { printf " %s", $1 }' "$work/before")
if [ -n "$empty" ]; then
    echo "test/lib/fill.sql left tables empty:$empty"; exit 1
fi
if ! diff -u "$work/before" "$work/after"; then
    echo "dump and restore lost or changed data (table|rows|md5, -before +after)"; exit 1
fi
tables=$(awk -F'|' 'length($3) == 32' "$work/before" | wc -l)
rows=$(awk -F'|' 'length($3) == 32 { n += $2 } END { print n }' "$work/before")
echo "dump and restore keep every table ($tables tables, $rows rows, same content) and sequence:"
awk -F'|' '{ printf "%s=%s ", $1, $2 } END { print "" }' "$work/before" | sed 's/mdm\.//g' | fold -s -w 100 | sed 's/^/  /'
