package front

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/supervisor"
)

// errClientGone: the client closed its connection while the app was
// waiting to send more.
var errClientGone = errors.New("the client went away")

// errShort: the app ended its body before the Content-Length it declared.
var errShort = errors.New("the app sent less than its Content-Length")

// stream is a response body that arrives in several frames, or as a file.
// fasthttp asks it to write itself (WriteTo) once the head is out, and it
// writes straight to the client's socket as the socket takes it; what a
// slow reader does not take at once waits in the stream's spool, so that
// the worker goes on to its next request (up to the app's
// max_buffered_response; past it the worker waits for the client). A
// file goes out with sendfile, the worker released first.
//
// write_timeout is the longest a write may make no progress (as nginx's
// send_timeout): a client reading slowly but steadily gets the whole body,
// however big; one that stops reading is cut off after write_timeout.
type stream struct {
	s       *Server
	log     *slog.Logger
	ex      *supervisor.Exchange
	conn    net.Conn // the client's, written to directly
	parts   []supervisor.Part
	limit   int64 // the app's Content-Length, or -1
	chunked bool  // frame the body in chunks (HTTP/1.1, no length)
	n       int64
	bufs    net.Buffers // a chunk's pieces, consumed as written
	vec     [3][]byte   // bufs' array
	size    [20]byte    // a chunk's size line
	closed  bool
	done    func(n int64) // writes the access record
	// spool keeps what the client has not taken yet, up to maxSpool
	// bytes (0: nothing is kept); released is set once the worker is.
	spool    spool
	maxSpool int64
	released bool
}

// next returns the next part of the body: the head frame's bytes and a
// part peeked at by the handler first, then the worker's frames.
func (st *stream) next() (supervisor.Part, error) {
	for len(st.parts) > 0 {
		p := st.parts[0]
		st.parts = st.parts[1:]
		if len(p.Data) > 0 || p.File != nil {
			return p, nil
		}
	}
	return st.ex.Next()
}

// SupportsBodyWriteTo tells fasthttp to use WriteTo.
func (st *stream) SupportsBodyWriteTo() bool { return true }

// WriteTo writes the body to the client's socket. It is called with the
// head flushed (ImmediateHeaderFlush), so the socket is in step; the
// writer fasthttp passes is not used: berth frames chunks itself, and
// fasthttp adds the last chunk after. It stops at the app's
// Content-Length, and fails when the app sends less, so the connection
// closes and the client sees the body is short.
func (st *stream) WriteTo(io.Writer) (int64, error) {
	err := st.take()
	if err == nil {
		// The worker's whole answer is taken: it goes on to its next
		// request while the client takes the rest from the spool.
		st.release()
		err = st.spool.flush(st)
	}
	return st.n, err
}

// take reads the body from the worker and writes it (or spools it) to
// the client, up to its end or the app's Content-Length.
func (st *stream) take() error {
	for st.limit < 0 || st.n < st.limit {
		p, err := st.next()
		if err == io.EOF {
			if st.limit >= 0 {
				st.log.Error("response cut short: the app sent less than its Content-Length; closing the connection",
					"content_length", st.limit, "sent", st.n, journal.KeyPID, st.ex.PID)
				return errShort
			}
			return nil
		}
		if err != nil {
			// The response has started; all that is left is to cut the
			// connection so the client sees it is incomplete.
			st.log.Error("response cut short", "err", err, journal.KeyPID, st.ex.PID)
			return err
		}
		switch {
		case p.File != nil:
			if !st.ex.More() {
				st.release() // the file is berth's to send
			}
			err = st.sendFile(p)
		case len(p.Data) == 0:
			// The app is waiting for something to send. A client that
			// left meanwhile is noticed here rather than at the next
			// write, which may never come.
			if clientGone(st.conn) {
				return errClientGone
			}
		default:
			data := p.Data
			if st.limit >= 0 && int64(len(data)) > st.limit-st.n {
				data = data[:st.limit-st.n]
				st.overrun()
			}
			err = st.write(data)
		}
		if err != nil {
			return err
		}
	}
	// At the Content-Length: the app should be done. If it is not, the
	// rest is dropped and Close cancels it.
	if st.ex.More() {
		if p, err := st.ex.Next(); err == nil {
			if p.File != nil {
				p.File.Close()
			}
			st.overrun()
		}
	}
	return nil
}

// release frees the worker, once.
func (st *stream) release() {
	if !st.released {
		st.released = true
		st.ex.Close()
	}
}

