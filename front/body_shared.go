package front

import (
	"io"

	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/wire"
)

// sharedRoute is a body in shared memory: a Content-Length body from
// sharedFrom up to buffer_body_bytes that is not left in the client's
// socket, read from the client straight into a memfd of the app's
// sharedPool (shared.go), whose descriptor rides with the frame
// (wire.FlagBodyShared). The worker copies it out before the app starts.
type sharedRoute struct {
	buf *sharedBody
	n   int64
}

// fill reads a body of cl bytes, whose start head (if any) is read
// already, into sb.
func (s *sharedRoute) fill(sb *sharedBody, r io.Reader, head []byte, cl int64) (bodyRoute, int, string) {
	copy(sb.mem, head)
	if _, err := io.ReadFull(r, sb.mem[len(head):cl]); err != nil {
		sb.put() // no worker has seen it
		status, msg := readError(err)
		return nil, status, msg
	}
	s.buf, s.n = sb, cl
	return s, 0, ""
}

func (s *sharedRoute) kind() bodyKind        { return bodyShared }
func (s *sharedRoute) length() int64         { return s.n }
func (s *sharedRoute) inFrame() []byte       { return nil }
func (s *sharedRoute) settle(io.Reader) bool { return true }

func (s *sharedRoute) request(enc *wire.RequestEncoder) supervisor.Request {
	return supervisor.Request{Frame: enc.FinishWithShared(), BodyFile: s.buf.file}
}

// release gives the buffer back to the pool once the worker has read it,
// else destroys it: a worker that did not answer (it died, or timed out
// and is being killed) may not have read it yet, and its memory must
// never hold another's body while it might.
func (s *sharedRoute) release(read bool) {
	if read {
		s.buf.put()
	} else {
		s.buf.destroy()
	}
	s.buf = nil
}
