#!/usr/bin/env python3
"""Benchmark phase webhook (test/bench/run): webhook events delivered per
second by mdm-frontend to a local receiver on 127.0.0.1.

    webhook_bench.py FRONTEND_BINARY DATABASE EVENTS

Inside the benchmark's cluster (PGHOST, PGPORT, PGUSER set): DATABASE has
the extension and the bench schema.  Writes EVENTS events (three per
channel) while no front end runs, then starts one front end with
--webhook-url and times the delivery of the backlog.  The receiver answers 204 to every POST (a
multi-threaded Python server: on a small machine it may be what limits the
rate; its CPU is printed beside the front end's).
"""
import http.server
import os
import resource
import socket
import subprocess
import sys
import threading
import time

import psycopg2

FRONTEND, DB, EVENTS = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    conn = psycopg2.connect(dbname=DB)
    conn.autocommit = True
    cur = conn.cursor()
    # the backlog: EVENTS TokenUpdate events of EVENTS / 3 channels (three
    # each, so that order per enrollment matters), written directly: this
    # phase measures delivery, the tables phase what recording costs
    channels = max(EVENTS // 3, 1)
    t0 = time.time()
    cur.execute(f"""INSERT INTO mdm.events (device_id, enrollment_id, enrollment_type, topic, body,
                                          token_update_tally)
                   SELECT bench.eid(i % {channels}, 0), bench.eid(i % {channels}, 0), 'Device',
                          'mdm.TokenUpdate', bench.tokenupdate(i % {channels}, 0), i / {channels} + 1
                   FROM generate_series(0, {EVENTS - 1}) i ORDER BY i""")
    record_s = time.time() - t0
    cur.execute("SELECT count(*) FROM mdm.events WHERE delivered_at IS NULL")
    backlog = cur.fetchone()[0]

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    fe_port = s.getsockname()[1]
    s.close()
    dsn = f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={DB} user={os.environ.get('PGUSER', '')}"
    if os.environ.get("PGPASSWORD"):
        dsn += f" password={os.environ['PGPASSWORD']}"
    self_cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.time()
    fe = subprocess.Popen([FRONTEND, "--listen", f"127.0.0.1:{fe_port}", "--dsn", dsn, "--no-push",
                           "--workers", "1", "--webhook-url", f"http://127.0.0.1:{port}/hook",
                           "--webhook-hmac-key", "bench"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            cur.execute("SELECT count(*) FROM mdm.events WHERE delivered_at IS NULL")
            left = cur.fetchone()[0]
            if left == 0 or time.time() - t0 > 600:
                break
            time.sleep(0.05)
        elapsed = time.time() - t0
        with open(f"/proc/{fe.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        fe_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    finally:
        fe.terminate()
        fe.wait(30)
        server.shutdown()
    self_cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    receiver_cpu = (self_cpu1.ru_utime + self_cpu1.ru_stime) - (self_cpu0.ru_utime + self_cpu0.ru_stime)
    delivered = backlog - left
    print(f"   {backlog} events of {channels} channels written in {record_s:.1f} s")
    print(f"   delivered {delivered} in {elapsed:.2f} s (front end start included): "
          f"{delivered / elapsed:,.0f} events/s; CPU front end {fe_cpu:.1f} s, receiver {receiver_cpu:.1f} s"
          + ("" if left == 0 else f"; {left} NOT delivered within 600 s"))
    cur.execute("DELETE FROM mdm.events")


main()
