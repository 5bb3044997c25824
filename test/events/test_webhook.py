#!/usr/bin/env python3
"""mdm-frontend's webhook worker and PUT /migration, over real sockets on
127.0.0.1, inside the throwaway cluster of test/run (PGHOST, PGPORT,
PGUSER, PGPASSWORD set).  docs/webhooks.md, docs/migration.md.

    test/events/test_webhook.py FRONTEND_BINARY

A receiver in this process answers the POSTs (2xx, 500, or not listening
at all); every event it is given is checked against NanoMDM's event.json
(JSON Schema 2020-12) and its X-Hmac-Signature.  Each check prints
"ok - ..." or "not ok - ..."; exits 1 if any failed.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import jsonschema
import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import mdmtest  # noqa: E402
from mdmtest import START, Tally, check, free_port, wait_until  # noqa: E402,F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRONTEND = sys.argv[1]
DB = "events_test"
API_KEY = "events-test-key"
HMAC_KEY = b"webhook secret"
WORK = tempfile.mkdtemp(prefix="mdm-events-test.")
procs = []

with open(f"{ROOT}/test/events/nanomdm/event.json") as f:
    SCHEMA = json.load(f)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def psql(sql, db=DB, user=None):
    return mdmtest.psql(sql, db, user)


# ---- the receiver ----

class Receiver:
    """Records every POST; answers with self.status."""

    def __init__(self, port):
        self.port = port
        self.status = 200
        self.down = False
        self.lock = threading.Lock()
        self.posts = []          # (status answered, event, signature ok, schema errors)
        self.server = None
        self.start()

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sig = self.headers.get("X-Hmac-Signature", "")
                good = base64.b64encode(hmac.new(HMAC_KEY, body, hashlib.sha256).digest()).decode()
                try:
                    event = json.loads(body)
                    errors = [e.message for e in VALIDATOR.iter_errors(event)]
                except ValueError as e:
                    event, errors = None, [str(e)]
                status = receiver.status
                if receiver.down:
                    # down: the connection ends without an answer
                    self.close_connection = True
                    return
                with receiver.lock:
                    receiver.posts.append((status, event, hmac.compare_digest(sig, good), errors,
                                           self.headers.get("Content-Type")))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.request_queue_size = 256
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        """Down: no listener, and the connections still open end without an answer."""
        self.down = True
        self.server.shutdown()
        self.server.server_close()

    def restart(self):
        self.down = False
        self.start()

    def delivered(self):
        with self.lock:
            return [p for p in self.posts if 200 <= p[0] < 300]


class Frontend:
    def __init__(self, name, *extra):
        self.name = name
        self.port = free_port()
        self.log = open(f"{WORK}/{name}.log", "a")
        dsn = f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={DB} user=fe password=fe"
        admin = f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={DB} user=adm password=adm"
        self.proc = subprocess.Popen(
            [FRONTEND, "--listen", f"127.0.0.1:{self.port}", "--dsn", dsn, "--admin-dsn", admin,
             "--api-key", API_KEY, "--no-push", "--workers", "2", *extra],
            stdout=self.log, stderr=self.log)
        procs.append(self.proc)
        if not wait_until(lambda: self.request("GET", "/healthz")[0] == 200, 15):
            raise RuntimeError(f"front end {name} did not become healthy (see {WORK}/{name}.log)")

    def request(self, method, path, body=None, auth=True):
        return mdmtest.http(self.port, method, path, body, API_KEY if auth else None)

    def metric(self, name):
        status, body = self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def undelivered():
    return int(psql("SELECT count(*) FROM mdm.events WHERE delivered_at IS NULL"))


def event_ids_by_enrollment():
    out = {}
    with mdmtest.conns[(DB, None)].cursor() as cur:
        cur.execute("SELECT enrollment_id, id FROM mdm.events ORDER BY id")
        for enrollment, i in cur.fetchall():
            out.setdefault(enrollment, []).append(str(i))
    return out


def received_by_enrollment(posts):
    out = {}
    for status, event, _, _, _ in posts:
        body = event.get("checkin_event") or event.get("acknowledge_event")
        out.setdefault(body["ids"]["id"], []).append(event["event_id"])
    return out


def setup():
    psql(f"DROP DATABASE IF EXISTS {DB}", db="postgres")
    psql(f"CREATE DATABASE {DB}", db="postgres")
    psql("CREATE EXTENSION mdm_user")
    for role in ("fe", "adm"):
        psql(f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
             f"CREATE ROLE {role} LOGIN PASSWORD '{role}'; END IF; END$$")
    psql("GRANT mdm_frontend TO fe; GRANT mdm_admin TO adm")
    for setting, value in (("require_identity", "off"), ("events", "on"), ("event_retry_base", "1"),
                           ("event_retry_max", "2"), ("event_claim_timeout", "5")):
        psql(f"ALTER DATABASE {DB} SET mdm.{setting} = {value}")
    mdmtest.conns.pop((DB, None)).close()     # the settings apply to new sessions
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB, "-f",
                    f"{ROOT}/test/bench/setup.sql"], check=True, stdout=subprocess.DEVNULL)


def check_posts(posts, what):
    check(all(not p[3] for p in posts), f"{what}: every event validates against event.json",
          next((str(p[3]) for p in posts if p[3]), ""))
    check(all(p[2] for p in posts), f"{what}: every X-Hmac-Signature verifies")
    check(all(p[4] == "application/json" for p in posts), f"{what}: Content-Type application/json")


def check_all_in_order(receiver, what):
    """Every event in the database was delivered, once per enrollment order."""
    posts = receiver.delivered()
    got = received_by_enrollment(posts)
    want = event_ids_by_enrollment()
    # a repeat (at least once) may only follow a failure the receiver did
    # not see: here every 2xx is recorded, so each event is delivered once
    firsts = {e: [i for n, i in enumerate(ids) if i not in ids[:n]] for e, ids in got.items()}
    check(firsts == want, f"{what}: every event delivered, in order per enrollment, none lost",
          f"{sum(map(len, want.values()))} events, {len(posts)} delivered")
    return posts


def main():
    setup()
    print(f"# set up in {time.time() - START:.1f} s")

    # the validator itself: NanoMDM's examples pass, an event without topic fails
    for name in sorted(os.listdir(f"{ROOT}/test/events/nanomdm/testdata")):
        with open(f"{ROOT}/test/events/nanomdm/testdata/{name}") as f:
            example = json.load(f)
        check(not list(VALIDATOR.iter_errors(example)), f"NanoMDM's example {name} validates")
    check(list(VALIDATOR.iter_errors({"created_at": "x"})) != [], "an event without topic does not")

    # events recorded before any front end runs wait for one
    psql("CALL bench.load_mdm(0, 19, 1)")
    check(undelivered() == 60, "20 Macs enrolled: 60 events waiting", str(undelivered()))

    port = free_port()
    receiver = Receiver(port)
    url = f"http://127.0.0.1:{port}/hook"
    fe = Frontend("fe1", "--webhook-url", url, "--webhook-hmac-key", HMAC_KEY.decode())
    check(wait_until(lambda: undelivered() == 0, 20), "the backlog is delivered", str(undelivered()))
    posts = check_all_in_order(receiver, "backlog")
    check_posts(posts, "backlog")
    topics = sorted({p[1]["topic"] for p in posts})
    check(topics == ["mdm.Authenticate", "mdm.TokenUpdate"], "topics", str(topics))
    user = [p[1] for p in posts if p[1]["checkin_event"]["ids"]["type"] == "User"]
    check(user and all(e["checkin_event"]["ids"]["parent_id"] == e["checkin_event"]["udid"] for e in user),
          "a user channel's events carry parent_id")
    check(all(base64.b64decode(p[1]["checkin_event"]["raw_payload"]).startswith((b"<?xml", b"bplist", b"<plist"))
              for p in posts), "raw_payload is the plist as received")

    # the receiver answers 500: nothing is lost, later events of an
    # enrollment wait for the earlier one
    receiver.status = 500
    psql("CALL bench.load_mdm(20, 29, 1)")
    check(wait_until(lambda: psql("SELECT count(*) FROM mdm.events WHERE attempts > 1 AND delivered_at IS NULL") != "0", 10),
          "while the receiver answers 500, events are retried")
    check(psql("SELECT last_error FROM mdm.view_event_backlog") == "HTTP 500", "the view shows the last error",
          psql("SELECT last_error FROM mdm.view_event_backlog"))
    check(psql("SELECT bool_and(attempts = 0) FROM mdm.events e WHERE delivered_at IS NULL AND EXISTS "
               "(SELECT FROM mdm.events p WHERE p.enrollment_id = e.enrollment_id AND p.delivered_at IS NULL "
               "AND p.id < e.id)") == "True", "an enrollment's later events are not tried before the earlier one")
    backlog = fe.metric("mdm_frontend_webhook_backlog")
    check(backlog is not None and backlog > 0, "/metrics shows the backlog", str(backlog))
    receiver.status = 204
    check(wait_until(lambda: undelivered() == 0, 20), "after the 500s, every event is delivered", str(undelivered()))
    check_all_in_order(receiver, "after 500s")

    # the receiver is down for a while
    receiver.stop()
    psql("CALL bench.load_mdm(30, 39, 1)")
    check(wait_until(lambda: "transport" in psql("SELECT coalesce(last_error, '') FROM mdm.view_event_backlog")
                     or "onnect" in psql("SELECT coalesce(last_error, '') FROM mdm.view_event_backlog"), 10),
          "while the receiver is down, deliveries fail", psql("SELECT last_error FROM mdm.view_event_backlog"))
    time.sleep(2)
    check(undelivered() > 0, "nothing is marked delivered while it is down")
    receiver.restart()
    check(wait_until(lambda: undelivered() == 0, 20), "after the outage, every event is delivered", str(undelivered()))
    posts = check_all_in_order(receiver, "after the outage")
    check_posts(posts, "all")
    check(fe.metric("mdm_frontend_webhook_backlog") is not None, "/metrics has the webhook gauges")

    # two front ends: no event is given to both
    fe2 = Frontend("fe2", "--webhook-url", url, "--webhook-hmac-key", HMAC_KEY.decode())
    before = len(receiver.delivered())
    psql("CALL bench.load_mdm(40, 99, 1)")
    check(wait_until(lambda: undelivered() == 0, 30), "two front ends deliver everything", str(undelivered()))
    new = receiver.delivered()[before:]
    ids = [p[1]["event_id"] for p in new]
    check(len(ids) == len(set(ids)) == 180, "two front ends: each event delivered once",
          f"{len(ids)} posts, {len(set(ids))} events")
    check_all_in_order(receiver, "two front ends")
    fe2.stop()

    # PUT /migration: NanoMDM's migration endpoint
    auth = psql("SELECT encode(bench.authenticate(500), 'escape')")
    token = psql("SELECT encode(bench.tokenupdate(500, 0), 'escape')")
    check(fe.request("PUT", "/migration", auth.encode(), auth=False)[0] == 401, "/migration needs the API key")
    check(fe.request("PUT", "/migration", auth.encode())[0] == 200, "/migration takes an Authenticate")
    check(fe.request("PUT", "/migration", token.encode())[0] == 200, "/migration takes a TokenUpdate")
    udid = psql("SELECT bench.eid(500, 0)")
    check(psql(f"SELECT bound_via FROM mdm.device_identities WHERE device_id = '{udid}'") == "next message",
          "a migrated device waits for its next message to bind its certificate")
    check(psql(f"SELECT enabled FROM mdm.nano_enrollments WHERE id = '{udid}'") == "True",
          "the migrated enrollment is enabled")
    status, body = fe.request("PUT", "/migration", b"<plist><dict><key>MessageType</key><string>CheckOut</string>"
                                                   b"<key>UDID</key><string>X</string></dict></plist>")
    check(status == 400 and b"Authenticate and TokenUpdate" in body, "/migration refuses other messages",
          f"{status} {body!r}")
    check(wait_until(lambda: undelivered() == 0, 20), "migrated check-ins are delivered as events too")

    # retention: delivered events are pruned once mdm.events_retention has passed
    psql("UPDATE mdm.events SET delivered_at = now() - interval '2 days'")
    pruned = int(psql("SELECT (mdm.run_maintenance())->>'events'"))
    check(pruned > 0 and psql("SELECT count(*) FROM mdm.events") == "0", "delivered events are pruned",
          str(pruned))

    check(fe.stop() == 0, "SIGTERM stops the front end with its webhook worker")
    receiver.stop()


try:
    main()
except Exception as e:  # a crash is a failure, with what was printed so far
    check(False, "the test ran to the end", repr(e))
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for c in mdmtest.conns.values():
        c.close()
if Tally.failures:
    for name in os.listdir(WORK):
        if name.endswith(".log"):
            print(f"---- {name}")
            with open(f"{WORK}/{name}") as f:
                print(f.read()[-3000:])
print(f"# {Tally.failures} failed, in {time.time() - START:.1f} s")
sys.exit(1 if Tally.failures else 0)
