"""berth worker: runs one WSGI application for berth.

berth writes this program to a file and starts it as `python -u FILE APP gen
N` (so that ps shows the app and generation a worker serves), with the
app's module and thread count in BERTH_MODULE and BERTH_THREADS, and the
files worker_fds lists open. It speaks the frame protocol of berth's wire
package over a Unix stream socket per thread: each thread serves its own
socket, one request at a time, so berth dispatches to each thread as to a
worker of its own. The log pipe carries structured log records, one JSON object a line:
the worker's own reports (an app's exception with its traceback, as one
record) and records of Python's logging module that no handler of the
app's took (they keep their level and logger name). It imports the app, says hello, then loops: read request frames, call
the app, write response frames. It uses the standard library only and runs
on CPython 3.8 and later.

Decoding a request costs a fixed handful of C-level calls (unpack, one
latin-1 decode, one split, dict(zip())), never a Python loop over headers.
Responses to requests that arrived together are sent together in one
sendmsg, so a batch of requests costs one read and one write. Since the
answers then say nothing of how far the worker got, each thread writes the
number of the request it starts into a shared memory file (the marks,
a uint32 at 4 × the thread's number) before the app sees it: when the
worker dies, berth reads there which request it was in, sends again only
those it never started, and never runs one twice. When a batch takes much
longer than usual (one of its requests is slow), berth writes a byte to a
pipe (the flush pipe) and a thread of the worker sends the answers done so
far: a fast request is not held behind a slow one after it.

Large bodies do not cross the socket. A request body from 32 KiB up to
buffer_body_bytes is in shared memory that berth read it into (a memfd
whose descriptor comes with the frame, F_BODY_SHARED): the worker copies
it out before the app starts, since berth reuses that memory once the
request is answered. A response body from 32 KiB up to 1 MiB made whole
(a list, or the chunk that completes the app's Content-Length) is left
in the thread's ring of the out file (shared with berth)
when there is room where berth is done, and only its place goes in the
frame. A body berth spilled to a
temp file arrives as a file descriptor (read through wsgi.input), and a
regular file returned through wsgi.file_wrapper leaves as one, for berth
to send with sendfile. While a response streams, the worker looks for a
cancel frame after each chunk: when the client went away it stops, calls
the iterable's close() and moves on to the next request.
"""
import array
import atexit
import collections
import faulthandler
import importlib
import io
import itertools
import json
import logging
import mmap
import os
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback

VERSION = 1
HDR = struct.Struct("<IBBH")
U32 = struct.Struct("<I")
T_HELLO, T_BOOT_FAILED, T_REQUEST, T_RESPONSE, T_BODY, T_ABORT, T_FILE, T_CANCEL = 1, 2, 3, 4, 5, 6, 7, 8
# The descriptors berth starts the worker with (wire/fds.go; worker_fds
# says where each is for a number of threads).
FD_LANE0 = 3
FD_LOG = 4
FD_LANES = 5
F_MORE = 1
F_BODY_FD = 2
F_BODY_SHARED = 4
F_BODY_SOCKET = 8
SHARED_OFFSET = 4096  # where a shared request body starts in its file
# The out file: per thread a word where berth says up to
# where it is done with the thread's ring, and the ring, where a response
# body may wait for berth instead of crossing the socket (F_BODY_SHARED on
# a response frame). Places count bytes ever placed, modulo 2**32.
OUT_OFFSET = 4096
OUT_SIZE = 4 << 20
PLACE = struct.Struct("<II")
DONE = struct.Struct("=I")  # berth stores it in the machine's byte order
# Bodies from this size go there, up to OUT_MAX (berth's whole-body limit).
OUT_FROM = 32 * 1024
OUT_MAX = 1 << 20
RANGE = struct.Struct("<QQ")
TO_EOF = 1 << 63
ANC_SIZE = socket.CMSG_SPACE(16 * 4)
RECV_FLAGS = getattr(socket, "MSG_CMSG_CLOEXEC", 0)

