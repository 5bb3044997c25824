#!/usr/bin/env bash
# The Citus phase of test/bench/run, run inside test/citus/cluster.sh (PGPORT
# is the coordinator of a coordinator and two workers; SINGLE_PORT the
# benchmark's single node, which is still running).  The same scripts on
# both sides, interleaved: a TokenUpdate and the connect cycle through the
# routed calls (docs/front-end.md), and a plain single-row upsert of the
# same message, which is what Citus itself costs on this machine.  Prints
# ops/s, p50/p99 and the ratios; the target is that mdm_user keeps at least
# 0.8 of the upsert's Citus/single ratio.
set -euo pipefail
N=$CITUS_DEVICES
C=${CITUS_CLIENTS:-2}
RES="$W/citus_results.tsv"
: > "$RES"
COORD=$PGPORT

on() { local port=$1; shift; PGPORT=$port psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
calc() { awk "BEGIN {printf \"%.6f\", $1}"; }
now() { date +%s.%N; }

# the single node: a database of its own with the same Macs
DB=citus_cmp
PGPORT=$SINGLE_PORT psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
on "$SINGLE_PORT" -c "CREATE EXTENSION mdm_user" -f "$HERE/setup.sql" >/dev/null
# the coordinator: the extension distributed, the floor table distributed too
DB=postgres
on "$COORD" -c "CREATE EXTENSION mdm_user" -c "SELECT mdm.distribute()" -f "$HERE/setup.sql" \
    -c "SELECT create_distributed_table('bench.floor', 'id')" >/dev/null
for port in "$SINGLE_PORT" "$COORD"; do
    [ "$port" = "$COORD" ] && DB=postgres || DB=citus_cmp
    head -n "$N" "$W/certs.copy" | on "$port" -c "\\copy bench.certs (i, der) FROM STDIN"
    # every Mac enrolls through the routed call, one statement each
    t0=$(now)
    on "$port" >/dev/null <<SQL
SELECT format('SELECT status FROM mdm.checkin_routed(%L, %L::bytea, %L::bytea)', bench.udid(i), m, c.der)
FROM bench.certs c,
     LATERAL (VALUES (1, bench.authenticate(c.i)), (2, bench.tokenupdate(c.i, 0)), (3, bench.tokenupdate(c.i, 1))) AS x(k, m)
ORDER BY c.i, x.k
\\gexec
SQL
    printf '   %s: %d Macs enrolled through mdm.checkin_routed (3 calls each): %.1f s\n' \
        "$([ "$port" = "$COORD" ] && echo "Citus coordinator" || echo "single node")" "$N" "$(calc "$(now) - $t0")"
done
PGPORT=$SINGLE_PORT psql -X -q -d citus_cmp -c "VACUUM ANALYZE" 2>/dev/null
psql -X -q -d postgres -c "VACUUM ANALYZE" 2>/dev/null

run() {  # key script port db
    local out tx tps
    out=$(PGPORT=$3 pgbench -n -M prepared -c "$C" -j "$C" -T "${RUN_T:-$TIME}" -D n="$N" -D nc="$C" \
          -f "$HERE/scripts/$2" "$4" 2>&1) || { echo "!! pgbench $2 on port $3 failed:" >&2; echo "$out" | tail -15 >&2; exit 1; }
    if echo "$out" | grep -q "^number of failed transactions: [1-9]"; then
        echo "!! pgbench $2 on port $3 had failures:" >&2; echo "$out" | tail -15 >&2; exit 1
    fi
    tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
    echo "$1 $tx $(calc "$tx / $tps")" >> "$RES"
}
ops() { awk -v k="$1" '$1 == k {tx += $2; s += $3} END {if (s > 0) printf "%.0f", tx / s; else printf "0"}' "$RES"; }

for wl in checkin_mdm checkin_floor connect_mdm; do
    RUN_T=3 run warmup "routed_$wl.sql" "$SINGLE_PORT" citus_cmp
    RUN_T=3 run warmup "routed_$wl.sql" "$COORD" postgres
done
for r in $(seq 1 "$ROUNDS"); do
    for wl in checkin_mdm checkin_floor connect_mdm; do
        run "single_$wl" "routed_$wl.sql" "$SINGLE_PORT" citus_cmp
        run "citus_$wl" "routed_$wl.sql" "$COORD" postgres
    done
done

echo "   ($C clients, ${TIME}s x $ROUNDS rounds, interleaved; one machine runs the benchmark, the single node and the three Citus servers)"
printf '   %-40s %12s %12s %8s\n' "workload" "single ops/s" "Citus ops/s" "ratio"
for wl in checkin_floor checkin_mdm connect_mdm; do
    s=$(ops "single_$wl"); c=$(ops "citus_$wl")
    printf '   %-40s %12s %12s %8s\n' "$(case $wl in
        checkin_floor) echo "plain single-row upsert (Citus' price)" ;;
        checkin_mdm) echo "TokenUpdate (mdm.checkin_routed)" ;;
        connect_mdm) echo "connect cycle (enqueue, Idle, Ack)" ;; esac)" "$s" "$c" "$(calc "$c / $s")"
done
floor=$(calc "$(ops citus_checkin_floor) / $(ops single_checkin_floor)")
for wl in checkin_mdm connect_mdm; do
    mine=$(calc "$(ops "citus_$wl") / $(ops "single_$wl")")
    printf '   %s: Citus/single %.2f = %.2f x the upsert'"'"'s %.2f (target >= 0.8): %s\n' "$wl" "$mine" \
        "$(calc "$mine / $floor")" "$floor" "$(awk -v a="$mine" -v b="$floor" 'BEGIN {print (a >= 0.8 * b) ? "met" : "NOT met"}')"
done
