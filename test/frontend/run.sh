#!/usr/bin/env bash
# The front end's tests (test/frontend/test_frontend.py) inside pg_virtualenv
# (test/in_cluster.sh): the installed mdm-frontend (the staged one with
# MDM_STAGE) over real HTTP on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${MDM_STAGE:-}$(pg_config --bindir)/mdm-frontend"
[ -x "$bin" ] || { echo "no $bin: build and install first" >&2; exit 1; }
exec python3 test/frontend/test_frontend.py "$bin"
