"""Headers are sent with the first non-empty body chunk, not before.

start_response is called inside the generator's first iteration, and the
first chunks are empty. PEP 3333: the server must not transmit the headers
until the first non-empty bytestring, so the app can still replace them
(start_response with exc_info) after yielding empty chunks; a server that
sent them on the first iteration would re-raise instead and the client
would see the first status, cut.
"""
import sys

from _probe import validated


def _app(environ, start_response):
    if environ["PATH_INFO"] == "/only-empty":
        # The iterable ends having yielded only empty chunks: the headers go
        # out when it is exhausted, with an empty body.
        def only_empty():
            start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pep-Headers", "only-empty")])
            yield b""
            yield b""

        return only_empty()

    def body():
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pep-Headers", "first")])
        yield b""
        yield b""
        try:
            raise RuntimeError("pep3333: replacing headers not yet sent")
        except RuntimeError:
            start_response("201 Created", [("Content-Type", "text/plain"), ("X-Pep-Headers", "second")], sys.exc_info())
        yield b""
        yield b"body after empty chunks\n"

    return body()


app = validated(_app)
