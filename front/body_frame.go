package front

import (
	"io"

	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/wire"
)

// frameRoute is a body that rides in the frame, right after the environ:
// a Content-Length body under sharedFrom (or any up to buffer_body_bytes
// when no shared memory is at hand, or one from socketFrom that berth
// found read whole while waiting on the client's socket), a chunked one
// up to buffer_body_bytes. The common case, and the cheapest below sharedFrom:
// the requests of a batch share one write, bodies and all.
type frameRoute struct {
	mem []byte // the environ's buffer, a bigBuffer, or fasthttp's body
}

// set makes mem the body, and f the route.
func (f *frameRoute) set(mem []byte) bodyRoute {
	f.mem = mem
	return f
}

// fill reads the rest of a body of cl bytes, whose start head (if any)
// is buf's, into buf, grown to a bigBuffer when it is too small.
func (f *frameRoute) fill(r io.Reader, head, buf []byte, cl int64) (bodyRoute, int, string) {
	if int64(cap(buf)) < cl {
		big := bigBuffer(cl)
		copy(big, head)
		buf = big
	}
	buf = buf[:cl]
	if _, err := io.ReadFull(r, buf[len(head):]); err != nil {
		status, msg := readError(err)
		return nil, status, msg
	}
	return f.set(buf), 0, ""
}

func (f *frameRoute) kind() bodyKind        { return bodyInFrame }
func (f *frameRoute) length() int64         { return int64(len(f.mem)) }
func (f *frameRoute) inFrame() []byte       { return f.mem }
func (f *frameRoute) settle(io.Reader) bool { return true }

func (f *frameRoute) request(enc *wire.RequestEncoder) supervisor.Request {
	return supervisor.Request{Frame: enc.Finish(len(f.mem)), Body: f.mem}
}

// release drops the reference: the buffer is the environ's to keep (or
// to give back to bigBodies, putEnv).
func (f *frameRoute) release(bool) { f.mem = nil }
