"""Crash safety under load.  Inside pg_virtualenv (test/crash/run).

Device threads drive check-ins (TokenUpdate) and connect cycles (Idle poll,
then the report of each command received) through mdm-frontend over HTTP; an
admin thread enqueues commands with mdm.enqueue; a push thread claims jobs
with mdm.claim_pushes and reports them.  Every reply is recorded.  Mid load
the test kills (SIGKILL) first a backend serving the front end, then the
postmaster (and starts the cluster again), then the front end (and starts it
again).  After each, with the load paused, it checks that:
  * every report answered 200 is in nano_command_results;
  * every command whose enqueue returned is queued or delivered;
  * no push job is stuck: after mdm.push_claim_timeout (2 s here) every job
    is finished or claimable, and a claim hands out every due one;
  * no queue item is stuck: each device with unanswered commands gets one on
    its next poll;
and that the load resumes (more reports answered 200).  It prints how many
operations were in flight at each kill and what it found.
synchronous_commit is on (the default)."""
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import psycopg2  # noqa: E402
from mdmtest import check, free_port, wait_until, Tally  # noqa: E402

DB = "mdm_crash"
BIN = os.environ["MDM_FRONTEND_BIN"]
SEED = "980E3D0B-5A28-537C-B7CB-7AFD15AFB933"
DEVICES = ["C0A5%04X-0000-4000-8000-%012X" % (i, i) for i in range(8)]
DEVICE_THREADS = 4
CLAIM_TIMEOUT = 2
LOAD_SECONDS = 4


def connect(db=DB, user=None, attempts=150):
    """A new autocommit connection, retried while the server restarts."""
    for i in range(attempts):
        try:
            kw = {"user": user, "password": user} if user else {}
            c = psycopg2.connect(dbname=db, connect_timeout=3, **kw)
            c.autocommit = True
            return c
        except psycopg2.OperationalError:
            if i == attempts - 1:
                raise
            time.sleep(0.2)


def sql(query, args=None, db=DB):
    """All rows of one statement on a fresh connection (survives restarts)."""
    for i in range(50):
        try:
            c = connect(db)
            try:
                with c.cursor() as cur:
                    cur.execute(query, args)
                    return cur.fetchall() if cur.description else []
            finally:
                c.close()
        except psycopg2.OperationalError:
            if i == 49:
                raise
            time.sleep(0.2)


class State:
    lock = threading.Lock()
    in_flight = {"check-in": 0, "poll/report": 0, "enqueue": 0, "claim/push_result": 0}
    acked = []        # (udid, command uuid) answered 200
    enqueued = []     # (udid, command uuid) whose mdm.enqueue returned
    replies = {}      # (kind, status) -> count
    paused = threading.Event()
    idle = {}         # thread name -> True while paused and between operations
    stop = threading.Event()


def op_begin(kind):
    with State.lock:
        State.in_flight[kind] += 1


def op_end(kind, status):
    with State.lock:
        State.in_flight[kind] -= 1
        State.replies[(kind, status)] = State.replies.get((kind, status), 0) + 1


def wait_while_paused(name):
    while State.paused.is_set() and not State.stop.is_set():
        State.idle[name] = True
        time.sleep(0.02)
    State.idle[name] = False


class FrontEnd:
    def __init__(self):
        self.port = free_port()
        self.proc = None

    def start(self):
        dsn = "host=127.0.0.1 port=%s dbname=%s user=crash_web password=crash_web" % (os.environ["PGPORT"], DB)
        self.proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:%d" % self.port, "--dsn", dsn,
                                      "--no-push", "--workers", "2", "--log-level", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return wait_until(lambda: self.get("/healthz")[0] == 200, 20)

    def get(self, path):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        except OSError:
            return 0, b""


FE = FrontEnd()
VEC = os.path.join(os.path.dirname(__file__), "..", "vectors", "checkin")


def vector(name, udid):
    with open(os.path.join(VEC, name), "rb") as f:
        return f.read().replace(SEED.encode(), udid.encode())


def report(udid, status, uuid=None, extra=""):
    body = "<plist><dict><key>UDID</key><string>%s</string><key>Status</key><string>%s</string>" % (udid, status)
    if uuid:
        body += "<key>CommandUUID</key><string>%s</string>" % uuid
    return (body + extra + "</dict></plist>").encode()