// write sends data, as one chunk when the body is chunked (one writev
// with its framing): what the socket does not take at once goes to the
// spool while it has room, else it is written at the client's pace.
func (st *stream) write(data []byte) error {
	var head []byte
	if st.chunked {
		head = chunkSize(st.size[:0], int64(len(data)))
		st.vec = [3][]byte{head, data, crlf}
		st.bufs = st.vec[:]
	} else {
		st.vec = [3][]byte{data}
		st.bufs = st.vec[:1]
	}
	total := int64(len(head) + len(data))
	if st.chunked {
		total += int64(len(crlf))
	}
	var err error
	if st.spool.size()+total <= st.maxSpool {
		var n int64
		if n, err = st.spool.offer(st.conn, st.bufs); err == nil && n < total {
			err = st.spool.add(st.bufs, n)
		}
	} else if err = st.spool.flush(st); err == nil {
		err = progress(st, func() (int64, error) { return st.bufs.WriteTo(st.conn) })
	}
	st.vec = [3][]byte{} // no reference to the worker's frame
	st.n += int64(len(data))
	return err
}

var crlf = []byte("\r\n")

// chunkSize appends the line that starts a chunk of n bytes.
func chunkSize(b []byte, n int64) []byte {
	b = strconv.AppendInt(b, n, 16)
	return append(b, '\r', '\n')
}

// progress runs write until it is done, giving each attempt
// write_timeout: a write that timed out having sent something is tried
// again, and so is one while the client took bytes from the socket's
// queue (a large queue drains for a while before the kernel takes more:
// a client reading steadily is making progress); one that saw neither in
// write_timeout fails.
func progress(st *stream, write func() (int64, error)) error {
	for {
		st.deadline()
		queued := outQueue(st.conn)
		n, err := write()
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		if now := outQueue(st.conn); n == 0 && (queued < 0 || now >= queued) {
			return err
		}
	}
}

func (st *stream) overrun() {
	st.log.Warn("the app sent more than its Content-Length; the rest was dropped",
		"content_length", st.limit, journal.KeyPID, st.ex.PID)
}

// raw writes framing bytes (not counted as body).
func (st *stream) raw(b []byte) error {
	return progress(st, func() (int64, error) {
		n, err := st.conn.Write(b)
		b = b[n:]
		return int64(n), err
	})
}

// deadline gives the next write write_timeout: a client that stops
// reading must not hold the worker for ever.
func (st *stream) deadline() {
	_ = st.conn.SetWriteDeadline(time.Now().Add(st.s.listener.WriteTimeout))
}

// Read exists because fasthttp takes a body stream as an io.Reader; it
// always writes this one with WriteTo (SupportsBodyWriteTo), which alone
// knows how to send a file part and where the Content-Length ends.
func (st *stream) Read([]byte) (int, error) {
	return 0, errors.New("berth: a response stream is written with WriteTo, not read")
}

// Close releases the worker (cancelling the rest of the body, when there
// is any); fasthttp calls it when the response is done or abandoned.
func (st *stream) Close() error {
	if st.closed {
		return nil
	}
	st.closed = true
	// fasthttp flushes what is buffered after Close (a chunked body's
	// end): that write gets write_timeout too. The next response on the
	// connection gets its own deadline from fasthttp (WriteTimeout).
	st.deadline()
	for _, p := range st.parts {
		if p.File != nil {
			p.File.Close()
		}
	}
	st.parts = nil
	st.release()
	st.spool.release()
	st.done(st.n)
	return nil
}

// closeDelimited sends a response whose length is unknown to an HTTP/1.0
// client, which cannot read chunks: the body ends when the connection
// does (RFC 9112 section 6.3). berth takes the connection over from
// fasthttp, writes the head and the body, and closes it.
func (s *Server) closeDelimited(ctx *fasthttp.RequestCtx, st *stream) {
	ctx.SetConnectionClose()
	ctx.Response.Header.SetContentLength(-2) // neither Content-Length nor chunked
	head := append([]byte(nil), ctx.Response.Header.Header()...)
	ctx.HijackSetNoResponse(true)
	// fasthttp hands the connection over only after flushing what it
	// holds for it; if that fails, the callback never runs. Then the
	// worker is released here, once the flush has had write_timeout.
	var taken atomic.Bool
	fallback := time.AfterFunc(s.listener.WriteTimeout+5*time.Second, func() {
		if taken.CompareAndSwap(false, true) {
			st.Close()
		}
	})
	ctx.Hijack(func(c net.Conn) {
		fallback.Stop()
		if !taken.CompareAndSwap(false, true) {
			return
		}
		// Written to the socket itself, as ever (c may be a wrapper
		// that reads what fasthttp had buffered).
		defer st.Close()
		if err := st.raw(head); err != nil {
			return
		}
		_, _ = st.WriteTo(nil)
	})
}
