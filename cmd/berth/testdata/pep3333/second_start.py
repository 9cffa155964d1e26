"""A second start_response without exc_info is an error.

The server must raise from the second call (the app lets it propagate), so
the client gets a 500, not the app's body under either status.
"""
from _probe import validated


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"must not be sent\n"]


app = validated(_app)