def put(conn_box, path, body, ctype):
    """(status, body) of one PUT on the thread's keep-alive connection; 0 on a transport error."""
    for _ in range(2):
        if conn_box[0] is None:
            conn_box[0] = http.client.HTTPConnection("127.0.0.1", FE.port, timeout=10)
        try:
            conn_box[0].request("PUT", path, body=body, headers={"Content-Type": ctype})
            r = conn_box[0].getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            conn_box[0].close()
            conn_box[0] = None
    return 0, b""


UUID_RE = re.compile(rb"<key>CommandUUID</key>\s*<string>([^<]+)</string>")


def device_thread(n):
    name = "device-%d" % n
    mine = DEVICES[n::DEVICE_THREADS]
    box = [None]
    i = 0
    while not State.stop.is_set():
        wait_while_paused(name)
        udid = mine[i % len(mine)]
        i += 1
        if i % 5 == 0:
            op_begin("check-in")
            st, _ = put(box, "/checkin", vector("02-tokenupdate-device.plist", udid),
                        "application/x-apple-aspen-mdm-checkin")
            op_end("check-in", st)
            continue
        op_begin("poll/report")
        st, body = put(box, "/mdm", report(udid, "Idle"), "application/x-apple-aspen-mdm")
        op_end("poll/report", st)
        # answer what came, as long as commands come
        while st == 200 and not State.stop.is_set():
            m = UUID_RE.search(body)
            if not m:
                break
            uuid = m.group(1).decode()
            op_begin("poll/report")
            st, body = put(box, "/mdm", report(udid, "Acknowledged", uuid,
                                               "<key>QueryResponses</key><dict><key>OSVersion</key>"
                                               "<string>14.5</string></dict>"),
                           "application/x-apple-aspen-mdm")
            op_end("poll/report", st)
            if st == 200:
                with State.lock:
                    State.acked.append((udid, uuid.lower()))
            if State.paused.is_set():
                break
        time.sleep(0.01)


def admin_thread():
    name = "admin"
    conn = None
    i = 0
    while not State.stop.is_set():
        wait_while_paused(name)
        udid = DEVICES[i % len(DEVICES)]
        i += 1
        op_begin("enqueue")
        try:
            if conn is None:
                conn = connect()
            with conn.cursor() as cur:
                cur.execute("SELECT mdm.enqueue(ARRAY[%s], '{\"RequestType\": \"DeviceInformation\", "
                            "\"Queries\": [\"OSVersion\"]}'::jsonb)", (udid,))
                uuid = cur.fetchone()[0]
            op_end("enqueue", "ok")
            with State.lock:
                State.enqueued.append((udid, uuid.lower()))
        except psycopg2.Error:
            op_end("enqueue", "error")
            conn = None
            time.sleep(0.1)
        time.sleep(0.02)


def push_thread():
    name = "push"
    conn = None
    while not State.stop.is_set():
        wait_while_paused(name)
        op_begin("claim/push_result")
        try:
            if conn is None:
                conn = connect(user="crash_web")
            with conn.cursor() as cur:
                cur.execute("SELECT job_id FROM mdm.claim_pushes(20)")
                jobs = [r[0] for r in cur.fetchall()]
                for j in jobs:
                    cur.execute("SELECT mdm.push_result(%s, 200, NULL, NULL)", (j,))
            op_end("claim/push_result", "ok")
        except psycopg2.Error:
            op_end("claim/push_result", "error")
            conn = None
        time.sleep(0.05)


def pause():
    State.paused.set()
    names = ["device-%d" % n for n in range(DEVICE_THREADS)] + ["admin", "push"]
    ok = wait_until(lambda: all(State.idle.get(n) for n in names), 60)
    if not ok:
        print("# threads still busy:", [n for n in names if not State.idle.get(n)])


def resume():
    State.paused.clear()


def in_flight_text():
    with State.lock:
        total = sum(State.in_flight.values())
        parts = ", ".join("%s %d" % (k, v) for k, v in State.in_flight.items())
    return "%d in flight (%s)" % (total, parts)


def busy_moment(least=2, timeout=3):
    """Wait (up to timeout seconds) for a moment with at least `least`
    operations in flight, so that a kill lands in the middle of work."""
    wait_until(lambda: sum(State.in_flight.values()) >= least, timeout, step=0.001)


