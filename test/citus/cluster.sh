#!/usr/bin/env bash
# A throwaway Citus cluster on loopback: a coordinator and two workers, each
# its own PostgreSQL 15 data directory under one temporary directory, with
# shared_preload_libraries = 'citus'.  Used by test/citus/run and the
# benchmark's Citus phase.
#
#   test/citus/cluster.sh COMMAND [ARGS...]
#
# starts the three servers, adds the workers to the coordinator, runs COMMAND
# with PGHOST/PGPORT/PGUSER/PGDATABASE set to the coordinator (and
# MDM_CITUS_WORKER_PORTS to the workers' ports), then stops and removes
# everything, whatever COMMAND did.  With MDM_STAGE set (tools/common.sh) the
# servers load the staged mdm_user build.
set -euo pipefail
. "$(dirname "$0")/../../tools/common.sh"

bindir=$(pg_config --bindir)
work=$(mktemp -d /tmp/mdm_citus.XXXXXX)
chown postgres: "$work"
ports=()
for _ in 1 2 3; do ports+=("$(mdm_free_port)"); done
stage_opts=$(mdm_stage_options | paste -sd ' ' | sed 's/-o //g')

as_pg() { runuser -u postgres -- "$@"; }

stop_all() {
    local i
    for i in 0 1 2; do
        [ -f "$work/n$i/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$work/n$i" -m immediate -w stop >/dev/null 2>&1
    done
    rm -rf "$work"
}
trap stop_all EXIT

for i in 0 1 2; do
    as_pg "$bindir/initdb" -D "$work/n$i" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$work/n$i/postgresql.conf" <<CONF
port = ${ports[$i]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
shared_preload_libraries = 'citus'
max_connections = 100
shared_buffers = 256MB
fsync = off
max_prepared_transactions = 100
citus.shard_count = 32
CONF
    for o in $stage_opts; do echo "${o%%=*} = '${o#*=}'" >> "$work/n$i/postgresql.conf"; done
    as_pg "$bindir/pg_ctl" -D "$work/n$i" -l "$work/n$i.log" -w start >/dev/null
done

export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=postgres PGPORT=${ports[0]}
export MDM_CITUS_WORKER_PORTS="${ports[1]} ${ports[2]}" MDM_CITUS_LOGS="$work"
for i in 0 1 2; do psql -X -q -p "${ports[$i]}" -c 'CREATE EXTENSION citus' >/dev/null; done
psql -X -q -At >/dev/null <<SQL
SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]});
SELECT citus_add_node('127.0.0.1', ${ports[1]});
SELECT citus_add_node('127.0.0.1', ${ports[2]});
SQL
"$@"