BUF_SIZE = 256 * 1024
# A read buffer grown for a big request is kept up to this size: growing
# it again for every upload costs fresh pages (page faults) each time,
# which on a VM costs more than the copy itself.
KEEP_BUF = 8 << 20
# Responses of a batch go out together, but no more than this waits: a
# big response is sent as soon as it is made, so berth can pass it on
# while the next one is made.
FLUSH_SIZE = 64 * 1024

# An app that yields empty chunks while it waits (for an event, a
# long poll) is at work, not hung: at most this often (seconds) berth is
# told so with an empty body frame, which restarts the app's timeout and
# lets berth see whether the client is still there.
BEAT = 0.1
ERROR_BODY = b"Internal Server Error\n"

chain = itertools.chain
from_iterable = itertools.chain.from_iterable


def load(spec):
    """Import "pkg.mod:attr", "pkg.mod:factory()" or "pkg.mod"."""
    modname, _, attr = spec.partition(":")
    attr = attr or "application"
    factory = attr.endswith("()")
    if factory:
        attr = attr[:-2]
    obj = importlib.import_module(modname)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttributeError(
                "module %r has no attribute %r (from %r)" % (modname, attr, spec)
            ) from None
    if factory:
        obj = obj()
    if not callable(obj):
        raise TypeError("%r is %r, not a WSGI callable" % (spec, obj))
    return obj


class LogHandler(logging.Handler):
    """Sends records to berth on the log pipe, one JSON line each.

    It replaces logging.lastResort, the handler Python uses when the app
    configured none, so an app that sets up its own logging keeps it.
    """

    def __init__(self, fd):
        logging.Handler.__init__(self, logging.WARNING)
        self.fd = fd

    def emit(self, record):
        try:
            self.send(record.levelname, record.name, self.format(record))
        except Exception:
            self.handleError(record)

    def send(self, level, logger, msg):
        line = (json.dumps({"level": level, "logger": logger, "msg": msg}) + "\n").encode("utf-8", "replace")
        self.acquire()
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self.fd, view) :]
        finally:
            self.release()


LOG = LogHandler(FD_LOG)


class Wire:
    """The socket to berth plus the frames waiting to go out.

    The lock is for the flusher thread (flush_when_asked), which may send
    what waits while the thread serving requests is in the app.
    """

    __slots__ = ("sock", "out", "size", "lock")

    def __init__(self, sock):
        self.sock = sock
        self.out = []
        self.size = 0
        self.lock = threading.Lock()

    def frame(self, typ, flags, *parts, weight=0):
        """Queue a frame. weight: bytes it stands for beyond its own (a
        body left in the out region), so that it is sent as soon as a
        body that size would be."""
        n = sum(map(len, parts))
        with self.lock:
            out = self.out
            out.append(HDR.pack(n, typ, flags, 0))
            out.extend(parts)
            self.size += 8 + n + weight

    def flush(self):
        if not self.out:
            return
        with self.lock:
            self.send_out()

    def send_out(self):
        out = self.out
        if not out:
            return
        self.out = []
        size, self.size = self.size, 0
        sock = self.sock
        # sendmsg takes at most IOV_MAX buffers; a short batch is the rule.
        if len(out) > 512:
            sock.sendall(b"".join(out))
            return
        sent = sock.sendmsg(out)
        if sent >= size:
            return
        # The socket took part of it: send the rest buffer by buffer, not
        # joined (a join would copy every big body once more).
        for buf in out:
            n = len(buf)
            if sent >= n:
                sent -= n
                continue
            sock.sendall(memoryview(buf)[sent:])
            sent = 0

    def send_file(self, fd, offset):
        """Send a file frame with fd attached to its first byte."""
        with self.lock:
            self.send_out()
            frame = HDR.pack(RANGE.size, T_FILE, 0, 0) + RANGE.pack(offset, TO_EOF)
            sent = self.sock.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
            if sent < len(frame):
                self.sock.sendall(frame[sent:])