def postmaster_pid():
    datadir = sql("SHOW data_directory", db="postgres")[0][0]
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        return int(f.readline()), datadir


def cluster():
    """(version, name) of the cluster on PGPORT."""
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[2] == os.environ["PGPORT"]:
            return f[0], f[1]
    raise RuntimeError("no cluster on port " + os.environ["PGPORT"])


def verify(after):
    """The checks after a kill and restart, load paused."""
    t0 = time.time()
    pause()
    with State.lock:
        acked = list(State.acked)
        enqueued = list(State.enqueued)
    # every report answered 200 is stored
    stored = set((d, str(u)) for d, u in sql(
        "SELECT device_id, command_uuid FROM mdm.nano_command_results WHERE status = 'Acknowledged'"))
    lost = [a for a in acked if a not in stored]
    check(not lost, "%s: all %d reports answered 200 are in nano_command_results" % (after, len(acked)),
          "lost: %s" % lost[:5])
    # every enqueue that returned is queued or delivered
    queued = set((d, str(u)) for d, u in sql("SELECT device_id, command_uuid FROM mdm.nano_enrollment_queue"))
    missing = [e for e in enqueued if e not in queued]
    check(not missing, "%s: all %d commands whose enqueue returned are queued or delivered" % (after, len(enqueued)),
          "missing: %s" % missing[:5])
    # push jobs: after the claim timeout, every job is finished or claimable
    time.sleep(CLAIM_TIMEOUT + 0.5)
    c = connect(user="crash_web")
    with c.cursor() as cur:
        cur.execute("SELECT job_id FROM mdm.claim_pushes(100000)")
        claimed = [r[0] for r in cur.fetchall()]
        for j in claimed:
            cur.execute("SELECT mdm.push_result(%s, 200, NULL, NULL)", (j,))
    c.close()
    stuck = sql("SELECT state, count(*) FROM mdm.push_jobs "
                "WHERE state = 'claimed' OR (state = 'pending' AND not_before <= now()) GROUP BY 1")
    states = dict(sql("SELECT state, count(*) FROM mdm.push_jobs GROUP BY 1"))
    check(not stuck, "%s: no push job stuck: %d claimable ones claimed and reported after the timeout; jobs %s"
          % (after, len(claimed), states), "stuck: %s" % stuck)
    # queue items: each device with unanswered commands gets one on its next poll
    pending = dict(sql("SELECT device_id, count(*) FROM mdm.nano_enrollment_queue WHERE active GROUP BY 1"))
    box = [None]
    got = 0
    for udid, n in pending.items():
        st, body = put(box, "/mdm", report(udid, "Idle"), "application/x-apple-aspen-mdm")
        m = UUID_RE.search(body) if st == 200 else None
        if m:
            got += 1
            # acknowledge it, as a device would
            st2, _ = put(box, "/mdm", report(udid, "Acknowledged", m.group(1).decode()), "application/x-apple-aspen-mdm")
            if st2 == 200:
                with State.lock:
                    State.acked.append((udid, m.group(1).decode().lower()))
    check(got == len(pending), "%s: every device with unanswered commands (%d, %d commands) gets one on its next poll"
          % (after, len(pending), sum(pending.values())), "%d of %d" % (got, len(pending)))
    # the load resumes
    before = len(State.acked)
    resume()
    ok = wait_until(lambda: len(State.acked) >= before + 10, 30)
    check(ok, "%s: the load resumes (%d more reports answered 200 in %.1f s)"
          % (after, len(State.acked) - before, time.time() - t0 - CLAIM_TIMEOUT))


