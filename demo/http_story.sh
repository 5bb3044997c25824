#!/usr/bin/env bash
# The demo's story over HTTP (run by demo/run inside a throwaway cluster):
# mdm-frontend in front of the database, a Mac (device and user channel)
# played with real HTTP requests (curl), the administrator on NanoMDM's API.
# Needs DEMO_WORK (certificates, made by demo/run) and the mdm-frontend binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export PAGER=cat PSQL_PAGER=cat
W=$DEMO_WORK
V=test/vectors
MAC=980E3D0B-5A28-537C-B7CB-7AFD15AFB933
VICTOR=$MAC:23B1AB9F-5A19-4919-8610-0A74091497E1
ADA=5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B:7D41E2B0-9A8C-4B6D-8E1F-2A3B4C5D6E7F
KEY=demo-api-key
CHECKIN=application/x-apple-aspen-mdm-checkin

sql() { psql -X -q -v ON_ERROR_STOP=1 -P pager=off -P footer=off -d mdm "$@"; }
say() { echo "$@"; }
step() { echo; echo "== $*"; }

# --- the database and the front end ------------------------------------
psql -X -q -c "CREATE DATABASE mdm" >/dev/null
sql -c "CREATE EXTENSION mdm_user" \
    -c "CREATE ROLE demo_web LOGIN PASSWORD 'web'" -c "GRANT mdm_frontend TO demo_web" \
    -c "CREATE ROLE demo_api LOGIN PASSWORD 'api'" -c "GRANT mdm_admin TO demo_api"
BIN="${MDM_STAGE:-}$(pg_config --bindir)/mdm-frontend"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
DB="host=$PGHOST port=$PGPORT dbname=mdm"
"$BIN" --listen "127.0.0.1:$PORT" --workers 2 --dsn "$DB user=demo_web password=web" \
    --admin-dsn "$DB user=demo_api password=api" --api-key "$KEY" --cert-header X-Client-Cert \
    --enroll-profile "$V/profiles/04-no-payloadscope-dock.mobileconfig" --no-push 2> "$W/frontend.log" &
FE=$!
trap 'kill $FE 2>/dev/null; wait $FE 2>/dev/null' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "$URL/healthz" && break; sleep 0.1; done

# --- the Mac's side: curl, and a one-line summary of each reply ---------
# The identity header is what nginx sets from the TLS client certificate
# ($ssl_client_escaped_cert); mdm-frontend --cert-header reads only it.
escaped() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read(), safe=""))' "$1"; }
CERT_MAC=$(escaped "$W/mac.crt")
CERT_MAC2=$(escaped "$W/mac2.crt")
summary() {  # a reply body -> what it is, never the bytes
    python3 - "$1" <<'EOF'
import plistlib, sys
data = open(sys.argv[1], 'rb').read()
if not data:
    print('empty body')
else:
    try:
        p = plistlib.loads(data)
        c = p.get('Command', {})
        extra = ', %d-byte profile' % len(c['Payload']) if 'Payload' in c else ''
        print('command %s, CommandUUID %s%s (%d bytes)' % (c.get('RequestType'), p.get('CommandUUID'), extra, len(data)))
    except Exception:
        print('%d bytes' % len(data))
EOF
}
# mac LABEL PATH FILE CERT [CONTENT-TYPE]: one device request; prints the status line
mac() {
    local label=$1 path=$2 file=$3 cert=$4 ctype=${5:-application/x-apple-aspen-mdm} status
    status=$(curl -s -o "$W/reply" -w '%{http_code}' -X PUT --data-binary "@$file" \
             -H "Content-Type: $ctype" -H "X-Client-Cert: $cert" "$URL$path")
    printf '   Mac: %-46s PUT %-9s -> HTTP %s, %s\n' "$label" "$path" "$status" "$(summary "$W/reply")"
    echo "$status" > "$W/status"
}
# the report of a command: the Idle message with Status and CommandUUID set
report() {  # report IDLE_VECTOR STATUS COMMAND_UUID OUT [EXTRA_VECTOR]
    python3 - "$@" <<'EOF'
import plistlib, sys
idle, status, cmd, out = sys.argv[1:5]
m = plistlib.load(open(idle, 'rb'))
if len(sys.argv) > 5:
    m.update({k: v for k, v in plistlib.load(open(sys.argv[5], 'rb')).items() if k == 'QueryResponses'})
m.update({'Status': status, 'CommandUUID': cmd})
plistlib.dump(m, open(out, 'wb'))
EOF
}
last_uuid() { python3 -c 'import plistlib, sys; print(plistlib.load(open(sys.argv[1], "rb"))["CommandUUID"])' "$W/reply"; }
# the administrator: NanoMDM's API with curl; JSON replies as they come (short)
api() { curl -s -u "nanomdm:$KEY" -w '   (HTTP %{http_code})\n' "$@" | sed 's/^/   /'; }
command_plist() {  # command_plist OUT REQUEST_TYPE [PROFILE_FILE]
    python3 - "$@" <<'EOF'
import plistlib, sys, uuid
out, rtype = sys.argv[1:3]
cmd = {'RequestType': rtype}
if rtype == 'InstallProfile':
    cmd['Payload'] = open(sys.argv[3], 'rb').read()
if rtype == 'DeviceInformation':
    cmd['Queries'] = ['OSVersion', 'SerialNumber']
if rtype == 'EraseDevice':
    cmd['PIN'] = '123456'
plistlib.dump({'Command': cmd, 'CommandUUID': str(uuid.uuid4()).upper()}, open(out, 'wb'))
EOF
}

