#!/usr/bin/env python3
"""mdm-frontend's push sender against the mock APNs (test/apns_mock), over
real sockets on 127.0.0.1, inside the throwaway cluster of test/run
(PGHOST, PGPORT, PGUSER, PGPASSWORD set).  docs/frontend.md, "Pushes".

    test/push/test_push.py FRONTEND_BINARY MOCK_BINARY

Each check prints "ok - ..." or "not ok - ..."; exits 1 if any failed.
"""
import base64
import functools
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import mdmtest  # noqa: E402
from mdmtest import START, Tally, check, free_port, wait_until  # noqa: E402,F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRONTEND, MOCK = sys.argv[1], sys.argv[2]
DB = "push_test"
TOPIC = "com.apple.mgmt.External.8f2d1c7a-3b4e-4f5a-9c6d-7e8f9a0b1c2d"
API_KEY = "push-test-key"
WORK = tempfile.mkdtemp(prefix="mdm-push-test.")
procs = []


def psql(sql, db=DB, user=None):
    return mdmtest.psql(sql, db, user)


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---- the mock ----

RULES = os.path.join(WORK, "rules")
RECORD = os.path.join(WORK, "record.jsonl")
mock = None
mock_port = 0


def set_rules(rules):
    """rules: {token_hex: "answer,answer"}; replaced atomically."""
    tmp = RULES + ".tmp"
    with open(tmp, "w") as f:
        for token, answers in rules.items():
            f.write(f"{token} {answers}\n")
    os.rename(tmp, RULES)


def start_mock(port=0):
    global mock, mock_port
    mock = subprocess.Popen([MOCK, "--port", str(port), "--cert", f"{WORK}/server.crt",
                             "--key", f"{WORK}/server.key", "--record", RECORD, "--rules", RULES],
                            stdout=subprocess.PIPE, stderr=open(f"{WORK}/mock.log", "a"), text=True)
    procs.append(mock)
    line = mock.stdout.readline()
    if not line.startswith("listening 127.0.0.1:"):
        raise RuntimeError(f"the mock did not start: {line!r}")
    mock_port = int(line.rsplit(":", 1)[1])


def stop_mock():
    mock.send_signal(signal.SIGTERM)
    mock.wait(10)


def records():
    out = []
    try:
        with open(RECORD) as f:
            for line in f:
                if line.endswith("\n"):
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def for_token(token):
    return [r for r in records() if r["path"] == "/3/device/" + token]


# ---- front ends ----

class Frontend:
    def __init__(self, name, *extra, timeout=2):
        self.name = name
        self.port = free_port()
        self.log = open(f"{WORK}/{name}.log", "a")
        dsn = f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={DB} user=fe password=fe"
        admin = f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={DB} user=adm password=adm"
        api = ["--admin-dsn", admin, "--api-key", API_KEY]
        self.proc = subprocess.Popen(
            [FRONTEND, "--listen", f"127.0.0.1:{self.port}", "--dsn", dsn, *api, "--apns-url", f"https://127.0.0.1:{mock_port}",
             "--apns-ca", f"{WORK}/ca.crt", "--apns-timeout", str(timeout), "--workers", "2",
             *extra], stdout=self.log, stderr=self.log)
        procs.append(self.proc)
        if not wait_until(lambda: self.get("/healthz")[0] == 200, 15):
            raise RuntimeError(f"front end {name} did not become healthy (see {WORK}/{name}.log)")

    def request(self, method, path, body=None):
        return mdmtest.http(self.port, method, path, body, API_KEY)

    def get(self, path):
        return self.request("GET", path)

    def metric(self, name):
        status, body = self.get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)


# ---- the database ----

@functools.lru_cache(maxsize=None)
def eid(i, u=0):
    return psql(f"SELECT bench.eid({i}, {u})")


@functools.lru_cache(maxsize=None)
def token(i, u=0):
    return psql(f"SELECT encode(bench.token({i}, {u}), 'hex')")


@functools.lru_cache(maxsize=None)
def magic(i, u=0):
    return psql(f"SELECT bench.push_magic({i}, {u})")


def enqueue_sql(ids):
    arr = "ARRAY[" + ",".join(f"'{i}'" for i in ids) + "]"
    psql(f"SELECT mdm.enqueue({arr}, '{{\"RequestType\": \"ProfileList\"}}'::jsonb)", user="adm")


def answers(tok):
    return [r["answer"] for r in for_token(tok)]