def main():
    t_start = time.time()
    sc = sql("SHOW synchronous_commit", db="postgres")[0][0]
    check(sc == "on", "synchronous_commit = on", sc)
    sql("DROP DATABASE IF EXISTS %s" % DB, db="postgres")
    sql("CREATE DATABASE %s" % DB, db="postgres")
    certs = subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["sh", "test/push_certs.sh", certs], check=True)
    setup = [
        "CREATE EXTENSION mdm_user",
        "ALTER DATABASE %s SET mdm.require_identity = off" % DB,
        "ALTER DATABASE %s SET mdm.push_claim_timeout = %d" % (DB, CLAIM_TIMEOUT),
        "DROP ROLE IF EXISTS crash_web",
        "CREATE ROLE crash_web LOGIN PASSWORD 'crash_web'",
        "GRANT mdm_frontend TO crash_web",
    ]
    for s in setup:
        sql(s)
    with open(certs + "/mdm.crt") as f1, open(certs + "/mdm.key") as f2:
        sql("SELECT mdm.upload_push_cert(%s, %s)", (f1.read(), f2.read()))
    subprocess.run(["rm", "-rf", certs])
    check(FE.start(), "mdm-frontend listens on 127.0.0.1:%d" % FE.port)
    box = [None]
    enrolled = 0
    for udid in DEVICES:
        a, _ = put(box, "/checkin", vector("01-authenticate.plist", udid), "application/x-apple-aspen-mdm-checkin")
        t, _ = put(box, "/checkin", vector("02-tokenupdate-device.plist", udid), "application/x-apple-aspen-mdm-checkin")
        enrolled += (a == 200 and t == 200)
    check(enrolled == len(DEVICES), "%d devices enrolled through the front end" % enrolled)

    threads = [threading.Thread(target=device_thread, args=(n,), daemon=True) for n in range(DEVICE_THREADS)]
    threads += [threading.Thread(target=admin_thread, daemon=True), threading.Thread(target=push_thread, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(LOAD_SECONDS)
    check(len(State.acked) > 0 and len(State.enqueued) > 0,
          "load runs: %d reports answered 200, %d enqueues" % (len(State.acked), len(State.enqueued)))

    # 1. a backend serving the front end
    busy_moment()
    pid, active = None, False
    end = time.time() + 3
    while time.time() < end and not active:
        rows = sql("SELECT pid, state = 'active' FROM pg_stat_activity WHERE datname = %s "
                   "AND usename = 'crash_web' ORDER BY state = 'active' DESC LIMIT 1", (DB,))
        if rows:
            pid, active = rows[0]
    flight = in_flight_text()
    os.kill(pid, signal.SIGKILL)
    print("# killed backend %d (%s) with SIGKILL: %s" % (pid, "active" if active else "idle", flight))
    check(True, "SIGKILL on backend %d serving the front end, %s" % (pid, flight))
    time.sleep(1)
    verify("after the backend kill")
    time.sleep(LOAD_SECONDS)

    # 2. the postmaster
    pm, datadir = postmaster_pid()
    version, name = cluster()
    busy_moment()
    flight = in_flight_text()
    os.kill(pm, signal.SIGKILL)
    print("# killed the postmaster %d with SIGKILL: %s" % (pm, flight))
    t_kill = time.time()
    started = False
    for _ in range(100):
        time.sleep(0.3)
        r = subprocess.run(["pg_ctlcluster", version, name, "start"], capture_output=True, text=True)
        if r.returncode == 0:
            started = True
            break
    check(started, "SIGKILL on the postmaster, %s; cluster started again after %.1f s"
          % (flight, time.time() - t_kill), r.stderr.strip())
    verify("after the postmaster kill")
    time.sleep(LOAD_SECONDS)

    # 3. the front end
    busy_moment()
    flight = in_flight_text()
    FE.proc.kill()
    FE.proc.wait()
    print("# killed mdm-frontend with SIGKILL: %s" % flight)
    check(FE.start(), "SIGKILL on mdm-frontend, %s; started again" % flight)
    verify("after the front end kill")

    State.stop.set()
    for t in threads:
        t.join(15)
    FE.proc.terminate()
    FE.proc.wait(40)
    with State.lock:
        replies = ", ".join("%s %s: %d" % (k, s, n) for (k, s), n in sorted(State.replies.items(), key=str))
    print("# replies: %s" % replies)
    print("# %d reports answered 200, %d enqueues returned, in %.0f s"
          % (len(State.acked), len(State.enqueued), time.time() - t_start))
    sql("DROP DATABASE %s" % DB, db="postgres")
    print("%d checks, %d failed" % (Tally.checks, Tally.failures))
    sys.exit(1 if Tally.failures else 0)


if __name__ == "__main__":
    try:
        main()
    finally:
        if FE.proc and FE.proc.poll() is None:
            FE.proc.kill()
