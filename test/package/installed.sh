#!/usr/bin/env bash
# Inside pg_virtualenv (test/package/run), with the packages installed: the
# regression and isolation suites against the installed extension, then the
# packaged front end started as its systemd unit starts it: the unit's
# ExecStart, as its User=, with the variables of its EnvironmentFile (the
# packaged default configuration); only the listening port is changed (and
# PGPORT, this cluster's).  It must answer /healthz and /version.
set -uo pipefail
cd "$(dirname "$0")/../.."
ext=$(pg_config --sharedir)/extension
owner=$(dpkg-query -S "$ext/mdm_user.control" | cut -d: -f1)
[ "$owner" = postgresql-15-mdm-user ] || { echo "not ok - $ext/mdm_user.control belongs to '$owner'"; exit 1; }
[ -z "$(psql -X -At -c 'SHOW extension_destdir')" ] || { echo "not ok - extension_destdir is set"; exit 1; }
echo "-- make installcheck against the installed package"
if ! make -s installcheck; then
    for f in regression.diffs test/isolation/output_iso/regression.diffs; do
        [ -f "$f" ] && { echo "---- $f"; cat "$f"; }
    done
    exit 1
fi

echo "-- the packaged mdm-frontend, started as its unit does"
unit=/lib/systemd/system/mdm-frontend.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
env_file=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
echo "   ExecStart=$exec_start User=$user EnvironmentFile=$env_file"
mapfile -t settings < <(grep -E '^[A-Z_]+=' "$env_file")
printf '   %s\n' "${settings[@]}"
# the database and the role the default configuration names
dsn=$(printf '%s\n' "${settings[@]}" | sed -n 's/^MDM_FRONTEND_DSN=//p')
db=$(sed -n 's/.*dbname=\([^ ]*\).*/\1/p' <<<"$dsn")
role=$(sed -n 's/.*user=\([^ ]*\).*/\1/p' <<<"$dsn")
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION mdm_user" \
    -c "CREATE ROLE \"$role\" LOGIN" -c "GRANT mdm_frontend TO \"$role\"" || exit 1
port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
log=$(mktemp)
setpriv --reuid="$user" --regid="$user" --init-groups env -i PATH=/usr/bin:/bin PGPORT="$PGPORT" "${settings[@]}" \
    MDM_FRONTEND_LISTEN="127.0.0.1:$port" $exec_start > "$log" 2>&1 &
pid=$!
health=""
for _ in $(seq 100); do
    health=$(curl -s -m 2 "http://127.0.0.1:$port/healthz") && [ "$health" = ok ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
version=$(curl -s -m 2 "http://127.0.0.1:$port/version")
kill -TERM $pid 2>/dev/null; wait $pid; stopped=$?
psql -X -q -d postgres -c "DROP DATABASE $db" -c "DROP ROLE \"$role\""
sed 's/^/   log: /' "$log" | head -n 20; rm -f "$log"
if [ "$health" != ok ]; then
    echo "not ok - the packaged mdm-frontend did not answer /healthz (got '$health')"; exit 1
fi
echo "ok - packaged mdm-frontend as user $user, peer authentication as role $role: /healthz $health, /version $version, SIGTERM exit $stopped"
