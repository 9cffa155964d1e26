package front

import (
	"errors"
	"io"
	"net"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/wire"
)

// bodyRoute is a request body on its way to the worker, by one of four
// routes (bodyKind), each a type in a file of its own: body_frame.go,
// body_shared.go, body_file.go and body_socket.go. readBody chooses the
// route; handle and dispatch use only this interface, so a route's
// frame flag, the descriptor riding with its frame and the freeing of
// what it holds are written once, beside each other, and worker.py's
// body_input mirrors the choice on the other side of the wire.
type bodyRoute interface {
	// kind names the route.
	kind() bodyKind
	// length is the body's size, the worker's CONTENT_LENGTH.
	length() int64
	// inFrame is what is sent right after the frame: the body, or its
	// start; nil when none of it is.
	inFrame() []byte
	// request finishes the frame in enc with the route's flag and is the
	// pool's request: the frame, the bytes after it and the descriptor
	// (a file, or the client's socket) that rides with it.
	request(enc *wire.RequestEncoder) supervisor.Request
	// settle puts the client's connection back in step once the worker
	// answered or failed, and reports whether it can go on: only a body
	// left in the client's socket has anything to do.
	settle(r io.Reader) bool
	// release frees what the body holds once the request is over; read
	// says the worker got past reading the body (it answered), so memory
	// it read may carry another body.
	release(read bool)
}

// bodyKind is the way a request body travels to the worker; each has its
// own frame flag (wire.RequestEncoder's Finish variants), its own
// descriptor passed with the frame or none, and its own reading in the
// worker (worker.py's body_input picks the same four by the flags).
type bodyKind int

const (
	bodyInFrame bodyKind = iota // in the frame, after the environ (frameRoute)
	bodyShared                  // in shared memory, a memfd with the frame (sharedRoute)
	bodyFile                    // spilled to an unlinked temp file, its fd with the frame (fileRoute)
	bodySocket                  // its start in the frame, the rest in the client's socket, passed (socketRoute)
)

// bodySlots holds a value of each route for one request in flight, so
// that choosing a route allocates nothing (a route boxed in an interface
// would, on every request): the pooled environ carries one, and readBody
// returns a pointer to the slot it filled, valid until the environ goes
// back to its pool.
type bodySlots struct {
	frame  frameRoute
	shared sharedRoute
	file   fileRoute
	socket socketRoute
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

// readBody reads the request body and chooses its route: Content-Length
// bodies up to rt.bufferBody into the app's shared memory from sharedFrom
// bytes (or, over TCP from socketFrom, leaves them in the client's socket
// for the worker: socketBody), into buf (grown as needed) below that,
// longer or chunked ones past that into a temp file. Bodies over
// rt.maxBody are refused with 413 before (Content-Length) or as soon as
// (chunked) they cross the limit. The route is one of slots'. A non-zero
// status means the request is refused, with no route.
func readBody(ctx *fasthttp.RequestCtx, rt *route, buf []byte, slots *bodySlots) (bodyRoute, int, string) {
	cl := int64(ctx.Request.Header.ContentLength())
	if cl == 0 {
		return slots.frame.set(buf[:0]), 0, ""
	}
	if cl > rt.maxBody {
		return nil, fasthttp.StatusRequestEntityTooLarge, rt.tooLarge
	}
	r := ctx.RequestBodyStream()
	if r == nil {
		// Not a streamed request (no body stream was set up): the body,
		// if any, is in memory already.
		return slots.frame.set(ctx.Request.Body()), 0, ""
	}
	if cl > rt.bufferBody {
		return slots.file.fill(r, nil, cl, rt)
	}
	var head []byte // the body's start, read already
	if cc, ok := ctx.Conn().(*clientConn); ok && cl >= socketFrom {
		body, start, status, msg := socketBody(cc, r, cl, buf, &slots.socket)
		switch {
		case status != 0 || body != nil:
			return body, status, msg
		case int64(len(start)) == cl:
			// Read whole on the way (fasthttp had it, or the
			// kernel woke berth early): it rides in the frame.
			return slots.frame.set(start), 0, ""
		}
		head, buf = start, start
	}
	if cl >= sharedFrom && rt.shared != nil {
		if sb, err := rt.shared.get(cl); err == nil {
			return slots.shared.fill(sb, r, head, cl)
		}
		// No memfd here (a sandbox may forbid it): the body rides in
		// the frame.
	}
	if cl > 0 {
		return slots.frame.fill(r, head, buf, cl)
	}
	return chunkedBody(r, rt, buf, slots)
}

// chunkedBody reads a chunked body with berth's decoder (chunkedReader:
// fasthttp's takes chunk-size lines RFC 9112 does not): in memory while
// it fits, then on to a file. A body that is malformed or cut short
// never reaches the app.
func chunkedBody(stream io.Reader, rt *route, buf []byte, slots *bodySlots) (bodyRoute, int, string) {
	r, end := chunkStream.decoder(stream)
	if r == nil {
		return nil, fasthttp.StatusInternalServerError, "cannot read the chunked request body"
	}
	buf = buf[:0]
	for len(buf) < cap(buf) || int64(len(buf)) <= rt.bufferBody {
		var err error
		buf, err = readMore(r, buf)
		if int64(len(buf)) > rt.maxBody {
			return nil, fasthttp.StatusRequestEntityTooLarge, rt.tooLarge
		}
		if err == io.EOF {
			end()
			return slots.frame.set(buf), 0, ""
		}
		if err != nil {
			status, msg := readError(err)
			return nil, status, msg
		}
	}
	body, status, msg := slots.file.fill(r, buf, -1, rt)
	if status == 0 {
		end()
	}
	return body, status, msg
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
