"""Expect: 100-continue: the client gets 100 Continue, sends its body, and
the app reads it (the test checks the interim response on the wire)."""
from _probe import respond, validated


def _app(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n)
    return respond(start_response, {"length": len(body), "body": body.decode("latin-1")})


app = validated(_app)