say
say "== mdm_user over HTTP: mdm-frontend on $URL in front of PostgreSQL"
say "   Every device request is one SQL call (mdm.checkin / mdm.connect) whose reply is written"
say "   back unchanged; the admin API is NanoMDM's. The messages are real MDM plists from"
say "   test/vectors/ (the seed's Mac, UDID ${MAC:0:8}..., console user Victor)."
say "   GET /healthz -> $(curl -s "$URL/healthz")   GET /version -> $(curl -s "$URL/version")"

step "1. The administrator uploads the APNs push certificate (PEM certificate and key, concatenated)"
cat "$W/push.crt" "$W/push.key" > "$W/push.pem"
api -T "$W/push.pem" "$URL/v1/pushcert"

step "2. The Mac downloads the enrollment profile and enrolls: Authenticate, then TokenUpdate"
say "   GET /mdm/enroll -> HTTP $(curl -s -o "$W/enroll" -w '%{http_code} %{content_type}' "$URL/mdm/enroll"), $(wc -c < "$W/enroll") bytes"
mac "Authenticate" /checkin "$V/checkin/01-authenticate.plist" "$CERT_MAC" "$CHECKIN"
mac "TokenUpdate, device channel" /mdm "$V/checkin/02-tokenupdate-device.plist" "$CERT_MAC" "$CHECKIN"
say "   The certificate of the first Authenticate is now bound to the Mac:"
sql -c "SELECT device_id, bound_via, left(encode(cert_sha256, 'hex'), 16) || '...' AS certificate_sha256
        FROM mdm.device_identities"
say "   The point shown: the same TokenUpdate with another Mac's certificate is refused"
say "   with 403 (28000), never 401, which would make a real Mac drop its MDM profile:"
mac "TokenUpdate with the wrong certificate" /mdm "$V/checkin/02-tokenupdate-device.plist" "$CERT_MAC2" "$CHECKIN"

step "3. Victor logs in: his user channel sends its own TokenUpdate, stored as UDID:UserID"
mac "TokenUpdate, user channel (Victor)" /mdm "$V/checkin/05-tokenupdate-user.plist" "$CERT_MAC" "$CHECKIN"
say "   A second Mac enrolls the same way, with Ada logged in:"
for f in 20-authenticate-mac2 21-tokenupdate-mac2-device 22-tokenupdate-mac2-user; do
    mac "$f" /checkin "$V/checkin/$f.plist" "$CERT_MAC2" "$CHECKIN"
done
sql -c "SELECT id AS enrollment_id, type, left(token_hex, 12) || '...' AS token, enabled
        FROM mdm.nano_enrollments ORDER BY id"

step "4. The administrator queues commands through NanoMDM's API (PUT /v1/enqueue/ID,...)"
say "   Victor's user-scoped certificate profile (profiles/01) to his user channel:"
command_plist "$W/install.plist" InstallProfile "$V/profiles/01-user-scoped-certificate.mobileconfig"
api -T "$W/install.plist" "$URL/v1/enqueue/$VICTOR"
say "   DeviceInformation to the Mac's device channel, queued without a push (?nopush=1):"
command_plist "$W/devinfo.plist" DeviceInformation
api -T "$W/devinfo.plist" "$URL/v1/enqueue/$MAC?nopush=1"
say "   The point shown: EraseDevice to a user channel is refused, per ID, as Apple's schema"
say "   allows it on device channels only (nothing is queued; HTTP 500 = every ID failed):"
command_plist "$W/erase.plist" EraseDevice
api -T "$W/erase.plist" "$URL/v1/enqueue/$ADA"

step "5. Pushes are asynchronous: each enqueue created a push job (no APNs call in this demo)"
sql -c "SELECT id AS job, enrollment_id, state FROM mdm.push_jobs ORDER BY id"

step "6. Woken by the push, Victor's user channel polls (the seed's own Idle message)"
mac "Idle, user channel" /mdm "$V/connect/02-idle-user-seed.plist" "$CERT_MAC"
cmd=$(last_uuid)
report "$V/connect/02-idle-user-seed.plist" Acknowledged "$cmd" "$W/ack.plist"
mac "Acknowledged (profile installed)" /mdm "$W/ack.plist" "$CERT_MAC"
mac "Idle again: nothing more for Victor" /mdm "$V/connect/02-idle-user-seed.plist" "$CERT_MAC"

step "7. The device channel polls and answers DeviceInformation"
mac "Idle, device channel" /mdm "$V/connect/01-idle-device.plist" "$CERT_MAC"
cmd=$(last_uuid)
report "$V/connect/01-idle-device.plist" Acknowledged "$cmd" "$W/devack.plist" \
    "$V/connect/07-acknowledged-deviceinformation.plist"
mac "Acknowledged, with QueryResponses" /mdm "$W/devack.plist" "$CERT_MAC"
mac "Idle again: queue empty" /mdm "$V/connect/01-idle-device.plist" "$CERT_MAC"
sql -c "SELECT enrollment_id, request_type, state FROM mdm.view_queue ORDER BY enrollment_id, request_type"

step "8. What the front end logged (one line per request) and counted (GET /metrics)"
grep -E 'PUT /(mdm|checkin|v1/enqueue)' "$W/frontend.log" | tail -4 | cut -c1-160 | sed 's/^/   /'
curl -s "$URL/metrics" | grep -E '^mdm_frontend_requests_total\{endpoint="(mdm|checkin|enqueue)"' | sed 's/^/   /'
kill -TERM $FE
if wait $FE; then rc=0; else rc=$?; fi
trap - EXIT
say "   SIGTERM: $(tail -1 "$W/frontend.log" | cut -c1-100) (exit status $rc)"
say
say "Done. See docs/frontend.md (running it, nginx, the admin API) and docs/front-end.md."
