"""Headers that cannot go on the wire as HTTP/1.1 get a 500, and are logged.

PEP 3333: status and headers are str holding latin-1 characters only, with
no control characters. One route per case; /latin-1 is the control: a
latin-1 value that is not ASCII is legal and goes out as its latin-1 byte.

Only the cases the validator lets through are validated: it already rejects
(with its own AssertionError, before the server sees them) a header name
that is not ASCII letters, digits, '-' and '_', and a value with a
character below 0x20. Those run unvalidated, to test berth's own checks.
"""
from _probe import validated

CASES = {
    # path: (status, headers, validated)
    "/latin-1": ("200 OK", [("X-Pep-Latin", "caf\u00e9")], True),
    "/value-not-latin-1": ("200 OK", [("X-Pep-Snow", "snow \u2603")], True),
    "/value-del": ("200 OK", [("X-Pep-Del", "a\x7fb")], True),
    "/status-crlf": ("200 OK\r\nX-Pep-Injected: yes", [], True),
    "/name-not-latin-1": ("200 OK", [("X-Pep-\u20ac", "euro")], False),
    "/value-crlf": ("200 OK", [("X-Pep-Crlf", "a\r\nSet-Cookie: pep=1")], False),
    "/value-lf": ("200 OK", [("X-Pep-Lf", "a\nb")], False),
    "/value-nul": ("200 OK", [("X-Pep-Nul", "a\x00b")], False),
    "/name-space": ("200 OK", [("X-Pep Space", "v")], False),
    "/name-colon": ("200 OK", [("X-Pep:Colon", "v")], False),
}


def _case(status, headers):
    def case(environ, start_response):
        start_response(status, [("Content-Type", "text/plain")] + headers)
        return [b"bad header probe\n"]

    return case


_APPS = {}
for _path, (_status, _headers, _validate) in CASES.items():
    _APPS[_path] = validated(_case(_status, _headers)) if _validate else _case(_status, _headers)


def app(environ, start_response):
    return _APPS[environ["PATH_INFO"]](environ, start_response)
