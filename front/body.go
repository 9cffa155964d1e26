package front

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/wire"
)

// reqBody is a request body as the worker gets it: in memory up to the
// app's buffer_body_bytes (in a sharedBody from sharedFrom bytes), past
// that in an unlinked temp file whose descriptor the worker reads from
// (so a 1 GiB upload costs no 1 GiB of memory anywhere).
type reqBody struct {
	mem     []byte
	file    *os.File
	shared  *sharedBody // file is its file
	sock    *clientConn // mem is the body's start, the rest is in sock
	taken   int64       // sock's consumed count before a worker saw it
	settled bool        // settle ran: fasthttp's reading is in step or the connection ends
	n       int64
	reuse   bool // the worker has read the shared body: it may serve another
}

// bodyKind is the way a request body travels to the worker; each has its
// own frame flag (wire.RequestEncoder's Finish variants), its own
// descriptor passed with the frame or none, and its own reading in the
// worker (worker.py's handle picks the same four).
type bodyKind int

const (
	bodyInFrame bodyKind = iota // in the frame, after the environ (mem)
	bodyShared                  // in shared memory, a memfd with the frame (shared)
	bodyFile                    // spilled to an unlinked temp file, its fd with the frame (file)
	bodySocket                  // its start in the frame, the rest in the client's socket, passed (sock)
)

// kind says which way b goes to the worker.
func (b *reqBody) kind() bodyKind {
	switch {
	case b.sock != nil:
		return bodySocket
	case b.shared != nil:
		return bodyShared
	case b.file != nil:
		return bodyFile
	}
	return bodyInFrame
}

// request is the pool's request for b with its environ in enc: the frame
// its kind needs and what travels beside it.
func (b *reqBody) request(enc *wire.RequestEncoder) supervisor.Request {
	req := supervisor.Request{Body: b.mem, BodyFile: b.file}
	switch b.kind() {
	case bodySocket:
		req.Frame = enc.FinishWithSocket(len(b.mem))
		req.BodySocket = b.sock.TCPConn
	case bodyShared:
		req.Frame = enc.FinishWithShared()
	case bodyFile:
		req.Frame = enc.FinishWithFile()
	default:
		req.Frame = enc.Finish(len(b.mem))
	}
	return req
}

func (b *reqBody) close() {
	if b.sock != nil && !b.settled {
		// Refused before it went to a worker (a bad header): the
		// connection closes with the body unread.
		b.sock.drain()
	}
	switch {
	case b.shared != nil && b.reuse:
		b.shared.put()
	case b.shared != nil:
		// The worker may not have read it yet (it died, or timed out and
		// is being killed): its memory must never hold another's body
		// while it might.
		b.shared.destroy()
	case b.file != nil:
		b.file.Close()
	}
	b.file, b.shared = nil, nil
}

// bigBodies recycles request body buffers larger than an environ keeps:
// a fresh, zeroed 1 MiB buffer per upload (and the GC returning it) cost
// a fifth of berth's CPU in bench/'s 1 MiB upload workload.
var bigBodies sync.Pool // *[]byte

// bigBuffer returns a buffer of n bytes, recycled when one is at hand.
func bigBuffer(n int64) []byte {
	if p, ok := bigBodies.Get().(*[]byte); ok && int64(cap(*p)) >= n {
		return (*p)[:n]
	}
	return make([]byte, n, bodySize(n))
}

// bodySize is the size of a new buffer for a body of n bytes: a power of
// two from keepBody, so that a recycled one fits bodies of about its size.
func bodySize(n int64) int64 {
	size := int64(keepBody)
	for size < n {
		size *= 2
	}
	return size
}

