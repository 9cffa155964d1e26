"""The environ keys PEP 3333 requires, with their types.

The validator checks many of these itself (a dict; the CGI keys str; the
required keys present; wsgi.version a tuple; wsgi.url_scheme http or https;
wsgi.input and wsgi.errors with their methods; no HTTP_CONTENT_TYPE or
HTTP_CONTENT_LENGTH; SCRIPT_NAME and PATH_INFO shapes). The app answers
what it saw, before the validator's wrappers, for the test to check the
values too. It also writes a line to wsgi.errors, which must reach berth's
log.
"""
import json

from _probe import validated

CGI = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
       "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"]
WSGI = ["wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors",
        "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]


def _describe(environ):
    out = {"present": {}, "types": {}, "values": {}}
    for k in CGI + WSGI:
        out["present"][k] = k in environ
        if k in environ:
            out["types"][k] = type(environ[k]).__name__
    for k in CGI + ["wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]:
        if k in environ:
            out["values"][k] = environ[k]
    if "wsgi.version" in environ:
        out["values"]["wsgi.version"] = list(environ["wsgi.version"])
    out["input_methods"] = [m for m in ("read", "readline", "readlines", "__iter__") if hasattr(environ.get("wsgi.input"), m)]
    out["errors_methods"] = [m for m in ("write", "writelines", "flush") if hasattr(environ.get("wsgi.errors"), m)]
    out["non_str_cgi_keys"] = sorted(k for k, v in environ.items() if "." not in k and type(v) is not str)
    out["http_content_keys"] = sorted(k for k in environ if k in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"))
    return out


def _inner(environ, start_response):
    environ["wsgi.errors"].write("pep3333 wsgi.errors line for %s\n" % environ["PATH_INFO"])
    environ["wsgi.errors"].flush()
    body = json.dumps(environ["pep3333.seen"]).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


_validated = validated(_inner)


def app(environ, start_response):
    # Described before the validator wraps wsgi.input and wsgi.errors.
    environ["pep3333.seen"] = _describe(environ)
    return _validated(environ, start_response)
