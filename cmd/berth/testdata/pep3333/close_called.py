"""close() of the response iterable is called however the response ends.

Each request names itself (?id=...); the iterable's close() appends a line
to the file close-ID in the test's PEP3333_DIR, which the test watches.
Routes: /ok (a complete response), /fail-mid (the iterable raises after its
first chunk), /fail-first (it raises before any body: a 500), /endless (it
never ends; the test's client disconnects mid-response), /endless-empty (one
chunk, then only empty ones while it "waits": the client disconnects).
"""
import time

from _probe import query, record, validated


class Body:
    """A response iterable with a close() of its own (not a generator's)."""

    def __init__(self, tag, chunks, fail_at=None, endless=False, empty=False):
        self.tag = tag
        self.chunks = chunks
        self.fail_at = fail_at
        self.endless = endless
        self.empty = empty

    def __iter__(self):
        i = 0
        while True:
            if i == self.fail_at:
                raise RuntimeError("pep3333 close probe fails at chunk %d" % i)
            if self.empty:
                yield b"e" * 16384 if i == 0 else b""
                time.sleep(0.001)
            elif self.endless:
                yield b"e" * 4096
                time.sleep(0.001)
            elif i < len(self.chunks):
                yield self.chunks[i]
            else:
                return
            i += 1

    def close(self):
        record("close-" + self.tag, "closed")


def _app(environ, start_response):
    tag = query(environ)["id"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    path = environ["PATH_INFO"]
    if path == "/fail-mid":
        return Body(tag, [b"first\n", b"second\n"], fail_at=1)
    if path == "/fail-first":
        return Body(tag, [b"first\n"], fail_at=0)
    if path == "/endless":
        return Body(tag, [], endless=True)
    if path == "/endless-empty":
        return Body(tag, [], empty=True)
    return Body(tag, [b"ok ", b"body\n"])


app = validated(_app)
