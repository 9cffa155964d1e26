package front

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/supervisor"
)

// writeSlice bounds one write (or sendfile) of a streamed body, each
// with a fresh write_timeout: a client must take 256 KiB per write_timeout
// (8.5 KiB/s at the default 30 s), not a whole part or file in one.
const writeSlice = 256 << 10

// errClientGone: the client closed its connection while the app was
// waiting to send more.
var errClientGone = errors.New("the client went away")

// errShort: the app ended its body before the Content-Length it declared.
var errShort = errors.New("the app sent less than its Content-Length")

// stream is a response body that arrives in several frames, or as a file.
// fasthttp asks it to write itself (WriteTo) as the client's socket takes
// it, so a slow reader holds the worker rather than making berth buffer
// the body, and a file goes out with sendfile.
type stream struct {
	s      *Server
	log    *slog.Logger
	ex     *supervisor.Exchange
	conn   net.Conn // for write deadlines
	parts  []supervisor.Part
	limit  int64 // the app's Content-Length, or -1
	n      int64
	rd     bytes.Reader // a slice of Data, for a ReaderFrom
	closed bool
	done   func(n int64) // writes the access record
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

// WriteTo writes the body to w: the writer fasthttp frames the body with
// (fixed length or chunked), or, for a close-delimited body, the
// connection itself. Where w can read from a reader (a fixed-length body
// on TCP), bytes go straight to the socket, and a file goes by sendfile.
// It stops at the app's Content-Length, and fails when the app sends
// less, so the connection closes and the client sees the body is short.
func (st *stream) WriteTo(w io.Writer) (int64, error) {
	rf, direct := w.(io.ReaderFrom)
	for st.limit < 0 || st.n < st.limit {
		p, err := st.next()
		if err == io.EOF {
			if st.limit >= 0 {
				st.log.Error("response cut short: the app sent less than its Content-Length; closing the connection",
					"content_length", st.limit, "sent", st.n, journal.KeyPID, st.ex.PID)
				return st.n, errShort
			}
			return st.n, nil
		}
		if err != nil {
			// The response has started; all that is left is to cut the
			// connection so the client sees it is incomplete.
			st.log.Error("response cut short", "err", err, journal.KeyPID, st.ex.PID)
			return st.n, err
		}
		switch {
		case p.File != nil:
			err = st.sendFile(w, rf, direct, p)
		case len(p.Data) == 0:
			// The app is waiting for something to send. A client that
			// left meanwhile is noticed here rather than at the next
			// write, which may never come.
			if clientGone(st.conn) {
				return st.n, errClientGone
			}
		default:
			data := p.Data
			if st.limit >= 0 && int64(len(data)) > st.limit-st.n {
				data = data[:st.limit-st.n]
				st.overrun()
			}
			err = st.write(w, rf, direct, data)
		}
		if err != nil {
			return st.n, err
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
	return st.n, nil
}

// write writes data in slices, each with a fresh write deadline. Where
// w reads from a reader, the bytes go to the socket at once rather than
// into fasthttp's buffer (which a body cut short would never flush).
func (st *stream) write(w io.Writer, rf io.ReaderFrom, direct bool, data []byte) error {
	for len(data) > 0 {
		slice := data[:min(len(data), writeSlice)]
		st.deadline()
		var n int
		var err error
		if direct {
			st.rd.Reset(slice)
			var m int64
			m, err = rf.ReadFrom(&st.rd)
			n = int(m)
		} else {
			n, err = w.Write(slice)
		}
		st.n += int64(n)
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func (st *stream) overrun() {
	st.log.Warn("the app sent more than its Content-Length; the rest was dropped",
		"content_length", st.limit, journal.KeyPID, st.ex.PID)
}

// sendFile sends a file part: Count bytes from Offset, or to the end of
// the file, bounded by what is left of the Content-Length.
func (st *stream) sendFile(w io.Writer, rf io.ReaderFrom, direct bool, p supervisor.Part) error {
	defer p.File.Close()
	count := p.Count
	if count < 0 {
		fi, err := p.File.Stat()
		if err != nil {
			return fmt.Errorf("file from wsgi.file_wrapper: %w", err)
		}
		count = max(fi.Size()-p.Offset, 0)
	}
	if st.limit >= 0 {
		count = min(count, st.limit-st.n)
	}
	if _, err := p.File.Seek(p.Offset, io.SeekStart); err != nil {
		return fmt.Errorf("file from wsgi.file_wrapper: %w", err)
	}
	var buf []byte // for a writer that cannot sendfile
	if !direct {
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		buf = *bp
	}
	for count > 0 {
		piece := min(count, writeSlice)
		st.deadline()
		var n int64
		var err error
		if direct {
			n, err = rf.ReadFrom(&io.LimitedReader{R: p.File, N: piece})
			st.n += n
		} else {
			var m int
			m, err = io.ReadFull(p.File, buf[:piece])
			n = int64(m)
			if m > 0 {
				if werr := st.write(w, nil, false, buf[:m]); werr != nil {
					return werr
				}
			}
			if err == io.ErrUnexpectedEOF {
				err = nil // the file shrank: caught below
			}
		}
		count -= n
		if err == nil && n < piece {
			err = io.ErrUnexpectedEOF // the file shrank
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// clientGone reports whether c's peer has closed the connection (or
// reset it), by peeking at the socket without taking anything from it:
// bytes of a pipelined request leave it open.
func clientGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || err == unix.ECONNRESET
		return true
	})
	return gone
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
	st.ex.Close()
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
		st.conn = c
		defer st.Close()
		st.deadline()
		if _, err := c.Write(head); err != nil {
			return
		}
		_, _ = st.WriteTo(c)
	})
}
