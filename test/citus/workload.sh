#!/usr/bin/env bash
# The Citus suite, run by test/citus/run inside test/citus/cluster.sh (PGPORT
# is the coordinator, MDM_CITUS_WORKER_PORTS the workers, MDM_CITUS_LOGS the
# directory of their server logs).  Everything goes through the coordinator:
# CREATE EXTENSION, mdm.distribute(), every check-in vector, enqueue, the
# connect cycle (Idle, Acknowledged, NotNow), claimed and reported pushes,
# push_results, webhook events (claim_events, event_result), profiles
# (PayloadScope, a user-bound profile refused elsewhere, bind_profile's lock
# against the queue's guard on a worker), view_profile_status, maintenance
# with its reconcile slice.  A check-in and a report, with a DER and a PEM certificate,
# must each be sent to one worker and run there without a remote command.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d /tmp/mdm_citus_suite.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
read -r -a workers <<< "$MDM_CITUS_WORKER_PORTS"
passed=0

q() {
    psql -X -q -At -v ON_ERROR_STOP=1 "$@" 2>"$tmp/stderr" && return
    grep -v '^NOTICE\|^DETAIL' "$tmp/stderr" | tail -8 >&2
    return 1
}
fail() { echo "FAILED: $*" >&2; exit 1; }
expect() {  # what actual expected
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
    passed=$((passed + 1))
    echo "ok $passed - $1"
}
b64() { base64 -w0 "test/vectors/$1"; }
msg() { echo "decode('$(b64 "$1")', 'base64')"; }
# a routed check-in or report: one statement, as docs/front-end.md says
checkin() {  # vector [identity SQL]
    q -c "SELECT status FROM mdm.checkin_routed(mdm.message_device_id($(msg "$1")), $(msg "$1"), ${2:-NULL})"
}
report() {  # message SQL [identity SQL]
    q -c "SELECT status || ' ' || coalesce(mdm.plist_to_jsonb(nullif(body, ''))#>>'{Command,RequestType}', 'empty')
          FROM mdm.connect_routed(mdm.report_device_id($1), $1, ${2:-NULL})"
}
xml_report() {  # udid status [uuid [userid]]
    local extra=""
    [ -n "${3:-}" ] && extra="<key>CommandUUID</key><string>$3</string>"
    [ -n "${4:-}" ] && extra="$extra<key>UserID</key><string>$4</string>"
    # a bytea literal: a constant, as a front end's parameter is, so Citus can route the call
    echo "'<plist><dict><key>UDID</key><string>$1</string><key>Status</key><string>$2</string>$extra</dict></plist>'::bytea"
}

echo "== mdm_user on Citus: a coordinator and ${#workers[@]} workers"
q -c "CREATE EXTENSION mdm_user" >/dev/null
# settings are per node (docs/citus.md): the suite's messages come without
# an identity, except where it passes certificates; webhook events are on
# (the workers log every command they run, for the one-worker checks)
for port in "$PGPORT" "${workers[@]}"; do
    q -p "$port" -c "LOAD 'mdm_user'" -c "ALTER SYSTEM SET mdm.require_identity = off" \
        -c "ALTER SYSTEM SET mdm.events = on" \
        -c "SELECT pg_reload_conf()" >/dev/null
done
for port in "${workers[@]}"; do
    q -p "$port" -c "ALTER SYSTEM SET citus.log_remote_commands = on" \
        -c "ALTER SYSTEM SET citus.log_local_commands = on" \
        -c "ALTER SYSTEM SET log_min_messages = notice" -c "ALTER SYSTEM SET log_statement = 'all'" \
        -c "SELECT pg_reload_conf()" >/dev/null
done
# fan-outs waiting (never expanded once distributed): refused
q -c "INSERT INTO mdm.push_fanouts (id, chunk, enrollment_ids) VALUES (gen_random_uuid(), 0, ARRAY['X', 'Y'])"
expect "mdm.distribute() with a fan-out waiting" \
    "$(psql -X -At -c "SELECT mdm.distribute()" 2>&1 | grep -c 'push fan-outs are waiting')" 1
