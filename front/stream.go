package front

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/supervisor"
)

// filePiece bounds one sendfile call, so that write_timeout applies to
// each piece of a large file rather than to the whole of it.
const filePiece = 4 << 20

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
		if p.File != nil {
			err = st.sendFile(w, rf, direct, p)
		} else {
			data := p.Data
			if st.limit >= 0 && int64(len(data)) > st.limit-st.n {
				data = data[:st.limit-st.n]
				st.overrun()
			}
			st.deadline()
			var n int64
			if direct {
				n, err = rf.ReadFrom(bytes.NewReader(data))
			} else {
				var m int
				m, err = w.Write(data)
				n = int64(m)
			}
			st.n += n
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
	for count > 0 {
		piece := min(count, filePiece)
		st.deadline()
		var n int64
		var err error
		if direct {
			n, err = rf.ReadFrom(&io.LimitedReader{R: p.File, N: piece})
		} else {
			n, err = io.CopyN(w, p.File, piece)
		}
		st.n += n
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
	_ = st.conn.SetWriteDeadline(time.Time{})
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
	ctx.Hijack(func(c net.Conn) {
		st.conn = c
		defer st.Close()
		st.deadline()
		if _, err := c.Write(head); err != nil {
			return
		}
		_, _ = st.WriteTo(c)
	})
}
