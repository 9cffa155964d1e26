"""wsgi.file_wrapper returns the file's exact bytes.

/file wraps a real file (written at import into the test's PEP3333_DIR),
/bytesio an io.BytesIO (no fileno: the server must fall back to reading
it), both unvalidated so that berth receives its own wrapper back and may
send the file its own way; /file-validated wraps a real file under the
validator, which hides the wrapper behind its own iterator, so berth must
iterate it. /file-nolength sets no Content-Length: berth gives the file's.
/write-then-file sends b"prefix:" through write() first, then returns the
wrapped file: both reach the client, in that order.
DATA is rebuilt by the test to compare.
"""
import io
import os

from _probe import validated

DATA = bytes(range(256)) * 4096 + b"tail"
PATH = os.path.join(os.environ["PEP3333_DIR"], "file_wrapper.bin")
with open(PATH, "wb") as f:
    f.write(DATA)


def _serve(environ, start_response):
    wrap = environ["wsgi.file_wrapper"]
    if environ["PATH_INFO"] == "/bytesio":
        f = io.BytesIO(DATA)
    else:
        f = open(PATH, "rb")
    headers = [("Content-Type", "application/octet-stream")]
    if environ["PATH_INFO"] == "/write-then-file":
        write = start_response("200 OK", headers)
        write(b"prefix:")
        return wrap(f, 8192)
    if environ["PATH_INFO"] != "/file-nolength":
        headers.append(("Content-Length", str(len(DATA))))
    start_response("200 OK", headers)
    return wrap(f, 8192)


_validated = validated(_serve)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/file-validated":
        return _validated(environ, start_response)
    return _serve(environ, start_response)
