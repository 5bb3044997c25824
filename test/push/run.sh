#!/usr/bin/env bash
# The push sender's tests (test/push/test_push.py) inside pg_virtualenv
# (test/in_cluster.sh): the installed mdm-frontend (the staged one with
# MDM_STAGE) against the mock APNs (test/apns_mock), on 127.0.0.1.
# Debian's python3 (/usr/bin/python3) for its python3-psycopg2.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${MDM_STAGE:-}$(pg_config --bindir)/mdm-frontend"
[ -x "$bin" ] || { echo "no $bin: build and install first" >&2; exit 1; }
make -s -C test/apns_mock >/dev/null
exec /usr/bin/python3 test/push/test_push.py "$bin" test/apns_mock/apns_mock