// copyBufs are the buffers bodies are copied through on their way to a
// temp file.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// readBody reads the request body: Content-Length bodies up to
// rt.bufferBody into the app's shared memory from sharedFrom bytes (or,
// over TCP from socketFrom, leaves them in the client's socket for the
// worker: socketBody), into buf (grown as needed) below that, longer or
// chunked ones past that into a temp file. Bodies over rt.maxBody are
// refused with 413 before (Content-Length) or as soon as (chunked) they
// cross the limit. A non-zero status means the request is refused.
func readBody(ctx *fasthttp.RequestCtx, rt *route, buf []byte) (reqBody, int, string) {
	cl := int64(ctx.Request.Header.ContentLength())
	if cl == 0 {
		return reqBody{mem: buf[:0]}, 0, ""
	}
	if cl > rt.maxBody {
		return reqBody{}, fasthttp.StatusRequestEntityTooLarge, rt.tooLarge
	}
	r := ctx.RequestBodyStream()
	if r == nil {
		// Not a streamed request (no body stream was set up): the body,
		// if any, is in memory already.
		b := ctx.Request.Body()
		return reqBody{mem: b, n: int64(len(b))}, 0, ""
	}
	if cl > rt.bufferBody {
		f, err := tempFile()
		if err != nil {
			return reqBody{}, fasthttp.StatusInternalServerError, "cannot store the request body: " + err.Error()
		}
		body := reqBody{file: f}
		if status, msg := body.spill(r, nil, cl, rt); status != 0 {
			body.close()
			return reqBody{}, status, msg
		}
		return body, 0, ""
	}
	var head []byte // the body's start, read already
	if cc, ok := ctx.Conn().(*clientConn); ok && cl >= socketFrom {
		body, status, msg := socketBody(cc, r, cl, buf)
		if status != 0 || body.n == cl {
			return body, status, msg
		}
		head, buf = body.mem, body.mem
	}
	if cl >= sharedFrom && rt.shared != nil {
		if sb, err := rt.shared.get(cl); err == nil {
			copy(sb.mem, head)
			if _, err := io.ReadFull(r, sb.mem[len(head):cl]); err != nil {
				sb.put() // no worker has seen it
				status, msg := readError(err)
				return reqBody{}, status, msg
			}
			return reqBody{file: sb.file, shared: sb, n: cl}, 0, ""
		}
		// No memfd here (a sandbox may forbid it): the body rides in
		// the frame.
	}
	if cl > 0 {
		if int64(cap(buf)) < cl {
			big := bigBuffer(cl)
			copy(big, head)
			buf = big
		}
		buf = buf[:cl]
		if _, err := io.ReadFull(r, buf[len(head):]); err != nil {
			status, msg := readError(err)
			return reqBody{}, status, msg
		}
		return reqBody{mem: buf, n: cl}, 0, ""
	}
	return chunkedBody(r, rt, buf)
}

// chunkedBody reads a chunked body with berth's decoder (chunkedReader:
// fasthttp's takes chunk-size lines RFC 9112 does not): in memory while
// it fits, then on to a file. A body that is malformed or cut short
// never reaches the app.
func chunkedBody(stream io.Reader, rt *route, buf []byte) (reqBody, int, string) {
	r, end := chunkStream.decoder(stream)
	if r == nil {
		return reqBody{}, fasthttp.StatusInternalServerError, "cannot read the chunked request body"
	}
	buf = buf[:0]
	for len(buf) < cap(buf) || int64(len(buf)) <= rt.bufferBody {
		var err error
		buf, err = readMore(r, buf)
		if int64(len(buf)) > rt.maxBody {
			return reqBody{}, fasthttp.StatusRequestEntityTooLarge, rt.tooLarge
		}
		if err == io.EOF {
			end()
			return reqBody{mem: buf, n: int64(len(buf))}, 0, ""
		}
		if err != nil {
			status, msg := readError(err)
			return reqBody{}, status, msg
		}
	}
	f, err := tempFile()
	if err != nil {
		return reqBody{}, fasthttp.StatusInternalServerError, "cannot store the request body: " + err.Error()
	}
	body := reqBody{file: f}
	if status, msg := body.spill(r, buf, -1, rt); status != 0 {
		body.close()
		return reqBody{}, status, msg
	}
	end()
	return body, 0, ""
}

// readMore appends one Read of r to buf, growing buf first when it is
// full: the step of every loop that reads a body of unknown length.
func readMore(r io.Reader, buf []byte) ([]byte, error) {
	if len(buf) == cap(buf) {
		buf = append(buf, 0)[:len(buf)]
	}
	n, err := r.Read(buf[len(buf):cap(buf)])
	return buf[:len(buf)+n], err
}

// socketFrom is the smallest request body left in the client's socket
// for the worker to read itself (wire.FlagBodySocket) rather than copied
// into shared memory and out again. Below it the second copy costs less
// than passing the socket.
const socketFrom = 128 << 10