q -c "DELETE FROM mdm.push_fanouts"
# a session that checked in before mdm.distribute() (its backend asked then
# whether mdm_user is distributed) and stays open: it must see the change
mkfifo "$tmp/early.in"
psql -X -At < "$tmp/early.in" > "$tmp/early.out" 2>&1 &
early_pid=$!
exec 7> "$tmp/early.in"
echo "SELECT (mdm.checkin($(msg checkin/07-getbootstraptoken.plist))).status;" >&7
for _ in $(seq 300); do grep -q 'not enrolled' "$tmp/early.out" && break; sleep 0.1; done
expect "a session's check-in before mdm.distribute()" "$(grep -c 'not enrolled' "$tmp/early.out")" 1
expect "mdm.distribute()" "$(q -c "SELECT mdm.distribute()")" \
    "distributed: 16 reference tables, 18 tables by device, mdm.identity_certs by certificate"
expect "tables by device, co-located" \
    "$(q -c "SELECT count(DISTINCT colocationid) || ' group, ' || count(*) || ' tables'
             FROM pg_dist_partition WHERE partmethod = 'h' AND logicalrelid::text <> 'mdm.identity_certs'
               AND logicalrelid::text LIKE 'mdm.%'")" "1 group, 18 tables"
expect "routed functions distributed by device" \
    "$(q -c "SELECT string_agg(objid::regprocedure::text, ', ' ORDER BY 1) FROM pg_dist_object
             WHERE classid = 'pg_proc'::regclass AND distribution_argument_index = 0
               AND objid::regprocedure::text LIKE 'mdm.%routed%'")" \
    "mdm.checkin_routed(text,bytea,bytea,text), mdm.connect_routed(text,bytea,bytea,text), mdm.enqueue_routed(text,text[],jsonb,integer,boolean,boolean)"

sh test/identity_certs.sh "$tmp/identity"
sh test/push_certs.sh "$tmp/push"
mac=980E3D0B-5A28-537C-B7CB-7AFD15AFB933
mac2=5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B
victor="$mac:23B1AB9F-5A19-4919-8610-0A74091497E1"
mac_der="decode('$(cat "$tmp/identity/mac.der.b64")', 'base64')"
mac2_pem="convert_to('$(cat "$tmp/identity/mac2.crt")', 'UTF8')"

# -- a check-in and a report each go to one worker --------------------------
one_worker() {  # what statement
    local i pids sizes=() out issued local_nodes=0 remote=0
    for i in 1 2; do sizes[i]=$(stat -c %s "$MDM_CITUS_LOGS/n$i.log"); done
    out=$(PGOPTIONS='-c citus.log_remote_commands=on' psql -X -At -v ON_ERROR_STOP=1 -c "$2" 2>&1)
    issued=$(grep -c 'NOTICE:  issuing' <<< "$out" || true)
    for i in 1 2; do
        tail -c +$((sizes[i] + 1)) "$MDM_CITUS_LOGS/n$i.log" > "$tmp/w$i"
        # the backends that ran the call (not Citus' own background work):
        # the delegated call, which runs its statements on the local shards
        # itself (src/shard_local.c), and those that run statements through Citus
        pids=$(grep -E -e 'LOG:  (statement|execute [^:]*): .*_routed\(' -e 'executing the command locally' "$tmp/w$i" \
               | grep -o '\[[0-9]*\]' | sort -u || true)
        [ -n "$pids" ] || continue
        local_nodes=$((local_nodes + 1))
        remote=$((remote + $(grep -F "$pids" "$tmp/w$i" | grep -c 'NOTICE:  issuing' || true)))
    done
    if [ "$issued $local_nodes $remote" != "1 1 0" ]; then
        echo "$out" | sed -n 1,20p; grep -h -A1 'NOTICE:  issuing' "$tmp/w1" "$tmp/w2" | sed -n 1,20p || true
    fi
    expect "$1: 1 statement to 1 worker, no remote command there" "$issued $local_nodes $remote" "1 1 0"
}
# -- every check-in vector, through the coordinator -------------------------
for v in 01-authenticate.plist 01-authenticate.bplist; do
    expect "check-in $v (DER identity, bound on first use)" "$(checkin "checkin/$v" "$mac_der")" 200