def setup():
    sh(f"sh {ROOT}/test/push_certs.sh {WORK}/push")
    # the mock's server certificate, for 127.0.0.1, from a CA the front end is given
    sh(f"cd {WORK} && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.crt "
       f"-subj '/CN=mock APNs CA'")
    sh(f"cd {WORK} && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1'"
       f" && printf 'subjectAltName=IP:127.0.0.1\\n' > ext"
       f" && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out server.crt")
    psql(f"DROP DATABASE IF EXISTS {DB}", db="postgres")
    mdmtest.conns.pop(("postgres", None)).close()
    psql(f"CREATE DATABASE {DB}", db="postgres")
    psql("CREATE EXTENSION mdm_user")
    for role in ("fe", "adm"):
        psql(f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
             f"CREATE ROLE {role} LOGIN PASSWORD '{role}'; END IF; END$$")
    psql("GRANT mdm_frontend TO fe; GRANT mdm_admin TO adm")
    # quick retries and claim time-outs for the test; no device identities
    psql(f"ALTER DATABASE {DB} SET mdm.require_identity = off")
    psql(f"ALTER DATABASE {DB} SET mdm.push_retry_base = 1")
    psql(f"ALTER DATABASE {DB} SET mdm.push_claim_timeout = 3")
    mdmtest.conns.pop((DB, None)).close()     # the settings apply to new sessions
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB, "-f",
                    f"{ROOT}/test/bench/setup.sql"], check=True, stdout=subprocess.DEVNULL)
    # 40 Macs with a device and a user channel each (bench.load_mdm: the
    # messages a Mac sends, without identity certificates)
    psql("CALL bench.load_mdm(0, 39, 1)")
    with open(f"{WORK}/push/mdm.crt") as c, open(f"{WORK}/push/mdm.key") as k:
        cert, key = c.read(), k.read()
    psql(f"SELECT mdm.upload_push_cert($c${cert}$c$, $k${key}$k$)", user="adm")
    set_rules({})


def sha256_of_cert(path):
    der = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"], capture_output=True,
                         check=True).stdout
    return hashlib.sha256(der).hexdigest()


