#!/usr/bin/env python3
"""Hold N connections that each ask for PATH (a large generated response)
and read it 16 bytes every S seconds, for D seconds: readers on a bad
network, bounded in count and time, loopback only. The receive buffer is
set small before connecting, so that each holds little of its answer."""
import resource
import socket
import sys
import time

n, every, dur, port, path = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
socks = []
for _ in range(n):
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode())
        s.setblocking(False)
        socks.append(s)
    except OSError:
        pass
end = time.time() + dur
got = 0
while time.time() < end and socks:
    for s in list(socks):
        try:
            got += len(s.recv(16))
        except BlockingIOError:
            pass
        except OSError:
            socks.remove(s)
    time.sleep(every)
print("slow readers open at the end: %d of %d, %d bytes read" % (len(socks), n, got), file=sys.stderr)
