"""Data given to the write() callable precedes the iterable's."""
from _probe import validated


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/generator":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"w1 ")
        write(b"w2 ")

        def body():
            yield b"g1 "
            yield b"g2\n"

        return body()
    if path == "/length":
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
        write(b"written ")
        return [b"list"]
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"one ")
    write(b"two ")
    return [b"three", b"\n"]


app = validated(_app)