done
for v in 02-tokenupdate-device.plist 02-tokenupdate-device.bplist 03-userauthenticate.plist \
         04-userauthenticate-digestresponse.plist 05-tokenupdate-user.plist 05-tokenupdate-user.bplist \
         06-setbootstraptoken.plist 07-getbootstraptoken.plist 08-declarativemanagement-tokens.plist \
         09-declarativemanagement-status.plist; do
    expect "check-in $v" "$(checkin "checkin/$v" "$mac_der")" 200
done
expect "check-in 10-gettoken.plist (no token service: 404)" "$(checkin checkin/10-gettoken.plist "$mac_der")" 404
expect "check-in 20-authenticate-mac2.plist (PEM identity)" "$(checkin checkin/20-authenticate-mac2.plist "$mac2_pem")" 200
one_worker "first TokenUpdate of a channel (no label assigns profiles), PEM certificate" \
    "SELECT status FROM mdm.checkin_routed(mdm.message_device_id($(msg checkin/21-tokenupdate-mac2-device.plist)), $(msg checkin/21-tokenupdate-mac2-device.plist), $mac2_pem)"
expect "check-in 22-tokenupdate-mac2-user.plist (PEM identity)" "$(checkin checkin/22-tokenupdate-mac2-user.plist "$mac2_pem")" 200
for v in 30-authenticate-userenrollment.plist 31-tokenupdate-userenrollment-device.plist \
         32-tokenupdate-userenrollment-user.plist 38-authenticate-sharedipad.plist \
         39-tokenupdate-sharedipad-device.plist 40-tokenupdate-sharedipad-user.plist; do
    expect "check-in $v" "$(checkin "checkin/$v")" 200
done
expect "enrollments" "$(q -c "SELECT count(*) || ' devices' FROM mdm.nano_devices") $(q -c "SELECT count(*) FROM mdm.nano_enrollments WHERE enabled")" "4 devices 8"
echo "SELECT 'early ' || (mdm.checkin($(msg checkin/07-getbootstraptoken.plist), $mac_der)).status;" >&7
exec 7>&-
wait "$early_pid" || true
expect "the same session after mdm.distribute() finds the device (not the empty shells)" \
    "$(grep '^early ' "$tmp/early.out")" "early 200"
expect "a certificate bound to another device is refused" \
    "$(psql -X -At -c "SELECT status FROM mdm.checkin_routed(mdm.message_device_id($(msg checkin/20-authenticate-mac2.plist)),
                     $(msg checkin/20-authenticate-mac2.plist), $mac_der)" 2>&1 | grep -m1 -c 'device identity does not match device')" \
    1
expect "one certificate, one device" "$(q -c "SELECT count(*) FROM mdm.identity_certs")" 2

one_worker "TokenUpdate, DER certificate" \
    "SELECT status FROM mdm.checkin_routed(mdm.message_device_id($(msg checkin/02-tokenupdate-device.plist)), $(msg checkin/02-tokenupdate-device.plist), $mac_der)"
one_worker "TokenUpdate, PEM certificate" \
    "SELECT status FROM mdm.checkin_routed(mdm.message_device_id($(msg checkin/21-tokenupdate-mac2-device.plist)), $(msg checkin/21-tokenupdate-mac2-device.plist), $mac2_pem)"
one_worker "Idle report, DER certificate" \
    "SELECT status FROM mdm.connect_routed(mdm.report_device_id($(msg connect/01-idle-device.plist)), $(msg connect/01-idle-device.plist), $mac_der)"

