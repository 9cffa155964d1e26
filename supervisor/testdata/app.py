"""Test app for the supervisor: echoes parts of the environ back."""
import os
import sys


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        write = start_response("200 OK", [("X-Python", sys.version.split()[0])])
        write(b"from write;")

        def gen():
            yield b""
            yield b"one;"
            yield b"two"

        return gen()
    body = "%s %s %s %d %s" % (
        environ["REQUEST_METHOD"],
        path,
        environ.get("HTTP_X_TEST", "-"),
        os.getpid(),
        environ["wsgi.input"].read().decode(),
    )
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Python", sys.version.split()[0])])
    return [body.encode("latin-1")]
