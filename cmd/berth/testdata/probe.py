"""A WSGI app with one route per behaviour the end-to-end tests probe."""
import hashlib
import json
import os
import sys
import time

closed = []  # REQUEST_IDs of /infinite responses whose close() ran
kept = []  # the wsgi.input /keep-input left unread, for /kept
PATTERN = bytes(range(251))


def respond(start_response, body, status="200 OK", ctype="application/json"):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    qs = environ.get("QUERY_STRING", "")
    if path.startswith("/env") or path.endswith("/env") or path == "*":
        env = {k: v for k, v in environ.items() if isinstance(v, str)}
        for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
            env[k] = environ[k]
        env["wsgi.version"] = list(environ["wsgi.version"])
        env["wsgi.input"] = type(environ["wsgi.input"]).__name__
        env["wsgi.errors"] = environ["wsgi.errors"] is sys.stderr
        env["probe.name"] = os.environ.get("PROBE_NAME", "")
        return respond(start_response, env)
    if path == "/echo":
        body = environ["wsgi.input"].read()
        return respond(start_response, {
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_length": environ.get("CONTENT_LENGTH"),
            "head": body[:64].decode("latin-1"),
        })
    if path == "/exit-after-read":
        # Reads the body, then the worker dies without answering.
        environ["wsgi.input"].read()
        os._exit(3)
    if path == "/keep-input":
        # Keeps wsgi.input, unread, past the end of the request.
        kept[:] = [environ["wsgi.input"]]
        return respond(start_response, {"kept": True})
    if path == "/kept":
        body = kept[0].read()
        return respond(start_response, {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})
    if path == "/pattern":
        # n bytes of the test's pattern (byte i is (seed + i) % 251), with
        # their length; short=1 declares one byte more than it sends.
        q = dict(kv.split("=") for kv in qs.split("&"))
        n, seed = int(q["n"]), int(q["seed"]) % 251
        body = (PATTERN * (n // 251 + 2))[seed : seed + n]
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n + int(q.get("short", 0))))])
        return [body]
    if path == "/pid":
        return respond(start_response, {"pid": os.getpid()})
    if path == "/sleep":
        time.sleep(float(qs or "1"))
        return respond(start_response, {"slept": float(qs or "1"), "pid": os.getpid()})
    if path == "/raise":
        raise ValueError("probe asked to raise")
    if path == "/stream":
        n = int(qs or "5")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"chunk %d\n" % i for i in range(n))
    if path == "/stream-fail":
        def gen():
            yield b"first part\n"
            raise RuntimeError("probe failed mid-stream")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/infinite":
        def forever():
            try:
                while True:
                    yield b"x" * 1024
                    time.sleep(0.001)
            finally:
                closed.append(environ["REQUEST_ID"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return forever()
    if path == "/hash":
        # Reads the body in blocks, as an app handling a big upload would.
        h, n, read = hashlib.sha256(), 0, environ["wsgi.input"].read
        while True:
            block = read(1 << 20)
            if not block:
                break
            h.update(block)
            n += len(block)
        return respond(start_response, {"length": n, "sha256": h.hexdigest(),
                                        "input": type(environ["wsgi.input"]).__name__})
    if path == "/sendfile":
        # wsgi.file_wrapper over a real file named by the query string.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(qs, "rb"))
    if path == "/biglist":
        # One list item bigger than berth copies: written from the frame.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"z" * int(qs)]
    if path == "/mirror":
        # The request body back, in one frame.
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/bigcl":
        # A generated body of n 64 KiB chunks with its Content-Length.
        n = int(qs or "100")
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n * 65536))])
        return (b"c" * 65536 for _ in range(n))
    if path == "/closed":
        return respond(start_response, {"closed": closed, "pid": os.getpid()})
    if path == "/big":
        n = int(qs or "100")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"b" * 65536 for _ in range(n))
    if path == "/str-chunk":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (c for c in ["not bytes"])
    if path == "/long-print":
        print("y" * (2 << 20))
        return respond(start_response, {"pid": os.getpid()})
    if path == "/print":
        print("probe says hello on stdout")
        sys.stderr.write("probe says hello on stderr\n")
        return respond(start_response, b"printed\n", ctype="text/plain")
    if path == "/bad-header":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: x=1")])
        return [b"never sent"]
    if path == "/status":
        return respond(start_response, b"teapot\n", status="418 I'm a teapot", ctype="text/plain")
    return respond(start_response, b"not found\n", status="404 Not Found", ctype="text/plain")
