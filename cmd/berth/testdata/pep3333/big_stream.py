"""A big streamed body arrives whole: 64 MiB in 1 MiB chunks, no
Content-Length. Chunk i is the 8-digit decimal i repeated to 1 MiB; the
test rebuilds the body to check its length and SHA-256."""
from _probe import validated

CHUNKS = 64
SIZE = 1 << 20


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return ((b"%08d" % i) * (SIZE // 8) for i in range(CHUNKS))


app = validated(_app)
