"""wsgi.input: each way of reading the body, and EOF after it.

/OP?n=N reads the whole body with one method and answers JSON: the pieces
it read (latin-1 text), what reading returns once the body is exhausted,
CONTENT_LENGTH and wsgi.input_terminated. OP is read (read(n) until b""),
read-all (read()), readline (readline() until b""), readline-n
(readline(n)), readlines, iter (for line in wsgi.input).

read-all and iter run unvalidated: the validator's input wrapper asserts
read() is given exactly one argument, so read() with none — which PEP 3333
lets apps call when the server sets wsgi.input_terminated — cannot pass it;
and its __iter__ is its own readline() loop, so a validated iteration would
never reach the server's wsgi.input.__iter__.
"""
import json

from _probe import query, validated


def _read(environ, start_response):
    inp = environ["wsgi.input"]
    op = environ["PATH_INFO"].lstrip("/")
    n = int(query(environ).get("n", "0") or 0)
    parts = []
    if op == "read":
        while True:
            b = inp.read(n)
            if not b:
                break
            parts.append(b)
        eof = [inp.read(n), inp.read(1), inp.readline()]
    elif op == "read-all":
        parts.append(inp.read())
        eof = [inp.read(), inp.read(1), inp.readline()]
    elif op == "readline":
        while True:
            b = inp.readline()
            if not b:
                break
            parts.append(b)
        eof = [inp.readline(), inp.read(1)]
    elif op == "readline-n":
        while True:
            b = inp.readline(n)
            if not b:
                break
            parts.append(b)
        eof = [inp.readline(n), inp.read(1)]
    elif op == "readlines":
        parts = inp.readlines()
        eof = [inp.readline(), inp.read(1)] + inp.readlines()
    elif op == "iter":
        parts = [line for line in inp]
        eof = [inp.readline(), inp.read(1)] + [line for line in inp]
    else:
        raise ValueError("no such op %r" % op)
    for p in parts + eof:
        if type(p) is not bytes:
            raise TypeError("wsgi.input returned %r, not bytes" % type(p))
    body = json.dumps({
        "parts": [p.decode("latin-1") for p in parts],
        "eof": [p.decode("latin-1") for p in eof],
        "content_length": environ.get("CONTENT_LENGTH"),
        "input_terminated": environ.get("wsgi.input_terminated"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


_validated = validated(_read)


def app(environ, start_response):
    if environ["PATH_INFO"] in ("/read-all", "/iter"):
        return _read(environ, start_response)
    return _validated(environ, start_response)
