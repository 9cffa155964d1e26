#!/usr/bin/env python3
"""Hold N connections that send a request header one byte every S seconds,
for D seconds: bounded in count and time, loopback only."""
import resource
import socket
import sys
import time

n, every, dur, port = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
req = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100000
socks = []
for _ in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), 2)
        s.setblocking(False)
        socks.append(s)
    except OSError:
        pass
end = time.time() + dur
i = 0
while time.time() < end and socks:
    for s in list(socks):
        try:
            s.send(req[i : i + 1])
        except BlockingIOError:
            pass
        except OSError:
            socks.remove(s)
    i += 1
    time.sleep(every)
print("slow connections open at the end: %d of %d" % (len(socks), n), file=sys.stderr)