def flush_when_asked(wire, fd):
    """Send the answers waiting in wire each time berth asks, by a byte on
    fd (a pipe), until berth closes it.

    A batch's answers leave together when the batch is done; berth asks
    when a batch takes much longer than its requests usually do: one of
    them is slow, and the answers to those before it must not wait for it.
    A thread rather than a signal, so that no system call of the app's is
    interrupted; it gets to run as soon as the app waits for anything or
    the interpreter switches threads (every 5 ms).
    """
    while True:
        try:
            if not os.read(fd, 64):
                return
        except InterruptedError:
            continue
        except OSError:
            return
        try:
            wire.flush()
        except OSError:
            return


class SharedBodies:
    """Shared bodies' files (see F_BODY_SHARED), mapped once and kept: berth
    reuses a few for all uploads, and copying a body out of a mapping costs
    less than reading it from the file (a 1 MiB upload's worker CPU: 181 ->
    146 us). At most KEEP of them and KEEP_BYTES in all, least recently
    used first out, since a file berth has let go lives on while mapped
    here. Kept by inode, and checked by the stamp at the file's start: an
    inode number can come round again."""

    KEEP = 16
    KEEP_BYTES = 64 << 20

    def __init__(self):
        self.maps = collections.OrderedDict()  # inode -> mmap
        self.size = 0
        self.lock = threading.Lock()

    def read(self, fd, n):
        """The body of n bytes in fd's file; closes fd."""
        try:
            st = os.fstat(fd)
            if st.st_size < SHARED_OFFSET + n:
                raise OSError("shared request body file of %d bytes for a body of %d" % (st.st_size, n))
            with self.lock:
                m = self.maps.pop(st.st_ino, None)
                if m is not None:
                    self.size -= len(m)
                    if len(m) != st.st_size or m[:8] != os.pread(fd, 8, 0):
                        m.close()
                        m = None
                if m is None:
                    if st.st_size > self.KEEP_BYTES:
                        return self.pread(fd, n)  # too big to keep mapped
                    try:
                        m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                    except (OSError, ValueError):
                        return self.pread(fd, n)  # out of address space or mappings
                self.maps[st.st_ino] = m
                self.size += len(m)
                while len(self.maps) > self.KEEP or self.size > self.KEEP_BYTES:
                    old = self.maps.popitem(last=False)[1]
                    self.size -= len(old)
                    old.close()
                return m[SHARED_OFFSET : SHARED_OFFSET + n]
        finally:
            os.close(fd)

    @staticmethod
    def pread(fd, n):
        data = os.pread(fd, n, SHARED_OFFSET)
        while len(data) < n:
            more = os.pread(fd, n - len(data), SHARED_OFFSET + len(data))
            if not more:
                raise OSError("shared request body shorter than its CONTENT_LENGTH")
            data += more
        return data


shared_bodies = SharedBodies()


class BodyLost(OSError):
    """The part of a request body waiting in the client's socket could not
    be read: the connection is out of step, and the 500 says to close it."""


def socket_body(fd, start, length):
    """The body of length (CONTENT_LENGTH) bytes whose start berth sent and
    whose rest waits in the client's socket (F_BODY_SOCKET); closes fd. Read into a BytesIO's
    own buffer, so the bytes the app gets are those the kernel copied
    into (getvalue() hands over a buffer of exactly their size): one copy,
    where shared memory costs two (a 1 MiB upload: see bench/RESULTS.md)."""
    try:
        n = int(length or 0)
        if n < len(start):
            raise BodyLost("CONTENT_LENGTH %d is less than the body's start" % n)
        buf = io.BytesIO(bytes(n))
        with buf.getbuffer() as view:
            got = len(start)
            view[:got] = start
            while got < n:
                try:
                    k = os.readv(fd, [view[got:]])
                except BlockingIOError:
                    # berth saw it all queued; wait a little, not for ever.
                    poll = select.poll()
                    poll.register(fd, select.POLLIN)
                    if not poll.poll(1000):
                        raise BodyLost("request body not in the client's socket")
                    continue
                if k == 0:
                    raise BodyLost("the client's connection ended within the request body")
                got += k
        return buf.getvalue()
    finally:
        os.close(fd)


