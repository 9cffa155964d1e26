#!/usr/bin/env python3
"""What an app costs by itself: its WSGI callable called in a loop, no server.

    python3 bench/appcost.py flaskapp /json      # MODULE in bench/apps, PATH

Prints the CPU time per call (body joined, close() called), the floor under
any server's time per request for that route: on a machine whose cores are
shared with wrk, it bounds the ratio a server can reach over another (see
bench/RESULTS.md).
"""
import io
import os
import sys
import time


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    module, path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps"))
    app = getattr(__import__(module), "app")
    base = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "18000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:18000",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    def call():
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(b"")
        result = app(env, start_response)
        try:
            return b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()

    body = call()
    if not status or not status[-1].startswith("2"):
        sys.exit("%s %s answered %s" % (module, path, status[-1] if status else "nothing"))
    for _ in range(2000):  # warm up
        call()
    rounds = []
    for _ in range(5):
        n = 5000
        t = time.process_time()
        for _ in range(n):
            call()
        rounds.append((time.process_time() - t) / n * 1e6)
    rounds.sort()
    print("%s %s: %.1f us per call (median of 5 rounds of 5000; %d-byte body)" % (module, path, rounds[2], len(body)))


if __name__ == "__main__":
    main()
