package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/berthd/berth/wire"
)

// Exchange is a worker's answer to one request. Head is valid until Close.
// When the response is longer than one frame, Next returns the rest of the
// body.
type Exchange struct {
	Head wire.Head
	// PID is the worker that answered.
	PID int
	// Invalid is set when the app's status or headers cannot be sent as
	// HTTP; the client gets a 500 instead.
	Invalid error
	proc    *process
	lane    lane
	more    bool
	broken  bool
	release chan struct{}
}

// More reports whether body frames follow the head.
func (e *Exchange) More() bool { return e.more }

// Next returns the next part of the body, valid until the next call, and
// io.EOF after the last. ErrAborted means the app failed mid-response.
func (e *Exchange) Next() ([]byte, error) {
	for e.more {
		f, err := e.lane.r.Next()
		if err != nil {
			e.more, e.broken = false, true
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, ErrTimeout
			}
			return nil, fmt.Errorf("%w: %v", ErrWorkerDied, err)
		}
		switch f.Type {
		case wire.TypeBody:
			e.more = f.Flags&wire.FlagMore != 0
			if len(f.Payload) == 0 {
				continue
			}
			return f.Payload, nil
		case wire.TypeAbort:
			e.more = false
			return nil, fmt.Errorf("%w: %s", ErrAborted, f.Payload)
		default:
			e.more, e.broken = false, true
			return nil, fmt.Errorf("%w: unexpected %s frame in a response body", ErrWorkerDied, f.Type)
		}
	}
	return nil, io.EOF
}

// drainBudget is how long Close reads and drops the rest of a body whose
// client went away before it gives up and has the worker replaced: an app
// streaming without end must not hold a worker until its timeout.
const drainBudget = time.Second

// Close releases the worker. A body not read to its end (its client went
// away) is read and dropped first, so that the worker's socket is in step
// for the next request; if the app does not finish within drainBudget,
// the worker is killed and replaced instead.
func (e *Exchange) Close() {
	if e.more {
		_ = e.lane.conn.SetReadDeadline(time.Now().Add(drainBudget))
		for e.more {
			if _, err := e.Next(); err != nil {
				break
			}
		}
		if e.broken {
			e.proc.log.Warn("response abandoned mid-body and the app did not finish it; replacing the worker")
		}
	}
	close(e.release)
}