# -- enqueue and the connect cycle ------------------------------------------
devinfo=$(q -c "SELECT mdm.enqueue(ARRAY['$mac'], '{\"RequestType\": \"DeviceInformation\", \"Queries\": [\"OSVersion\"]}'::jsonb)")
expect "Idle hands out the queued command" "$(report "$(xml_report $mac Idle)" "$mac_der")" "200 DeviceInformation"
expect "Acknowledged ends it" "$(report "$(xml_report $mac Acknowledged "$devinfo")" "$mac_der")" "200 empty"
expect "its result is stored" "$(q -c "SELECT status FROM mdm.view_command_results WHERE command_uuid = '$devinfo'")" Acknowledged
plist=$(q -c "SELECT mdm.enqueue(ARRAY['$mac'], '{\"RequestType\": \"ProfileList\"}'::jsonb)")
expect "the next command" "$(report "$(xml_report $mac Idle)" "$mac_der")" "200 ProfileList"
expect "NotNow withholds it for the exchange" "$(report "$(xml_report $mac NotNow "$plist")" "$mac_der")" "200 empty"
expect "queue state" "$(q -c "SELECT state FROM mdm.view_queue WHERE command_uuid = '$plist'")" NotNow
expect "the next Idle offers it again" "$(report "$(xml_report $mac Idle)" "$mac_der")" "200 ProfileList"
one_worker "Acknowledged report, DER certificate" \
    "SELECT status FROM mdm.connect_routed(mdm.report_device_id($(xml_report $mac Acknowledged "$plist")), $(xml_report $mac Acknowledged "$plist"), $mac_der)"
one_worker "one-target enqueue, routed by its device (the command kept in its queue item)" \
    "SELECT mdm.enqueue_routed('$mac', ARRAY['$mac'], '{\"RequestType\": \"CertificateList\"}'::jsonb, 0, false, true)"
