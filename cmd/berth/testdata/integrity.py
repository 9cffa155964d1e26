"""An app that leaves marks in $INTEGRITY_DIR: one per upload it is
called with, one per worker whose atexit handlers ran."""
import atexit
import os
import time

DIR = os.environ["INTEGRITY_DIR"]


def mark(what, detail=""):
    with open(os.path.join(DIR, "%s-%d-%d" % (what, os.getpid(), time.monotonic_ns())), "w") as f:
        f.write(detail)


atexit.register(mark, "atexit")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    body = b""
    if path == "/upload":
        data = environ["wsgi.input"].read()
        mark("upload", "%d %s" % (len(data), environ.get("CONTENT_LENGTH")))
        body = b"%d" % len(data)
    elif path == "/errors":
        # Half a line, flushed: PEP 3333 says flush() makes it written.
        environ["wsgi.errors"].write("flushed-" + environ["QUERY_STRING"])
        environ["wsgi.errors"].flush()
    elif path == "/pid":
        body = b"%d" % os.getpid()
    elif path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"]))
        body = b"%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
