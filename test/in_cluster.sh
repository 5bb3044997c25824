#!/usr/bin/env bash
# Runs inside pg_virtualenv (test/run): PGHOST, PGPORT, PGUSER, PGPASSWORD are set.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! make -s installcheck; then
    for f in regression.diffs test/isolation/output_iso/regression.diffs; do
        [ -f "$f" ] && { echo "---- $f"; cat "$f"; }
    done
    exit 1
fi
echo "== pg_dump and pg_restore keep the extension's data"
t0=$SECONDS
./test/dump_restore.sh || exit 1
echo "   [dump and restore: $((SECONDS - t0)) s]"
echo "== upgrades from the frozen releases keep the objects and every row (test/upgrade/run)"
t0=$SECONDS
./test/upgrade/run || exit 1
echo "   [upgrade check: $((SECONDS - t0)) s]"
echo "== mdm-frontend over HTTP on 127.0.0.1"
./test/frontend/run.sh || exit 1
echo "== mdm-frontend's push sender against the mock APNs on 127.0.0.1"
./test/push/run.sh || exit 1
echo "== mdm-frontend's webhook worker and PUT /migration on 127.0.0.1"
./test/events/run.sh || exit 1