// socketBody takes what fasthttp holds of a body of cl bytes and waits
// for the rest to be queued in cc's socket. Once it all is, the body is
// the returned start and the socket (sock set). When the kernel wakes
// berth early, the bytes there are read and join the start (a few times
// at most: on a connection's first upload, its window grows so). When the
// body cannot wait in the socket, n says how much is in mem, and the
// caller reads the rest as any other body.
func socketBody(cc *clientConn, r io.Reader, cl int64, buf []byte) (reqBody, int, string) {
	head, err := cc.buffered(r, buf[:0])
	for tries := 0; err == nil && int64(len(head)) < cl; tries++ {
		var state queue
		var q int
		state, q, err = cc.queued(cl - int64(len(head)))
		switch {
		case err != nil:
		case state == queueAll:
			taken, cerr := cc.consumed()
			if cerr != nil {
				return reqBody{mem: head, n: int64(len(head))}, 0, ""
			}
			return reqBody{mem: head, sock: cc, taken: taken, n: cl}, 0, ""
		case state == queueEarly && tries < 4:
			m := len(head)
			head = slices.Grow(head, q)[:m+q]
			if _, err = io.ReadFull(r, head[m:]); err == nil {
				// fasthttp's reader may have read more than asked
				// into its buffer: that is the body's too.
				head, err = cc.buffered(r, head)
			}
			continue
		default:
			return reqBody{mem: head, n: int64(len(head))}, 0, ""
		}
	}
	if err != nil {
		status, msg := readError(err)
		return reqBody{}, status, msg
	}
	return reqBody{mem: head, n: int64(len(head))}, 0, ""
}

// settle puts fasthttp's reading of the connection back in step once the
// exchange for a body in the socket is over, and reports whether it could.
// The kernel's count of what was taken from the socket says whether a
// worker read the body: all of the rest, and the stream moves past it;
// none (the request was refused before a worker saw it, or the worker
// failed first), and the body is read through the stream and dropped, as
// it would have been read; anything else, and the connection cannot go on
// (what is queued of the body is dropped, so that it closes in order).
func (b *reqBody) settle(r io.Reader) bool {
	b.settled = true
	rest := b.n - int64(len(b.mem))
	now, err := b.sock.consumed()
	switch {
	case err != nil:
	case now-b.taken == rest:
		return b.sock.skipped(r, rest) == nil
	case now == b.taken:
		_, err := io.CopyN(io.Discard, r, rest)
		return err == nil
	}
	b.sock.drain()
	return false
}

// spill writes head, then r to its end (want bytes, or any number when
// want < 0, at most rt.maxBody) to the body's file.
func (b *reqBody) spill(r io.Reader, head []byte, want int64, rt *route) (int, string) {
	if _, err := b.file.Write(head); err != nil {
		return fasthttp.StatusInternalServerError, "cannot store the request body: " + err.Error()
	}
	b.n = int64(len(head))
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for want < 0 || b.n < want {
		p := buf
		if want >= 0 && int64(len(p)) > want-b.n {
			p = p[:want-b.n]
		}
		n, err := r.Read(p)
		if n > 0 {
			if b.n+int64(n) > rt.maxBody {
				return fasthttp.StatusRequestEntityTooLarge, rt.tooLarge
			}
			if _, werr := b.file.Write(p[:n]); werr != nil {
				return fasthttp.StatusInternalServerError, "cannot store the request body: " + werr.Error()
			}
			b.n += int64(n)
		}
		if err == io.EOF && (want < 0 || b.n == want) {
			return 0, ""
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return readError(err)
		}
	}
	return 0, ""
}

// readError maps a failure to read a body to the answer: 408 when the
// client was too slow (body_timeout), else 400 (a malformed chunked
// body, saying what is wrong, or the connection ended early).
func readError(err error) (int, string) {
	var ne net.Error
	var ce *chunkError
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fasthttp.StatusRequestTimeout, "request body not received in time"
	case errors.As(err, &ce), errors.Is(err, errChunkCut):
		return fasthttp.StatusBadRequest, err.Error()
	}
	return fasthttp.StatusBadRequest, "malformed or incomplete request body"
}

// tempFile returns a new file with no name in $TMPDIR (default /tmp):
// nothing is left behind whatever happens to berth. Where the file system
// cannot make a nameless file, it makes a named one and unlinks it.
func tempFile() (*os.File, error) {
	dir := os.TempDir()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), "request-body"), nil
	}
	f, err := os.CreateTemp(dir, "berth-body-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
