package front

import (
	"io"
	"slices"

	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/wire"
)

// socketRoute is a body left in the client's TCP socket for the worker
// to read itself (wire.FlagBodySocket): its start, which fasthttp had
// read already, rides in the frame, and the socket's descriptor with it.
// One copy, from the kernel into the app's bytes (worker.py's
// socket_body), where shared memory costs two.
type socketRoute struct {
	mem     []byte      // the body's start; the rest is in sock
	sock    *clientConn // the client's connection
	taken   int64       // sock's consumed count before a worker saw it
	settled bool        // settle ran: fasthttp's reading is in step or the connection ends
	n       int64
}

// socketFrom is the smallest request body left in the client's socket
// for the worker to read itself (wire.FlagBodySocket) rather than copied
// into shared memory and out again. Below it the second copy costs less
// than passing the socket.
const socketFrom = 128 << 10

// socketBody takes what fasthttp holds of a body of cl bytes and waits
// for the rest to be queued in cc's socket. Once it all is, the body is
// slot, the returned start and the socket. When the kernel wakes berth
// early, the bytes there are read and join the start (a few times at
// most: on a connection's first upload, its window grows so). When the
// body cannot wait in the socket, there is no route and start is what
// was read of it (at times all of it): the caller reads the rest as any
// other body.
func socketBody(cc *clientConn, r io.Reader, cl int64, buf []byte, slot *socketRoute) (body bodyRoute, start []byte, status int, msg string) {
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
				return nil, head, 0, ""
			}
			*slot = socketRoute{mem: head, sock: cc, taken: taken, n: cl}
			return slot, head, 0, ""
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
			return nil, head, 0, ""
		}
	}
	if err != nil {
		status, msg = readError(err)
		return nil, nil, status, msg
	}
	return nil, head, 0, ""
}

func (s *socketRoute) kind() bodyKind  { return bodySocket }
func (s *socketRoute) length() int64   { return s.n }
func (s *socketRoute) inFrame() []byte { return s.mem }

func (s *socketRoute) request(enc *wire.RequestEncoder) supervisor.Request {
	return supervisor.Request{Frame: enc.FinishWithSocket(len(s.mem)), Body: s.mem, BodySocket: s.sock.TCPConn}
}

// settle puts fasthttp's reading of the connection back in step once the
// exchange for a body in the socket is over, and reports whether it could.
// The kernel's count of what was taken from the socket says whether a
// worker read the body: all of the rest, and the stream moves past it;
// none (the request was refused before a worker saw it, or the worker
// failed first), and the body is read through the stream and dropped, as
// it would have been read; anything else, and the connection cannot go on
// (what is queued of the body is dropped, so that it closes in order).
func (s *socketRoute) settle(r io.Reader) bool {
	s.settled = true
	rest := s.n - int64(len(s.mem))
	now, err := s.sock.consumed()
	switch {
	case err != nil:
	case now-s.taken == rest:
		return s.sock.skipped(r, rest) == nil
	case now == s.taken:
		_, err := io.CopyN(io.Discard, r, rest)
		return err == nil
	}
	s.sock.drain()
	return false
}

// release drains the socket of a body refused before it went to a worker
// (a bad header): the connection closes with the body unread. The worker
// closes its own descriptor.
func (s *socketRoute) release(bool) {
	if !s.settled {
		s.sock.drain()
	}
	*s = socketRoute{}
}
