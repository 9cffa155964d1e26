"""start_response with exc_info after the headers were sent re-raises.

The headers and a first chunk are out; the app then fails and calls
start_response with exc_info, which must re-raise the app's exception (the
generator does not catch it). The client must see a cut response, never a
complete one, and "never sent" must not reach it.
"""
import sys

from _probe import validated


def _app(environ, start_response):
    def body():
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial body\n"
        try:
            raise RuntimeError("pep3333 error after the headers were sent")
        except RuntimeError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never sent\n"

    return body()


app = validated(_app)