def body_input(flags, start, length, fds):
    """wsgi.input for a request, chosen by its frame's flags: one of the
    four request-body routes (berth's bodyRoute, front/body*.go), with
    the flags named as wire's (FlagBody*). start is the payload after the
    environ, length the CONTENT_LENGTH, fds the descriptors received and
    not yet taken. Returns the input and a fault: an exception when the
    body could not be read, for a 500 (the app is then not called)."""
    if flags & F_BODY_SHARED:
        # Shared memory (with F_BODY_FD), which berth reuses once the
        # request is answered: copied out before the app starts.
        try:
            return io.BytesIO(shared_bodies.read(fds.popleft(), int(length or 0))), None
        except Exception as e:
            return io.BytesIO(b""), e
    if flags & F_BODY_SOCKET:
        # The start here, the rest in the client's socket.
        try:
            fd = fds.popleft()
        except IndexError:
            return io.BytesIO(b""), BodyLost("the client's socket did not come with the request")
        try:
            return io.BytesIO(socket_body(fd, start, length)), None
        except Exception as e:
            return io.BytesIO(b""), e if isinstance(e, BodyLost) else BodyLost("reading the request body: %r" % e)
    if flags & F_BODY_FD:
        # A temp file berth spilled the body to: the app reads the file
        # (the worker closes it after the request).
        fd = fds.popleft()
        os.lseek(fd, 0, os.SEEK_SET)
        return open(fd, "rb"), None
    # In the frame. From bytes, not the view: BytesIO then shares the
    # bytes, and a read() of the whole body returns them without a copy
    # (a 1 MiB upload read whole: 97 -> 35 us).
    return io.BytesIO(bytes(start)), None


class ClientDisconnected(OSError):
    """Raised by write() once berth said the client went away."""


class FileWrapper:
    """wsgi.file_wrapper. A regular file is sent by berth with sendfile from
    its current position to its end; anything else is read in blocks."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        blksize = self.blksize
        while True:
            data = read(blksize)
            if not data:
                return
            yield data

    def fd_and_offset(self):
        """The descriptor and position to send from, or None when the file
        is not a regular file with a descriptor."""
        f = self.filelike
        try:
            fd = f.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return fd, f.tell()
        except Exception:
            return None


class Exchange:
    """One request's start_response, write() and response frames."""

    __slots__ = ("wire", "worker", "status", "headers", "sent")

    def __init__(self, wire, worker):
        self.wire = wire
        self.worker = worker
        self.status = None
        self.headers = None
        self.sent = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if type(status) is not str:
            raise TypeError("status must be str, got %r" % (status,))
        if type(headers) is not list:
            raise TypeError("headers must be a list, got %r" % (type(headers),))
        self.status = status
        self.headers = headers
        return self.write

    def content_length(self):
        """The Content-Length the app declared, or -1."""
        for name, value in self.headers:
            if len(name) == 14 and name.lower() == "content-length":
                try:
                    return int(value)
                except ValueError:
                    return -1
        return -1

    def head(self):
        if self.status is None:
            raise AssertionError("the app produced a body before calling start_response")
        text = "\0".join(chain((self.status,), from_iterable(self.headers)))
        if text.count("\0") != 2 * len(self.headers):
            raise ValueError("headers must be (name, value) pairs of str: %r" % (self.headers,))
        return text.encode("latin-1")

    def write(self, data):
        """The PEP 3333 write() callable: data goes out before the iterable's."""
        if data:
            self.send(data, True)
            self.wire.flush()
            if self.worker.cancelled():
                raise ClientDisconnected("the client went away")

    def send(self, data, more):
        if type(data) is not bytes:
            # PEP 3333: body chunks are bytestrings. A memoryview or
            # bytearray is copied (its len() may not count bytes); a str or
            # an int is the app's bug, reported as a 500.
            if not isinstance(data, (bytearray, memoryview)):
                raise TypeError("response body chunks must be bytes, got %s" % type(data).__name__)
            data = bytes(data)
        wire = self.wire
        if self.sent:
            wire.frame(T_BODY, F_MORE if more else 0, data)
            return
        head = self.head()
        self.sent = True
        n = len(data)
        if not more and OUT_FROM <= n <= OUT_MAX:
            place = self.worker.to_ring(data)
            if place is not None:
                # The whole body in the out ring (a whole body's second way):
                # only its place goes in the frame.
                wire.frame(T_RESPONSE, F_BODY_SHARED, U32.pack(len(head)), head, place, weight=n)
                return
        wire.frame(T_RESPONSE, F_MORE if more else 0, U32.pack(len(head)), head, data)