routed=$(q -c "SELECT q.command_uuid FROM mdm.nano_enrollment_queue q WHERE q.id = '$mac' AND q.active
               AND q.request_type = 'CertificateList' AND q.plist IS NOT NULL
               AND NOT EXISTS (SELECT FROM mdm.nano_commands c WHERE c.command_uuid = q.command_uuid)")
[ -n "$routed" ] || fail "the routed enqueue's queue item (with its command, no nano_commands row) is missing"
expect "the routed enqueue's command is handed out" "$(report "$(xml_report $mac Idle)" "$mac_der")" "200 CertificateList"
expect "and acknowledged" "$(report "$(xml_report $mac Acknowledged "$routed")" "$mac_der")" "200 empty"
devices=$(q -c "SELECT string_agg(quote_literal(id), ', ' ORDER BY id) FROM mdm.nano_enrollments WHERE user_id IS NULL")
fanout=$(q -c "SELECT mdm.enqueue(ARRAY[$devices], '{\"RequestType\": \"DeviceInformation\", \"Queries\": [\"Model\"]}'::jsonb)")
expect "fan-out: one command, a queue item per target" \
    "$(q -c "SELECT count(*) FROM mdm.nano_commands WHERE command_uuid = '$fanout'") $(q -c "SELECT count(*) FROM mdm.nano_enrollment_queue WHERE command_uuid = '$fanout'")" "1 4"

# -- pushes ------------------------------------------------------------------
expect "push certificate" "$(q -c "SELECT mdm.upload_push_cert('$(cat "$tmp/push/mdm.crt")', '$(cat "$tmp/push/mdm.key")') LIKE 'com.apple.mgmt.%'")" t
claimed=$(q -c "SELECT count(*) FROM mdm.claim_pushes(100)")
[ "$claimed" -ge 2 ] || fail "claim_pushes claimed $claimed jobs"
expect "claim_pushes: every pending job claimed once" \
    "$(q -c "SELECT count(*) FROM mdm.claim_pushes(100)") $(q -c "SELECT count(*) FROM mdm.push_jobs WHERE state = 'claimed'")" "0 $claimed"
jobs=($(q -c "SELECT id FROM mdm.push_jobs WHERE state = 'claimed' ORDER BY id"))
expect "push_result 200" "$(q -c "SELECT mdm.push_result(${jobs[0]}, 200, NULL, 'apns-1')")" sent
expect "push_result 410: failed, its token invalid" \
    "$(q -c "SELECT mdm.push_result(${jobs[1]}, 410, 'Unregistered')") $(q -c "SELECT count(*) FROM mdm.nano_enrollments WHERE token_invalid_at IS NOT NULL")" "failed 1"
expect "push_result 503: pending again, with a backoff" \
    "$(q -c "SELECT count(*) FROM mdm.claim_pushes(100)") $(q -c "SELECT mdm.push_result(${jobs[2]:-0}, 503)" 2>/dev/null || echo none)" \
    "0 $( [ -n "${jobs[2]:-}" ] && echo pending || echo none)"

# a job to every channel that can take one (live token, none pending)
pushable=$(q -c "SELECT string_agg(quote_literal(e.id), ', ') FROM mdm.nano_enrollments e
                 WHERE e.enabled AND e.token_invalid_at IS NULL AND e.user_id IS NULL
                   AND NOT EXISTS (SELECT FROM mdm.push_jobs j WHERE j.device_id = e.device_id
                                   AND j.enrollment_id = e.id AND j.state = 'pending')")
q -c "SELECT mdm.enqueue(ARRAY[$pushable], '{\"RequestType\": \"ProfileList\"}'::jsonb)" >/dev/null
batch=$(q -c "SELECT string_agg(job_id::text, ',') FROM mdm.claim_pushes(100)")
expect "push_results: a batch of jobs on several shards, each sent" \
    "$(q -c "SELECT count(*) >= 2 AND bool_and(state = 'sent') FROM mdm.push_results(ARRAY[$batch]::bigint[],
                array_fill(200, ARRAY[cardinality(ARRAY[$batch])]))")" t

# -- webhook events ------------------------------------------------------------
claimed=$(q -c "SELECT device_id || '|' || id || '|' || attempt FROM mdm.claim_events(1000)")
n=$(wc -l <<< "$claimed")
expect "claim_events: the oldest event of each enrollment" \
    "$(q -c "SELECT count(DISTINCT (device_id, enrollment_id)) FROM mdm.events WHERE delivered_at IS NULL")" "$n"
expect "claim_events: leased, a second claimer gets none" "$(q -c "SELECT count(*) FROM mdm.claim_events(1000)")" 0
delivered=0
while IFS='|' read -r d i a; do
    [ "$(q -c "SELECT mdm.event_result('$d', $i, $a, 200)")" = t ] && delivered=$((delivered + 1))
done <<< "$claimed"
expect "event_result: each delivered" "$delivered" "$n"
expect "claim_events: then the next event of each enrollment" \
    "$(q -c "SELECT count(*) > 0 AND bool_and(e.id > d.id) FROM mdm.claim_events(1000) e
             JOIN (SELECT enrollment_id, max(id) AS id FROM mdm.events WHERE delivered_at IS NOT NULL
                   GROUP BY 1) d USING (enrollment_id)")" t

# -- profiles ----------------------------------------------------------------
ada=$(q -c "SELECT id FROM mdm.nano_enrollments WHERE device_id = '$mac2' AND user_id IS NOT NULL")
user_prof=$(q -c "SELECT mdm.upload_profile($(msg profiles/01-user-scoped-certificate.mobileconfig))")
sys_prof=$(q -c "SELECT mdm.upload_profile($(msg profiles/02-system-scoped-filevault.mobileconfig))")
expect "PayloadScope decides the channel" "$(q -c "SELECT string_agg(scope, ' ' ORDER BY id) FROM mdm.profiles")" "User System"
expect "a User-scoped profile to a user channel" \
    "$(q -c "SELECT count(*) FROM mdm.install_profile($user_prof, ARRAY['$victor'])")" 1
expect "a User-scoped profile refused on a device channel" \
    "$(psql -X -At -c "SELECT mdm.install_profile($user_prof, ARRAY['$mac'])" 2>&1 | grep -m1 -c 'is User-scoped')" 1
expect "a System-scoped profile to a device channel" \
    "$(q -c "SELECT count(*) FROM mdm.install_profile($sys_prof, ARRAY['$mac2'])")" 1
q -c "SELECT mdm.bind_profile($user_prof, '$victor')" >/dev/null
# bind_profile() runs on the coordinator, the queue's guard on the worker of
# the queued row: an InstallProfile of the profile waits while a
# bind_profile() of it is under way
psql -X -q -c "BEGIN" -c "SELECT mdm.bind_profile($user_prof, '$victor')" -c "SELECT pg_sleep(4)" -c "COMMIT" \
    >/dev/null 2>&1 &
binder=$!
sleep 1.5
expect "an InstallProfile waits for a bind_profile() under way" \
    "$(PGOPTIONS='-c statement_timeout=1500' psql -X -At -c "SELECT mdm.install_profile($user_prof, ARRAY['$victor'])" 2>&1 \
       | grep -c 'statement timeout')" 1
wait $binder
expect "a user-bound profile refused on another user channel" \
    "$(psql -X -At -c "SELECT mdm.install_profile($user_prof, ARRAY['$ada'])" 2>&1 | grep -m1 -c 'is bound to enrollment')" 1
expect "... and as a raw InstallProfile (the queue's guard)" \
    "$(psql -X -At -c "SELECT mdm.enqueue(ARRAY['$ada'], jsonb_build_object('RequestType', 'InstallProfile',
                          'Payload', mdm.plist_data_value($(msg profiles/01-user-scoped-certificate.mobileconfig))))" 2>&1 \
       | grep -m1 -c 'is bound to enrollment')" 1
expect "the user channel's poll gets the InstallProfile" "$(report "$(msg connect/02-idle-user-seed.plist)" "$mac_der")" "200 InstallProfile"
install=$(q -c "SELECT command_uuid FROM mdm.profile_deliveries WHERE enrollment_id = '$victor'")
expect "Acknowledged: installed" \
    "$(report "$(xml_report $mac Acknowledged "$install" 23B1AB9F-5A19-4919-8610-0A74091497E1)" "$mac_der") $(q -c "SELECT status FROM mdm.profile_deliveries WHERE enrollment_id = '$victor'")" \
    "200 empty installed"

# -- labels, reconcile, maintenance ------------------------------------------
label=$(q -c "INSERT INTO mdm.labels (name) VALUES ('macs') RETURNING id")
q -c "INSERT INTO mdm.label_enrollments (label_id, device_id, enrollment_id) VALUES ($label, '$mac', '$mac')" >/dev/null
q -c "INSERT INTO mdm.profile_assignments (label_id, payload_identifier) SELECT $label, payload_identifier FROM mdm.profiles WHERE id = $sys_prof" >/dev/null
expect "view_profile_status: the label's profile pending" \
    "$(q -c "SELECT status FROM mdm.view_profile_status WHERE enrollment_id = '$mac' AND profile_id = $sys_prof")" pending
expect "run_maintenance reconciles a slice: queues the label's profile" \
    "$(q -c "SELECT mdm.run_maintenance()->'reconciled'->>'installs'")" 1
expect "reconcile: nothing more to queue" "$(q -c "SELECT mdm.reconcile()->>'installs'")" 0
expect "deliveries" "$(q -c "SELECT string_agg(status, ' ' ORDER BY enrollment_id, status) FROM mdm.profile_deliveries")" "queued queued installed"
expect "view_profile_status" \
    "$(q -c "SELECT string_agg(status, ' ' ORDER BY enrollment_id, status) FROM mdm.view_profile_status")" "queued queued installed"
expect "run_maintenance" "$(q -c "SELECT mdm.run_maintenance() ?& ARRAY['released_push_claims', 'expired_commands', 'repushed', 'reconciled']
                                   AND mdm.run_maintenance()->'reconciled' ? 'devices'")" t
# the push views read the (local, empty) fan-out table beside the distributed jobs
expect "view_pushes and view_push_problems plan and run" \
    "$(q -c "SELECT (SELECT count(*) FROM mdm.view_pushes WHERE state = 'fan-out')
                    + (SELECT count(*) FROM mdm.view_push_problems WHERE state = 'fan-out')")" 0

# -- the device's local shards (src/shard_local.c) --------------------------
# On the worker that holds the device, a delegated check-in or report runs
# its statements on the local shards itself: none goes through Citus there.
through_citus() {  # statement: its result, then how many statements Citus ran on the workers
    local i sizes=() out n=0
    for i in 1 2; do sizes[i]=$(stat -c %s "$MDM_CITUS_LOGS/n$i.log"); done
    out=$(q -c "$1")
    for i in 1 2; do
        n=$((n + $(tail -c +$((sizes[i] + 1)) "$MDM_CITUS_LOGS/n$i.log" | grep -c 'executing the command locally' || true)))
    done
    echo "$out $n"
}
tally() { q -c "SELECT token_update_tally FROM mdm.nano_enrollments WHERE id = '$mac'"; }
tu="mdm.checkin_routed(mdm.message_device_id($(msg checkin/02-tokenupdate-device.plist)), $(msg checkin/02-tokenupdate-device.plist), $mac_der)"
before=$(tally)
expect "TokenUpdate on the device's local shards: no statement through Citus on its worker" \
    "$(through_citus "SELECT status FROM $tu")" "200 0"
expect "... and it updated the enrollment" "$(tally)" $((before + 1))
expect "Idle report on the device's local shards: no statement through Citus on its worker" \
    "$(through_citus "SELECT status FROM mdm.connect_routed(mdm.report_device_id($(msg connect/01-idle-device.plist)), $(msg connect/01-idle-device.plist), $mac_der)")" "200 0"
expect "... with its webhook event (the shard's ID from the table's sequence)" \
    "$(q -c "SELECT topic || ' ' || status FROM mdm.events WHERE device_id = '$mac' ORDER BY id DESC LIMIT 1")" "mdm.Connect Idle"
# a session on the device's worker that used its local shards keeps working
# when the shard moves away: it finds the change and goes through Citus
shard=$(q -c "SELECT get_shard_id_for_distribution_column('mdm.nano_devices', '$mac')")
read -r from to <<< "$(q -c "SELECT n.nodeport, (SELECT o.nodeport FROM pg_dist_node o WHERE o.groupid > 0 AND o.groupid <> n.groupid)
                             FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE p.shardid = $shard" | tr '|' ' ')"
mkfifo "$tmp/stay.in"
psql -X -At -p "$from" < "$tmp/stay.in" > "$tmp/stay.out" 2>&1 &
stay_pid=$!
exec 8> "$tmp/stay.in"
echo "SELECT 'one ' || (mdm.checkin($(msg checkin/02-tokenupdate-device.plist), $mac_der)).status;" >&8
for _ in $(seq 300); do grep -q '^one ' "$tmp/stay.out" && break; sleep 0.1; done
expect "a session on the device's worker: TokenUpdate" "$(grep '^one ' "$tmp/stay.out")" "one 200"
q -c "SELECT citus_move_shard_placement($shard, '127.0.0.1', $from, '127.0.0.1', $to, shard_transfer_mode => 'block_writes')" >/dev/null
before=$(tally)
echo "SELECT 'two ' || (mdm.checkin($(msg checkin/02-tokenupdate-device.plist), $mac_der)).status;" >&8
exec 8>&-
wait "$stay_pid" || true
expect "... the same session after the device's shard moved away" "$(grep '^two ' "$tmp/stay.out")" "two 200"
expect "... its TokenUpdate is in the moved shard" "$(tally)" $((before + 1))
expect "through the coordinator, the shard's new worker runs it on its local shards" \
    "$(through_citus "SELECT status FROM $tu")" "200 0"
expect "... and it updated the enrollment" "$(tally)" $((before + 2))
moved=$(q -c "SELECT mdm.enqueue_routed('$mac', ARRAY['$mac'], '{\"RequestType\": \"ProfileList\"}'::jsonb, 0, false, true)")
expect "a one-target enqueue after the move" \
    "$(q -c "SELECT count(*) FROM mdm.nano_enrollment_queue WHERE device_id = '$mac' AND command_uuid = '$moved'")" 1
expect "... and an Idle after the move hands out a command" \
    "$(report "$(xml_report $mac Idle)" "$mac_der" | grep -c '^200 [A-Z]')" 1
echo "== Citus suite: $passed checks passed"
