#!/usr/bin/env bash
# Runs tools/console_tour.sql in a throwaway cluster that preloads the
# extension (MDM_STAGE as for test/run) and prints its output: the queries
# and outputs of docs/console.md.
set -euo pipefail
. "$(dirname "$0")/common.sh"
mdm_build_install >&2
cd "$MDM_ROOT"
mdm_with_cluster bash -c 'createdb tour && psql -X -d tour -f tools/console_tour.sql 2>&1' | \
    grep -v '^Creating new PostgreSQL cluster\|^Dropping cluster'
