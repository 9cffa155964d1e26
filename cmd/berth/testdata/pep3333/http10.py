"""An HTTP/1.0 request gets a response it can read: never chunked.

/stream answers with a generator and no Content-Length, the case where an
HTTP/1.1 client would get chunked encoding."""
from _probe import validated


def _app(environ, start_response):
    proto = environ["SERVER_PROTOCOL"].encode("latin-1")
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"%s line %d\n" % (proto, i) for i in range(5))
    body = b"%s fixed\n" % proto
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = validated(_app)
