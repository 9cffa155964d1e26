"""Connection: close from the client (and HTTP/1.0 without keep-alive) is
honoured: the response says Connection: close and berth closes the
connection after it rather than waiting for another request."""
from _probe import respond, validated


def _app(environ, start_response):
    return respond(start_response, b"closing\n", ctype="text/plain")


app = validated(_app)