class Worker:
    """Serves one socket: reads request frames, runs the app, answers.

    The read buffer lives on the worker (not in serve's locals) so that
    cancelled() can look past the request in progress for a cancel frame.
    """

    def __init__(self, app, wire, marks, index, multithread=False, out=None):
        self.app = app
        self.wire = wire
        self.marks = marks  # shared with berth (see the module's comment)
        self.mark_at = 4 * index
        self.out_file = out  # shared with berth (see OUT_OFFSET)
        self.done_at = 4 * index
        self.out_at = OUT_OFFSET + index * OUT_SIZE
        self.out_pos = 0  # where the next body goes in the ring
        self.base = {
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }
        self.buf = bytearray(BUF_SIZE)
        self.end = 0  # bytes buffered
        self.next = 0  # end of the request in progress
        self.seq = 0  # requests served on this socket
        self.fds = collections.deque()  # descriptors received, not yet taken

    def to_ring(self, data):
        """Put a whole body in the thread's ring of the out file, where
        berth is done, and return its place for the frame (PLACE); None
        when there is no room (or no out file): it goes in the frame."""
        out = self.out_file
        if out is None:
            return None
        n = len(data)
        pos = self.out_pos
        off = pos % OUT_SIZE
        skip = OUT_SIZE - off if off + n > OUT_SIZE else 0
        if ((pos - DONE.unpack_from(out, self.done_at)[0]) & 0xFFFFFFFF) + skip + n > OUT_SIZE:
            return None
        pos = (pos + skip) & 0xFFFFFFFF
        start = self.out_at + (off + skip) % OUT_SIZE
        out[start : start + n] = data
        self.out_pos = (pos + n) & 0xFFFFFFFF
        return PLACE.pack(pos, n)

    def fill(self, flags=0):
        """Read what the socket has into the buffer; False at EOF."""
        buf = self.buf
        if self.end == len(buf):
            grown = bytearray(2 * len(buf))
            grown[: self.end] = buf
            self.buf = buf = grown
        n, anc, msg_flags, _ = self.wire.sock.recvmsg_into([memoryview(buf)[self.end :]], ANC_SIZE, flags | RECV_FLAGS)
        if msg_flags & socket.MSG_CTRUNC:
            # Descriptors were dropped (out of them, EMFILE): frames would
            # take the wrong ones, a client's socket among them. Better a
            # new worker than a body read from another request.
            LOG.send("ERROR", "berth.worker", "file descriptors from berth were lost (control message truncated); exiting")
            os._exit(1)
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
                self.fds.extend(fds)
        self.end += n
        return n > 0

    def cancelled(self):
        """Whether berth has cancelled the request in progress."""
        try:
            self.fill(socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            pass
        buf, pos, end = self.buf, self.next, self.end
        while end - pos >= 8:
            length, typ, _, _ = HDR.unpack_from(buf, pos)
            if end - pos < 8 + length:
                break
            if typ == T_CANCEL and length == 4 and U32.unpack_from(buf, pos + 8)[0] == self.seq:
                return True
            pos += 8 + length
        return False

    def handle(self, view, flags):
        """Serve one request frame's payload (a memoryview)."""
        self.seq += 1
        U32.pack_into(self.marks, self.mark_at, self.seq)
        n = U32.unpack_from(view)[0]
        it = iter(str(view[4 : 4 + n], "latin-1").split("\0"))
        env = dict(zip(it, it))
        env.update(self.base)
        body, fault = body_input(flags, view[4 + n :], env.get("CONTENT_LENGTH"), self.fds)
        env["wsgi.input"] = body
        ex = Exchange(self.wire, self)
        result = None
        try:
            if fault is not None:
                raise fault
            result = self.app(env, ex.start_response)
            self.respond(ex, result)
        except BaseException as e:
            self.fail(env, ex, e)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    self.log_exception(env, "close() of the response iterable")
            if type(body) is not io.BytesIO:
                body.close()  # a file of the worker's own (F_BODY_FD)

    def respond(self, ex, result):
        """Send the app's answer by its route, as berth's front names them
        (respRoute, front/respond.go): a whole body (a list or tuple) goes in
        the head's frame or, from OUT_FROM to OUT_MAX and with room, in the
        thread's out ring (Exchange.send places it); a regular file from
        wsgi.file_wrapper goes as its descriptor for berth to sendfile
        (T_FILE); anything else is streamed in body frames (T_BODY). The
        one place the route is chosen, on every request: no helper call."""
        if type(result) is list or type(result) is tuple:
            ex.send(b"".join(result), False)
            return
        if type(result) is FileWrapper:
            where = result.fd_and_offset()
            if where is not None:
                self.send_file(ex, where)
                return
        self.stream(ex, result)

    def stream(self, ex, result):
        """Send an iterable's chunks as the app makes them (T_BODY frames), each
        flushed, until it ends or berth cancels the request."""
        flush = self.wire.flush
        beat = 0.0
        left = None  # bytes to the app's Content-Length (-1: none)
        for chunk in result:
            if chunk:
                if left is None:
                    left = ex.content_length()
                if left >= 0 and type(chunk) is bytes:
                    # The chunk that reaches the app's length ends the
                    # body: sent as complete, it is one frame with the
                    # head for the usual framework response (a list
                    # behind an iterator), which berth answers with one
                    # write.
                    left -= len(chunk)
                    if left <= 0:
                        ex.send(chunk, False)
                        return
                ex.send(chunk, True)
                flush()
                if self.cancelled():
                    break
            elif ex.sent:
                now = time.monotonic()
                if now - beat >= BEAT:
                    beat = now
                    self.wire.frame(T_BODY, F_MORE)
                    flush()
                    if self.cancelled():
                        break
        ex.send(b"", False)

    def send_file(self, ex, where):
        """Send the head (unless write() sent it), then the file at where
        (its descriptor and offset) for berth to sendfile (T_FILE)."""
        if not ex.sent:
            head = ex.head()
            ex.sent = True
            self.wire.frame(T_RESPONSE, F_MORE, U32.pack(len(head)), head)
        self.wire.send_file(*where)

    def fail(self, env, ex, e):
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(e, ClientDisconnected) and ex.sent:
            # berth cancelled the response; end it so the socket is in step.
            self.wire.frame(T_BODY, 0)
            return
        self.log_exception(env, "the app")
        if ex.sent:
            self.wire.frame(T_ABORT, 0, ("%s: %s" % (type(e).__name__, e)).encode("utf-8", "replace"))
            return
        head = ("500 Internal Server Error\0Content-Type\0text/plain; charset=utf-8").encode("latin-1")
        if isinstance(e, BodyLost):
            head += b"\0Connection\0close"
        self.wire.frame(T_RESPONSE, 0, U32.pack(len(head)), head, ERROR_BODY)

    def log_exception(self, env, where):
        """Send the traceback to berth as one record, not as stderr lines."""
        msg = "Exception in %s while serving %s %s (request %s)\n%s" % (
            where,
            env.get("REQUEST_METHOD", "?"),
            env.get("PATH_INFO", "?"),
            env.get("REQUEST_ID", "?"),
            traceback.format_exc(),
        )
        LOG.send("ERROR", "berth.worker", msg)

    def serve(self):
        unpack_from = HDR.unpack_from
        handle = self.handle
        flush = self.wire.flush
        start = 0
        while True:
            avail = self.end - start
            if avail >= 8:
                buf = self.buf
                length, typ, flags, _ = unpack_from(buf, start)
                need = 8 + length
                if avail >= need:
                    if typ == T_REQUEST:
                        self.next = start + need
                        handle(memoryview(buf)[start + 8 : start + need], flags)
                        if self.wire.size >= FLUSH_SIZE:
                            flush()
                    # Anything else here is a cancel that came too late.
                    start += need
                    if start == self.end:
                        start = self.end = 0
                        if len(self.buf) > KEEP_BUF:
                            self.buf = bytearray(BUF_SIZE)
                    continue
            else:
                need = 8
            # Nothing complete is buffered: answer what was, then wait.
            flush()
            buf = self.buf
            if start + need > len(buf):
                if need > len(buf):
                    grown = bytearray(max(need, 2 * len(buf)))
                    grown[:avail] = buf[start : self.end]
                    self.buf = grown
                else:
                    buf[:avail] = buf[start : self.end]
                start, self.end = 0, avail
            if not self.fill():
                return


def worker_fds(threads):
    """Where berth put the worker's files (wire's WorkerFDLayout): the
    threads' sockets, the log pipe, the marks, the flush pipe and the out
    file. The lanes come first, the log after the first of them."""
    lanes = [FD_LANE0] + [FD_LANES + i for i in range(threads - 1)]
    after = FD_LANES + threads - 1
    return lanes, FD_LOG, after, after + 1, after + 2


def main():
    # Ctrl-C in a terminal reaches the whole process group; berth decides
    # when workers stop, so the worker must not die halfway through a request.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # berth sends SIGUSR1 before killing a worker past its timeout: the
    # stack of every thread goes to stderr, into berth's log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.lastResort = LOG
    module, threads = take_args()
    lanes, _, marks_fd, flush_fd, out_fd = worker_fds(threads)
    sock = socket.socket(fileno=lanes[0])
    wire = Wire(sock)
    try:
        app = load(module)
    except BaseException:
        wire.frame(T_BOOT_FAILED, 0, traceback.format_exc().encode("utf-8", "replace"))
        wire.flush()
        sys.exit(1)
    hello = "berth-wire\0%d\0%d\0%s" % (VERSION, os.getpid(), sys.version.split()[0])
    wire.frame(T_HELLO, 0, hello.encode())
    wire.flush()
    marks = mmap.mmap(marks_fd, 4 * threads)
    os.close(marks_fd)
    try:
        out = mmap.mmap(out_fd, OUT_OFFSET + threads * OUT_SIZE)
    except (OSError, ValueError):
        out = None  # out of address space: every body through the socket
    os.close(out_fd)
    threading.Thread(target=flush_when_asked, args=(wire, flush_fd), name="berth-flush", daemon=True).start()
    if threads == 1:
        serve(Worker(app, wire, marks, 0, out=out))
        leave()
    workers = [Worker(app, wire, marks, 0, True, out)] + [
        Worker(app, Wire(socket.socket(fileno=fd)), marks, i, True, out) for i, fd in enumerate(lanes[1:], 1)
    ]
    pool = [threading.Thread(target=serve, args=(w,), name="berth-%d" % i, daemon=True) for i, w in enumerate(workers)]
    for t in pool:
        t.start()
    # berth closes every socket when it stops the worker; each thread then
    # returns.
    for t in pool:
        t.join()
    leave()


def take_args():
    """The app's module and thread count, taken out of the environment so
    that the app and its subprocesses do not see them. The program runs
    from a file, so Python put the file's directory first on sys.path:
    the working directory (the app's chdir) goes there instead, as for
    `python -c`, where the app's modules are found."""
    module = os.environ.pop("BERTH_MODULE", "")
    threads = int(os.environ.pop("BERTH_THREADS", "1"))
    here = (os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.realpath(__file__)))
    if sys.path and sys.path[0] in here:
        sys.path[0] = ""
    return module, threads


def leave():
    """End a worker that berth stopped (on stop, reload, recycle or
    scale-down, berth closes its socket): the app's atexit handlers run, as
    at any interpreter exit (Sentry, OpenTelemetry, logging's own flush,
    Prometheus' multiprocess clean-up), then os._exit, so that the app's own
    threads do not hold the process up. berth kills a worker still here
    after graceful_timeout."""
    try:
        atexit._run_exitfuncs()
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        os._exit(0)


def serve(worker):
    try:
        worker.serve()
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass


if __name__ == "__main__":
    main()
