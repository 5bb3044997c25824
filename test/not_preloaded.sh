#!/usr/bin/env bash
# Runs inside pg_virtualenv without mdm_user in shared_preload_libraries
# (test/run): CREATE EXTENSION warns, mdm.health_check() says so, and a new
# session shows what is lost (no mdm.* settings until it calls the
# extension, so a misspelt one is accepted).
set -euo pipefail
fail() { echo "not_preloaded: $*" >&2; exit 1; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

out=$(q -c 'CREATE EXTENSION mdm_user' 2>&1)
grep -q '^WARNING:  mdm_user is not in shared_preload_libraries' <<<"$out" || fail "no warning: $out"
grep -q '^HINT:  Add mdm_user to shared_preload_libraries' <<<"$out" || fail "no hint: $out"
[ "$(q -c "SELECT ok FROM mdm.health_check() WHERE check_name = 'preloaded'")" = f ] \
    || fail "health_check() does not report it"
[ "$(q -c "SELECT count(*) FROM pg_settings WHERE name LIKE 'mdm.%'")" = 0 ] \
    || fail "a new session knows mdm.* settings without the module loaded"
q -c 'SET mdm.user_authentcate = decline' 2>/dev/null || fail "the placeholder was refused"
# once the session has called the extension, the prefix is reserved
out=$(q -c 'SELECT FROM mdm.backend_memory()' -c 'SET mdm.user_authentcate = decline' 2>&1) \
    && fail "misspelt setting accepted after the module loaded"
grep -q 'invalid configuration parameter name "mdm.user_authentcate"' <<<"$out" || fail "$out"
echo "== not preloaded: CREATE EXTENSION warns, mdm.health_check() reports it"
