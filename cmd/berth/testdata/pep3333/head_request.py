"""HEAD: the status and headers of the GET, Content-Length included, and no
body. / answers with a list and a Content-Length; /stream with a generator
and none."""
from _probe import validated

BODY = b"hello from a GET body\n"


def _app(environ, start_response):
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pep-Method", environ["REQUEST_METHOD"])])
        return (b"streamed %d\n" % i for i in range(3))
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(BODY))),
        ("X-Pep-Method", environ["REQUEST_METHOD"]),
    ])
    return [BODY]


app = validated(_app)
