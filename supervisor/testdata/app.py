"""Test app for the supervisor: echoes parts of the environ back."""
import io
import os
import sys
import tempfile
import time

closed = []  # what close() was called on, reported by /closed


class Endless:
    """An endless body that records its close()."""

    def __init__(self, name):
        self.name = name

    def __iter__(self):
        while True:
            yield b"x" * 4096

    def close(self):
        closed.append(self.name)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    py = ("X-Python", sys.version.split()[0])
    if path == "/stream":
        write = start_response("200 OK", [py])
        write(b"from write;")

        def gen():
            yield b""
            yield b"one;"
            yield b"two"

        return gen()
    if path == "/file":
        # A real file, read from its current position (5) to its end.
        f = tempfile.TemporaryFile()
        f.write(b"skip:the file's bytes")
        f.seek(5)
        start_response("200 OK", [py])
        return environ["wsgi.file_wrapper"](f)
    if path == "/bytesio":
        start_response("200 OK", [py])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"not a real file"), 4)
    if path == "/endless":
        start_response("200 OK", [py])
        return Endless(environ.get("HTTP_X_TEST", "-"))
    if path in ("/record", "/sleep"):
        # Records that it started (in the file TEST_STARTS names); /sleep
        # then sleeps until the worker is killed.
        with open(os.environ["TEST_STARTS"], "a") as f:
            f.write(environ.get("HTTP_X_TEST", "-") + "\n")
        if path == "/sleep":
            time.sleep(600)
        start_response("200 OK", [py])
        return [b"recorded"]
    if path == "/nap":
        time.sleep(0.5 if environ.get("HTTP_X_TEST") == "long" else 0.001)
        start_response("200 OK", [py, ("X-Pid", str(os.getpid()))])
        return [b"napped"]
    if path == "/pattern":
        # X-Test "n,seed": n bytes, byte i being (seed + i) % 251.
        n, seed = (int(v) for v in environ["HTTP_X_TEST"].split(","))
        start_response("200 OK", [py])
        return [(bytes(range(251)) * (n // 251 + 2))[seed % 251 : seed % 251 + n]]
    if path == "/closed":
        start_response("200 OK", [py])
        return [",".join(closed).encode()]
    body = "%s %s %s %d %s" % (
        environ["REQUEST_METHOD"],
        path,
        environ.get("HTTP_X_TEST", "-"),
        os.getpid(),
        environ["wsgi.input"].read().decode(),
    )
    start_response("201 Created", [("Content-Type", "text/plain"), py])
    return [body.encode("latin-1")]
