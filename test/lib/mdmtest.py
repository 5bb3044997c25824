"""Helpers shared by the Python tests that drive mdm-frontend over real
sockets on 127.0.0.1 (test/push, test/events): TAP-like checks, autocommit
queries, free ports, polling.  Import with test/lib on sys.path."""
import socket
import sys
import time

import psycopg2

START = time.time()


class Tally:
    """How many checks ran and how many failed."""
    checks = 0
    failures = 0


def check(ok, what, detail=""):
    """Print "ok - what" or "not ok - what: detail" and count it."""
    Tally.checks += 1
    if ok:
        print(f"ok - {what} [{time.time() - START:.1f} s]")
    else:
        Tally.failures += 1
        print(f"not ok - {what}" + (f": {detail}" if detail else ""))
    sys.stdout.flush()


conns = {}


def psql(sql, db, user=None):
    """The first column of the last row, as text ("" when none); autocommit.
    One connection per (database, user), kept for the next call."""
    key = (db, user)
    if key not in conns:
        kw = {"user": user, "password": user} if user else {}
        conns[key] = psycopg2.connect(dbname=db, **kw)
        conns[key].autocommit = True
    with conns[key].cursor() as cur:
        cur.execute(sql)
        row = cur.fetchall()[-1] if cur.description and cur.rowcount else None
    if row is None or row[0] is None:
        return ""
    return str(row[0])


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(cond, timeout, step=0.05):
    """cond()'s first true value within timeout seconds, else its last value."""
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def http(port, method, path, body=None, api_key=None):
    """(status, body) of one request to 127.0.0.1:port; with api_key, Basic
    auth as NanoMDM's API user.  Status 0 when nothing answered."""
    import base64
    import socket as _socket
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    if api_key is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"nanomdm:{api_key}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, _socket.timeout):
        return 0, b""
