"""start_response with exc_info before the headers were sent replaces them.

The app starts a 200, fails, and answers with its own 500 page: the client
must see the app's 500 with the app's own body and headers, and none of the
first call's headers.
"""
import sys

from _probe import validated


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pep-First", "yes")])
    try:
        raise ValueError("pep3333: the app failed before its body")
    except ValueError:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("X-Pep-Probe", "own-500")],
            sys.exc_info(),
        )
    return [b"the app's own error page\n"]


app = validated(_app)
