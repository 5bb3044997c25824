#!/usr/bin/env python3
"""Opens N keep-alive connections to an HTTP server on 127.0.0.1, sends one
GET on each (so each is a served, kept-alive connection, as a device's),
then holds them idle.  Prints "ready OPEN" when done, then waits for a line
on stdin and closes them.  Usage: idle_conns.py PORT N
"""
import resource
import selectors
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
req = b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
socks = []
sel = selectors.DefaultSelector()
pending = 0
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
    pending += 1
    # read replies as they come, so the server never waits on a full buffer
    while pending > 0:
        events = sel.select(timeout=0 if i < n - 1 else 10)
        if not events:
            break
        for key, _ in events:
            data = key.fileobj.recv(4096)
            if data.startswith(b"HTTP/1.1 200"):
                pending -= 1
            sel.unregister(key.fileobj)
while pending > 0:
    events = sel.select(timeout=10)
    if not events:
        break
    for key, _ in events:
        data = key.fileobj.recv(4096)
        if data.startswith(b"HTTP/1.1 200"):
            pending -= 1
        sel.unregister(key.fileobj)
print("ready %d %d" % (len(socks), n - pending), flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
