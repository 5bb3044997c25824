#!/usr/bin/env python3
"""The push phase of the benchmark (test/bench/run --phases push): mdm-frontend
sending to the mock APNs (test/apns_mock) on 127.0.0.1, inside the bench's
throwaway cluster (PGHOST, PGPORT, PGUSER, PGPASSWORD set).

    push_bench.py --frontend BIN --mock BIN --db DB --work DIR --cert F --key F
                  [--samples N] [--push-workers N] [--max-streams N]

The database has enrolled Macs and bench.fanout_ids (the fan-out phase's
IDs), or, with --load N, is created with N device enrollments inserted
directly into the extension's tables (minutes quicker than enrolling them
through mdm.checkin; the pushes are the same).  It prints:
  - fan-out: the time from the commit of one mdm.enqueue to all of
    bench.fanout_ids until the mock has received every push, the pushes per
    second sustained (first to last push), and until every outcome is
    recorded in the database;
  - single pushes: the latency from the commit of an mdm.enqueue to one
    enrollment until its push reaches the mock (p50, p99);
  - the CPU seconds of the front end, of the mock and of the push workers'
    database backends.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psycopg2

ap = argparse.ArgumentParser()
ap.add_argument("--frontend", required=True)
ap.add_argument("--mock", required=True)
ap.add_argument("--db", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--cert", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--samples", type=int, default=300)
ap.add_argument("--push-workers", type=int, default=1)
ap.add_argument("--max-streams", type=int, default=1000)
ap.add_argument("--profile", default="",
                help="a command run during the fan-out, {pid} replaced by the front end's pid, stopped "
                     "with SIGINT after it, e.g. 'perf trace -s -p {pid} -o /tmp/trace.txt'")
ap.add_argument("--load", type=int, default=0,
                help="create DB with this many device enrollments, inserted directly (quick; "
                     "not through mdm.checkin as the fan-out phase enrolls its Macs)")
args = ap.parse_args()
W = os.path.join(args.work, "push")
os.makedirs(W, exist_ok=True)
RECORD = os.path.join(W, "record.jsonl")
procs = []


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Tail:
    """Reads the mock's record file as it grows."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.f.seek(0, 2)
        self.partial = b""

    def lines(self):
        data = self.partial + self.f.read()
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        return data[:cut].splitlines()


def load(n):
    admin = psycopg2.connect(dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {args.db}")
    admin.cursor().execute(f"CREATE DATABASE {args.db}")
    admin.close()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", args.db, "-c", "CREATE EXTENSION mdm_user",
                    "-f", os.path.join(os.path.dirname(os.path.abspath(__file__)), "setup.sql")],
                   check=True, stdout=subprocess.DEVNULL)
    db = psycopg2.connect(dbname=args.db)
    cur = db.cursor()
    t0 = time.time()
    cur.execute("INSERT INTO mdm.nano_devices (id, authenticate, authenticate_at) "
                "SELECT bench.udid(i), '\\x00', now() FROM generate_series(0, %s - 1) i", (n,))
    cur.execute("INSERT INTO mdm.nano_enrollments (device_id, id, type, topic, push_magic, token_hex, "
                "token_update, token_update_at, last_seen_at) "
                "SELECT bench.udid(i), bench.udid(i), 'Device', bench.topic(), bench.push_magic(i, 0), "
                "encode(bench.token(i, 0), 'hex'), '\\x00', now(), now() FROM generate_series(0, %s - 1) i", (n,))
    cur.execute("CREATE TABLE bench.fanout_ids AS SELECT array_agg(id ORDER BY id) AS ids FROM mdm.nano_enrollments")
    db.commit()
    db.autocommit = True
    cur.execute("VACUUM ANALYZE")
    db.close()
    print(f"   {n} device enrollments inserted directly in {time.time() - t0:.1f} s")


