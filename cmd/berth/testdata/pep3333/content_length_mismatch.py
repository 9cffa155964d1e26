"""An app's Content-Length that does not match the body it produces.

/short declares 5 bytes and produces 13: berth must send exactly 5 and keep
the connection usable for the next request. /long declares 100 and produces
10: berth sends the 10 and closes the connection, so that the client sees
the response is incomplete instead of waiting for the rest. /ok is the next
request on the connection.

The -list routes return a list and run unvalidated: the validator wraps
every result in an iterator of its own, so only an unvalidated app reaches
the worker's one-frame path for a list.
"""
from _probe import validated


def _respond(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/ok":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    length = "5" if path.startswith("/short") else "100"
    chunks = [b"hello", b", world\n"] if path.startswith("/short") else [b"only ", b"ten b"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", length)])
    if path.endswith("-list"):
        return chunks
    return (c for c in chunks)


_validated = validated(_respond)


def app(environ, start_response):
    if environ["PATH_INFO"].endswith("-list"):
        return _respond(environ, start_response)
    return _validated(environ, start_response)
