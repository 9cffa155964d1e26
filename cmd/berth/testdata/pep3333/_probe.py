"""Shared helpers of the PEP 3333 probes (cmd/berth/pep3333_test.go).

Each probe module under this directory exercises one behaviour of the
server and exposes it as `app`. Wherever wsgiref.validate.validator allows
what the probe must do, `app` is the probe wrapped in the validator, so a
server that hands the app a non-compliant environ, input stream or
start_response is caught by the standard library's own checker as well as
by the test's assertions. The validator reports with AssertionError
(raised through the app, logged by berth with the line `in assert_`) and
WSGIWarning (on stderr); the test fails on either in berth's log.
"""
import json
import os
from wsgiref.validate import validator


def validated(app):
    """app wrapped in wsgiref.validate.validator."""
    return validator(app)


def respond(start_response, body, status="200 OK", ctype="application/json", headers=()):
    """A complete response with its Content-Length; body may be an object
    to send as JSON."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))] + list(headers))
    return [body]


def query(environ):
    """QUERY_STRING as a dict of single values."""
    out = {}
    for part in environ.get("QUERY_STRING", "").split("&"):
        if part:
            k, _, v = part.partition("=")
            out[k] = v
    return out


def record(name, line="x"):
    """Appends line to the file name in the test's PEP3333_DIR, where the
    test (and nothing else) reads it: proof that something happened even
    when the response could not say so."""
    path = os.path.join(os.environ["PEP3333_DIR"], name)
    with open(path, "a") as f:
        f.write(line + "\n")
