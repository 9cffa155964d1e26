package supervisor

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/wire"
)

// Exchange is a worker's answer to one request. Head is valid until Close:
// its Body may be in memory the worker writes the next answers into once
// the exchange is closed (the out ring), unless Hold keeps it.
// When the response is longer than one frame, Next returns the rest of the
// body.
type Exchange struct {
	Head wire.Head
	// PID is the worker that answered.
	PID int
	// QueueWait is how long the request waited for an idle worker (0 when
	// one was idle at once).
	QueueWait time.Duration
	// Invalid is set when the app's status or headers cannot be sent as
	// HTTP; the client gets a 500 instead.
	Invalid error
	proc    *process
	lane    *lane
	seq     uint32        // the request's number on its lane
	timeout time.Duration // the app's timeout, for each part of the body
	drainBy time.Time     // set once cancelled: the worker must end by then
	more    bool
	broken  bool
	outBody bool          // Head.Body is in the worker's out ring,
	outEnd  uint32        // up to here
	release chan struct{} // to the slot's goroutine, which sent the request
	slot    *slot         // or, for a request served directly, its slot
}

// Part is the next piece of a response body: bytes, or a file for the
// caller to send (sendfile) and then close, Count bytes from Offset
// (Count < 0: to the end of the file).
type Part struct {
	Data   []byte
	File   *os.File
	Offset int64
	Count  int64
}

// More reports whether body frames follow the head.
func (e *Exchange) More() bool { return e.more }

// Next returns the next part of the body, its Data valid until the next
// call, and io.EOF after the last. An empty part means the app is at work
// but had nothing to send (it yielded empty chunks): the caller may check
// that its client is still there. ErrAborted means the app failed
// mid-response, ErrTimeout that it produced no part within its timeout.
// The timeout applies to each part, not to the whole body: a long stream
// is fine as long as it moves.
func (e *Exchange) Next() (Part, error) {
	for e.more {
		deadline := time.Now().Add(e.timeout)
		if !e.drainBy.IsZero() && e.drainBy.Before(deadline) {
			deadline = e.drainBy
		}
		_ = e.lane.conn.SetReadDeadline(deadline)
		f, err := e.lane.r.Next()
		if err != nil {
			e.more, e.broken = false, true
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// The worker is killed when the exchange closes.
				e.proc.setCause(metrics.CauseTimeout)
				e.proc.m.Timeout()
				return Part{}, ErrTimeout
			}
			return Part{}, fmt.Errorf("%w: %v", ErrWorkerDied, err)
		}
		switch f.Type {
		case wire.TypeBody:
			e.more = f.Flags&wire.FlagMore != 0
			if len(f.Payload) == 0 && !e.more {
				continue // the end
			}
			return Part{Data: f.Payload}, nil
		case wire.TypeFile:
			e.more = f.Flags&wire.FlagMore != 0
			r, err := wire.ParseFileRange(f.Payload)
			if err == nil && r.Offset > math.MaxInt64 {
				err = fmt.Errorf("%w: file offset %d", wire.ErrBadResponse, r.Offset)
			}
			var file *os.File
			if err == nil {
				file, err = e.lane.conn.TakeFile("wsgi.file_wrapper")
			}
			if err != nil {
				e.more, e.broken = false, true
				return Part{}, fmt.Errorf("%w: %v", ErrWorkerDied, err)
			}
			count := int64(-1)
			if r.Count != wire.ToEOF && r.Count <= math.MaxInt64 {
				count = int64(r.Count)
			}
			return Part{File: file, Offset: int64(r.Offset), Count: count}, nil
		case wire.TypeAbort:
			e.more = false
			return Part{}, fmt.Errorf("%w: %s", ErrAborted, f.Payload)
		default:
			e.more, e.broken = false, true
			return Part{}, fmt.Errorf("%w: unexpected %s frame in a response body", ErrWorkerDied, f.Type)
		}
	}
	return Part{}, io.EOF
}

// InRing reports whether Head.Body is in the worker's out ring (and so may
// be held past Close, see Hold).
func (e *Exchange) InRing() bool { return e.outBody }

// Hold keeps a head's body that is in the worker's out ring valid past
// Close, until the returned closer is closed: the caller can then release
// the worker at once and have the body written to its client straight
// from the ring, without copying it first. Only while the body is held do
// the ring's later places stay taken, so the caller closes it as soon as
// the body is written. It returns nil when the body is not in the ring
// (InRing).
func (e *Exchange) Hold() io.Closer {
	if !e.outBody {
		return nil
	}
	e.outBody = false
	return &heldBody{out: e.proc.out, index: e.lane.index, end: e.outEnd}
}

// heldBody is a body of the out ring held past its exchange (Hold).
type heldBody struct {
	out   *outRegion
	index int
	end   uint32
	once  sync.Once
}

// Close gives the body's place back to the worker; later calls do
// nothing.
func (h *heldBody) Close() error {
	h.once.Do(func() { h.out.done(h.index, h.end) })
	return nil
}

// Close releases the worker. When the body was not read to its end (the
// client went away, or berth stopped at the app's Content-Length), the
// worker is sent a cancel frame: it stops iterating, calls the iterable's
// close() and ends the response, whose rest berth reads and drops so the
// socket is in step for the next request. A worker that does not end the
// response within the app's timeout is killed and replaced.
func (e *Exchange) Close() {
	if e.more {
		e.drainBy = time.Now().Add(e.timeout)
		_ = e.lane.conn.SetWriteDeadline(e.drainBy)
		if _, err := e.lane.conn.UnixConn.Write(wire.AppendCancel(nil, e.seq)); err != nil {
			e.more, e.broken = false, true
		}
		for e.more {
			p, err := e.Next()
			if p.File != nil {
				p.File.Close()
			}
			if err != nil {
				break
			}
		}
		if e.broken {
			e.proc.log.Warn("response abandoned mid-body and the app did not end it after a cancel within its timeout; replacing the worker", "timeout", e.timeout)
		}
	}
	if e.outBody {
		e.outBody = false
		e.Head.Body = nil
		e.proc.out.done(e.lane.index, e.outEnd)
	}
	if e.slot != nil {
		e.slot.finishDirect(e)
		return
	}
	close(e.release)
}