def main():
    if args.load:
        load(args.load)
    db = psycopg2.connect(dbname=args.db)
    cur = db.cursor()
    cur.execute("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_fe') THEN "
                "CREATE ROLE bench_fe LOGIN PASSWORD 'bench_fe' IN ROLE mdm_frontend; END IF; END$$")
    with open(args.cert) as c, open(args.key) as k:
        cur.execute("SELECT mdm.upload_push_cert(%s, %s)", (c.read(), k.read()))
    # every earlier push counts as sent: the phase starts without a backlog
    cur.execute("UPDATE mdm.push_jobs SET state = 'sent', finished_at = now() WHERE state IN ('pending', 'claimed')")
    cur.execute("SELECT ids FROM bench.fanout_ids")
    ids = cur.fetchone()[0]
    cur.execute("SELECT id, token_hex FROM mdm.nano_enrollments WHERE id = ANY(%s)", (ids[:args.samples],))
    single = cur.fetchall()
    db.commit()
    db.autocommit = True
    cur.execute("VACUUM ANALYZE mdm.push_jobs")
    db.autocommit = False

    sh(f"cd {W} && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.crt -subj '/CN=mock APNs CA'"
       f" && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1'"
       f" && printf 'subjectAltName=IP:127.0.0.1\\n' > ext"
       f" && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out server.crt")
    open(RECORD, "w").close()
    mock_err = open(f"{W}/mock.log", "w+")
    mock = subprocess.Popen([args.mock, "--port", "0", "--cert", f"{W}/server.crt", "--key", f"{W}/server.key",
                             "--record", RECORD], stdout=subprocess.PIPE, stderr=mock_err, text=True)
    procs.append(mock)
    mock_port = int(mock.stdout.readline().rsplit(":", 1)[1])
    port = free_port()
    dsn = f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={args.db} user=bench_fe password=bench_fe"
    fe = subprocess.Popen([args.frontend, "--listen", f"127.0.0.1:{port}", "--dsn", dsn,
                           "--apns-url", f"https://127.0.0.1:{mock_port}", "--apns-ca", f"{W}/ca.crt",
                           "--apns-timeout", "30", "--push-workers", str(args.push_workers),
                           "--max-streams", str(args.max_streams), "--workers", "1", "--log-level", "warning"],
                          stdout=open(f"{W}/frontend.log", "w"), stderr=subprocess.STDOUT)
    procs.append(fe)
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    tail = Tail(RECORD)

    # warm-up: one push opens the APNs connection
    cur.execute("SELECT mdm.push(ARRAY[%s])", (single[0][0],))
    db.commit()
    while not tail.lines():
        time.sleep(0.01)

    # the fan-out
    prof = subprocess.Popen(args.profile.replace("{pid}", str(fe.pid)), shell=True) if args.profile else None
    if prof:
        time.sleep(1)
    # the push worker's backend (same machine): its CPU is the database's share
    cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'mdm-frontend push'")
    backends = [r[0] for r in cur.fetchall()]
    db.commit()
    fe_cpu0, t_mock0 = cpu_seconds(fe.pid), cpu_seconds(mock.pid)
    db_cpu0 = sum(cpu_seconds(p) for p in backends)
    t_start = time.time()
    cur.execute("SELECT mdm.enqueue((SELECT ids FROM bench.fanout_ids), '{\"RequestType\": \"ProfileList\"}'::jsonb)")
    t_pre = time.time()
    db.commit()
    t_commit = time.time()
    n = len(ids)
    got = 0
    first = last = None
    deadline = t_commit + 120
    while got < n and time.time() < deadline:
        new = tail.lines()
        if new:
            if first is None:
                first = json.loads(new[0])["t"]
            got += len(new)
            last = json.loads(new[-1])["t"]
        else:
            time.sleep(0.005)
    cur.execute("SELECT 1")
    db.commit()
    while time.time() < deadline:
        cur.execute("SELECT count(*) FROM mdm.push_jobs WHERE state IN ('pending', 'claimed')")
        left = cur.fetchone()[0]
        db.commit()
        if left == 0:
            break
        time.sleep(0.02)
    t_reported = time.time()
    fe_cpu, mock_cpu = cpu_seconds(fe.pid) - fe_cpu0, cpu_seconds(mock.pid) - t_mock0
    db_cpu = sum(cpu_seconds(p) for p in backends) - db_cpu0
    if prof:
        prof.send_signal(signal.SIGINT)
        try:
            prof.wait(10)
        except subprocess.TimeoutExpired:
            prof.kill()
            prof.wait()
    cur.execute("SELECT count(*) FILTER (WHERE state = 'sent'), count(*) FROM mdm.push_jobs "
                "WHERE created_at >= to_timestamp(%s)", (t_start,))
    sent, jobs = cur.fetchone()
    db.commit()
    print(f"   fan-out: mdm.enqueue to {n} enrollments took {t_pre - t_start:.2f} s, commit {t_commit - t_pre:.3f} s")
    if got < n:
        print(f"!! only {got} of {n} pushes reached the mock within 120 s", file=sys.stderr)
        return 1
    print(f"   {'':50s} {'seconds':>10s}")
    print(f"   {'commit -> first push at the mock':50s} {first - t_commit:10.3f}")
    print(f"   {'commit -> all ' + str(n) + ' pushes at the mock':50s} {last - t_commit:10.3f}")
    print(f"   {'commit -> every outcome recorded (push_results)':50s} {t_reported - t_commit:10.3f}")
    print(f"   pushes/s sustained (first to last push): {n / max(last - first, 1e-9):.0f}; jobs {jobs}, sent {sent}")
    print(f"   CPU: front end {fe_cpu:.2f} s ({fe_cpu / n * 1e6:.0f} us/push), mock {mock_cpu:.2f} s "
          f"({mock_cpu / n * 1e6:.0f} us/push), push workers' database backends {db_cpu:.2f} s "
          f"({db_cpu / n * 1e6:.0f} us/push); load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    # the database's share: mdm_frontend_db_call_seconds counts the push workers' statements
    # (claim, report, backlog; from sending one to its result) and the HTTP workers' (none here)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        m = dict(line.rsplit(" ", 1) for line in r.read().decode().splitlines()
                 if line.startswith("mdm_frontend_db_call_seconds_") or line.startswith("mdm_frontend_push_claimed"))
    calls = float(m.get("mdm_frontend_db_call_seconds_count", 0))
    if calls:
        print(f"   database statements of the push workers: {calls:.0f}, mean "
              f"{float(m['mdm_frontend_db_call_seconds_sum']) / calls * 1000:.1f} ms from sending to the result")
    with open(os.path.join(args.work, "push_fanout.txt"), "w") as f:
        f.write(f"{n} {last - t_commit:.3f} {n / max(last - first, 1e-9):.0f}\n")

    # single pushes, one at a time
    lat = []
    for eid, tok in single:
        path = "/3/device/" + tok
        cur.execute("SELECT mdm.enqueue(ARRAY[%s], '{\"RequestType\": \"SecurityInfo\"}'::jsonb)", (eid,))
        db.commit()
        t_c = time.time()
        end = t_c + 10
        found = None
        while found is None and time.time() < end:
            for line in tail.lines():
                r = json.loads(line)
                if r["path"] == path:
                    found = r["t"]
            if found is None:
                time.sleep(0.0005)
        if found is not None:
            lat.append((found - t_c) * 1000)
        time.sleep(0.01)
    lat.sort()
    if len(lat) < len(single):
        print(f"!! {len(single) - len(lat)} single pushes did not arrive within 10 s", file=sys.stderr)
        return 1
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"   single push, commit of mdm.enqueue -> push at the mock ({len(lat)} one after another): "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lat[-1]:.2f} ms")
    with open(os.path.join(args.work, "push_latency.txt"), "w") as f:
        f.write(f"{p50:.2f} {p99:.2f}\n")
    fe.send_signal(signal.SIGTERM)
    fe.wait(30)
    mock.send_signal(signal.SIGTERM)
    mock.wait(10)
    mock_err.seek(0)
    print("   " + mock_err.read().strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    rc = 1
    try:
        rc = main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    sys.exit(rc)
