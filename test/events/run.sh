#!/usr/bin/env bash
# The webhook worker's and PUT /migration's tests (test/events/test_webhook.py)
# inside pg_virtualenv (test/in_cluster.sh): the installed mdm-frontend (the
# staged one with MDM_STAGE), on 127.0.0.1.  Debian's python3 for its
# python3-psycopg2 and python3-jsonschema.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${MDM_STAGE:-}$(pg_config --bindir)/mdm-frontend"
[ -x "$bin" ] || { echo "no $bin: build and install first" >&2; exit 1; }
exec /usr/bin/python3 test/events/test_webhook.py "$bin"