def main():
    setup()
    print(f"# set up in {time.time() - START:.1f} s")
    start_mock()
    cert1 = sha256_of_cert(f"{WORK}/push/mdm.crt")
    cert2 = sha256_of_cert(f"{WORK}/push/mdm2.crt")

    # --no-push: serves, sends nothing; the job waits for a sender
    quiet = Frontend("nopush", "--no-push")
    enqueue_sql([eid(39)])
    time.sleep(1.5)
    check(for_token(token(39)) == [] and
          psql(f"SELECT state FROM mdm.push_jobs WHERE enrollment_id = '{eid(39)}'") == "pending",
          "--no-push sends nothing; the job stays pending")
    quiet.stop()

    a = Frontend("a")
    check(wait_until(lambda: len(for_token(token(39))) == 1, 5),
          "a job that waited is sent when a sender starts")

    # 1. /v1/enqueue reaches the mock once, as Apple specifies
    cmd_uuid = "0D2B2C4E-1111-4000-8000-000000000001"
    plist = psql(f"SELECT bench.command_text('{cmd_uuid}')")
    status, body = a.request("PUT", f"/v1/enqueue/{eid(0)}", plist.encode())
    check(status == 200, "PUT /v1/enqueue answers 200", f"{status} {body[:200]!r}")
    t0 = time.time()
    got = wait_until(lambda: for_token(token(0)), 5)
    check(len(got) == 1, "the enqueue reaches the mock", f"{len(got)} requests")
    if got:
        r = got[0]
        exp = int(r["expiration"] or 0)
        check(r["method"] == "POST" and r["path"] == f"/3/device/{token(0)}", "path /3/device/<token>", r["path"])
        check(r["topic"] == TOPIC and r["uid"] == TOPIC, "apns-topic is the certificate's topic", r["topic"])
        check(r["push_type"] == "mdm" and r["priority"] == "10", "apns-push-type mdm, apns-priority 10",
              f"{r['push_type']} {r['priority']}")
        check(abs(exp - (t0 + 86400)) < 60, "apns-expiration is now + 1 day", r["expiration"])
        check(r["content_type"] == "application/json", "content-type application/json", r["content_type"])
        check(json.loads(r["body"]) == {"mdm": magic(0)} and r["body"] == json.dumps({"mdm": magic(0)}, separators=(",", ":")),
              "body {\"mdm\": PushMagic}", r["body"])
        check(r["cert_sha256"] == cert1, "the push certificate is the client certificate")
    check(wait_until(lambda: psql(f"SELECT state || ' ' || (apns_id IS NOT NULL) FROM mdm.push_jobs "
                                  f"WHERE enrollment_id = '{eid(0)}' ORDER BY id DESC LIMIT 1") == "sent true", 5),
          "the job is reported sent with the apns-id")
    time.sleep(1.2)
    check(len(for_token(token(0))) == 1, "sent once (no second push after the poll)")

    # 2. a Mac's device and user channel: own tokens and PushMagics, the device's topic
    enqueue_sql([eid(1, 0), eid(1, 1)])
    wait_until(lambda: len(for_token(token(1, 0))) + len(for_token(token(1, 1))) >= 2, 5)
    dev, usr = for_token(token(1, 0)), for_token(token(1, 1))
    check(len(dev) == 1 and len(usr) == 1 and token(1, 0) != token(1, 1), "device and user channel pushed once each")
    if dev and usr:
        check(json.loads(dev[0]["body"])["mdm"] == magic(1, 0) and json.loads(usr[0]["body"])["mdm"] == magic(1, 1)
              and magic(1, 0) != magic(1, 1), "each with its own PushMagic")
        check(dev[0]["topic"] == TOPIC and usr[0]["topic"] == TOPIC, "both on the device's topic")

    # 3.-6. answers, all at once (the stall runs while the others retry)
    rules = {token(2): "410", token(3): "429,200", token(4): "500,200", token(5): "503,503,200",
             token(6): "stall", token(7): "400", token(8): "403"}
    set_rules(rules)
    enqueue_sql([eid(i) for i in range(2, 9)])
    # 410: the token is dead, no more pushes to it
    check(wait_until(lambda: psql(f"SELECT token_invalid_reason FROM mdm.nano_enrollments WHERE id = '{eid(2)}'"), 5)
          == "410 Unregistered", "410 Unregistered invalidates the token in the database")
    # retried with the backoff, then sent
    for i, n in ((3, 2), (4, 2), (5, 3)):
        ok = wait_until(lambda: answers(token(i))[-1:] == ["200"], 12)
        got = for_token(token(i))
        gaps = [b["t"] - a_["t"] for a_, b in zip(got, got[1:])]
        check(ok and len(got) == n, f"{rules[token(i)]}: retried, then sent", f"{answers(token(i))}")
        check(all(g >= 0.9 for g in gaps) and (len(gaps) < 2 or gaps[1] >= 1.8),
              f"{rules[token(i)]}: after the backoff (1 s, then 2 s)", f"gaps {gaps}")
    reported = wait_until(lambda: psql(
        f"SELECT string_agg(a.apns_status::text, ',' ORDER BY a.reported_at) FROM mdm.push_attempts a "
        f"JOIN mdm.push_jobs j ON j.id = a.job_id WHERE j.enrollment_id = '{eid(5)}'") == "503,503,200", 3)
    check(reported, "each attempt is reported (503, 503, 200)")
    check(psql(f"SELECT string_agg(state || ':' || coalesce(apns_reason, ''), ',') FROM mdm.push_jobs "
               f"WHERE enrollment_id IN ('{eid(7)}', '{eid(8)}')") in
          ("failed:BadDeviceToken,failed:BadCertificate", "failed:BadCertificate,failed:BadDeviceToken"),
          "400 BadDeviceToken and 403 BadCertificate are reported with their reasons")
    # the stall: timed out after --apns-timeout 2 s, reported as 503 transport
    stalled = wait_until(lambda: psql(
        f"SELECT a.apns_status || ' ' || a.apns_reason FROM mdm.push_attempts a JOIN mdm.push_jobs j "
        f"ON j.id = a.job_id WHERE j.enrollment_id = '{eid(6)}' LIMIT 1"), 8)
    check(stalled.startswith("503 transport:") and "timed out" in stalled.lower(),
          "a stalled push times out and is reported as 503 transport", stalled)
    enqueue_sql([eid(2)])
    time.sleep(1.5)
    check(answers(token(2)) == ["410:Unregistered"], "no push to the dead token afterwards", f"{answers(token(2))}")

    # a dropped connection: every push on it is reported and retried (libcurl
    # may first retry once by itself on a new connection: hence two drops)
    set_rules({token(9): "drop,drop,200"})
    enqueue_sql([eid(9), eid(9, 1)])
    check(wait_until(lambda: answers(token(9))[-1:] == ["200"] and answers(token(9, 1))[-1:] == ["200"], 10),
          "a dropped connection: retried and sent", f"{answers(token(9))}")
    check(psql(f"SELECT count(*) FROM mdm.push_attempts a JOIN mdm.push_jobs j ON j.id = a.job_id "
               f"WHERE j.enrollment_id = '{eid(9)}' AND a.apns_status = 503 AND a.apns_reason LIKE 'transport:%'") in ("1", "2"),
          "the dropped push is reported as 503 transport")
    set_rules({})

    # 7. the mock down for a while: every job is delivered when it is back
    stop_mock()
    port = mock_port
    down = [eid(i, u) for i in range(10, 15) for u in (0, 1)]
    enqueue_sql(down)
    time.sleep(2)
    start_mock(port)
    tokens = [token(i, u) for i in range(10, 15) for u in (0, 1)]
    check(wait_until(lambda: all(answers(t)[-1:] == ["200"] for t in tokens), 15),
          "the mock down for 2 s: every job delivered after it is back",
          f"{[len(answers(t)) for t in tokens]}")
    check(psql("SELECT count(*) FROM mdm.push_attempts WHERE apns_reason LIKE 'transport:%'") != "0",
          "the refused connections were reported as transport errors")

    # 8. PUT /v1/pushcert with a renewed certificate: the next push uses it
    with open(f"{WORK}/push/mdm2.crt") as c, open(f"{WORK}/push/mdm2.key") as k:
        pem = c.read() + k.read()
    status, body = a.request("PUT", "/v1/pushcert", pem.encode())
    check(status == 200, "PUT /v1/pushcert answers 200", f"{status} {body[:200]!r}")
    enqueue_sql([eid(16)])
    got = wait_until(lambda: for_token(token(16)), 5)
    check(bool(got) and got[0]["cert_sha256"] == cert2, "the next push uses the renewed certificate")
    check((a.metric('mdm_frontend_pushes_total{status="200"}') or 0) > 0, "/metrics counts pushes by status")
    check(a.metric("mdm_frontend_push_oldest_claimable_seconds") is not None,
          "/metrics has the age of the oldest claimable job")

    # 9. two front ends never send a job twice
    b = Frontend("b", timeout=30)   # it must not report the stalled pushes before it is killed
    many = [eid(i, u) for i in range(17, 37) for u in (0, 1)]
    many_tokens = {token(i, u) for i in range(17, 37) for u in (0, 1)}
    before = len(records())
    for _ in range(5):
        psql("SELECT mdm.push(ARRAY[" + ",".join(f"'{e}'" for e in many) + "])", user="adm")
        wait_until(lambda: psql("SELECT count(*) FROM mdm.push_jobs WHERE state IN ('pending', 'claimed') "
                                "AND enrollment_id = ANY(ARRAY[" + ",".join(f"'{e}'" for e in many) + "])") == "0", 10)
    new = [r for r in records()[before:] if r["path"][10:] in many_tokens]
    jobs = int(psql("SELECT count(*) FROM mdm.push_jobs WHERE enrollment_id = ANY(ARRAY[" +
                    ",".join(f"'{e}'" for e in many) + "]) AND state = 'sent'"))
    check(len(new) == jobs == 200, "two front ends: 200 jobs, 200 pushes", f"{len(new)} pushes, {jobs} jobs sent")
    ca, cb = a.metric("mdm_frontend_push_claimed_total"), b.metric("mdm_frontend_push_claimed_total")
    print(f"# claimed by a: {ca}, by b: {cb} (in all, since each started)")

    # 10. SIGKILL after claiming: the other front end sends after the claim time-out
    check(a.stop() == 0, "SIGTERM: the front end exits 0")
    victims = [eid(37), eid(38)]
    vt = [token(37), token(38)]
    set_rules({t: "stall" for t in vt})
    enqueue_sql(victims)
    check(wait_until(lambda: all(len(for_token(t)) == 1 for t in vt), 5), "b claimed and sent (stalled)")
    check(psql("SELECT count(*) FROM mdm.push_jobs WHERE state = 'claimed'") == "2", "the jobs are claimed")
    b.kill()
    set_rules({})
    a2 = Frontend("a2")
    t_kill = time.time()
    ok = wait_until(lambda: all(answers(t)[-1:] == ["200"] for t in vt), 15)
    check(ok, "SIGKILL after claiming: the other front end sends them after the claim time-out",
          f"{[answers(t) for t in vt]}")
    print(f"# re-sent {time.time() - t_kill:.1f} s after the kill (claim time-out 3 s)")
    check(psql("SELECT count(*) FROM mdm.push_jobs WHERE enrollment_id = ANY(ARRAY['" + "','".join(victims) +
               "']) AND state = 'superseded' AND apns_reason = 'claim timed out'") == "2",
          "the lost claims ended by the time-out")
    check(a2.stop() == 0, "SIGTERM again: exits 0")
    stop_mock()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report and fail
        check(False, "the push test ran to its end", repr(e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(f"# push sender: {Tally.checks - Tally.failures} of {Tally.checks} checks passed (logs in {WORK})")
    if Tally.failures == 0:
        subprocess.run(["rm", "-rf", WORK])
    sys.exit(1 if Tally.failures else 0)
