package front

import (
	"io"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// clientListener hands fasthttp its TCP connections as clientConns.
type clientListener struct{ net.Listener }

func (l clientListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		return &clientConn{TCPConn: tc}, err
	}
	return c, err
}

// clientConn is a client's TCP connection as fasthttp reads it, with two
// ways for berth to leave a large request body in the kernel for the
// worker to read itself (see socketBody) while fasthttp's reading of the
// connection stays in step. Embedding keeps every method of the
// connection, writev and sendfile included; only Read is berth's.
//
// Both fields belong to the goroutine serving the connection, which is
// the one reading it.
type clientConn struct {
	*net.TCPConn
	// peek makes Read report nothing rather than read the socket: the
	// handler takes what fasthttp holds of the body, and no more.
	peek bool
	// skip counts bytes a worker took from the socket: Read reports them
	// read without reading (or writing p), and fasthttp moves past them.
	skip int64
}

func (c *clientConn) Read(p []byte) (int, error) {
	switch {
	case c.skip > 0:
		n := int(min(int64(len(p)), c.skip))
		c.skip -= int64(n)
		return n, nil
	case c.peek:
		return 0, nil
	}
	return c.TCPConn.Read(p)
}

// buffered reads from r, a request's body stream, what fasthttp already
// holds of the body (read from the socket with the head), appending it
// to buf. It never reads the socket. eof is set when that was the whole
// body.
func (c *clientConn) buffered(r io.Reader, buf []byte) (b []byte, eof bool, err error) {
	c.peek = true
	defer func() { c.peek = false }()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, true, nil
		case err != nil:
			return buf, false, err
		case n == 0:
			return buf, false, nil
		}
	}
}

// queued waits until n bytes are in the socket's receive queue, and
// reports whether they are. The wait is one wake-up, not one per segment:
// the socket's SO_RCVLOWAT is n meanwhile (for which the kernel grows the
// receive buffer, here with room for its overhead besides). It reports
// false when the kernel woke berth before they all were: it does so when
// the client's window is about to close, as on a connection whose window
// has not grown yet, and a window that waits on berth to read stays
// closed. The caller then reads the body as ever, which opens it. The
// wait ends with the connection's read deadline (body_timeout), with the
// deadline's error.
func (c *clientConn) queued(n int64) (bool, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return false, err
	}
	all, lowat := false, false
	err = raw.Read(func(fd uintptr) bool {
		q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		switch {
		case err != nil:
			return true
		case int64(q) >= n:
			all = true
			return true
		case lowat:
			return true // woken early
		}
		// The kernel sizes the buffer for the mark by the payload it has
		// seen per byte of buffer; bodies' segments then need a few per
		// cent more (a 1 MiB body filled it 7 KiB short of its end).
		// Marked higher first, the buffer grows that much, and the
		// second mark does not shrink it.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, int(n+n/8)) != nil ||
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, int(n)) != nil {
			return true
		}
		lowat = true
		// The kernel holds the mark to half its largest receive buffer
		// (tcp_rmem, or SO_RCVBUF when set): a body past that cannot
		// wait whole in the socket.
		got, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT)
		return err != nil || int64(got) < n
	})
	_ = raw.Control(func(fd uintptr) {
		if lowat {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, 1)
		}
		if err != nil {
			// Out of time (408): what came of the body is dropped, as
			// a read of it would have, so that closing the connection
			// with it unread does not reset it before the client has
			// the answer.
			bp := skipBufs.Get().(*[]byte)
			for left := n; left > 0; {
				k, rerr := unix.Read(int(fd), (*bp)[:min(int64(len(*bp)), left)])
				if k <= 0 || rerr != nil {
					break
				}
				left -= int64(k)
			}
			skipBufs.Put(bp)
		}
	})
	return all, err
}

// skipBufs are what fasthttp "reads" a skipped body into (see
// clientConn.skip): large enough that its reader passes them to Read
// rather than filling its own buffer, and never written.
var skipBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// skipped moves r, a request's body stream, past the n bytes a worker
// read from the socket itself, without reading them again.
func (c *clientConn) skipped(r io.Reader, n int64) error {
	bp := skipBufs.Get().(*[]byte)
	defer skipBufs.Put(bp)
	c.skip = n
	defer func() { c.skip = 0 }()
	for c.skip > 0 {
		if _, err := r.Read(*bp); err != nil && err != io.EOF {
			return err
		} else if err == io.EOF {
			break
		}
	}
	return nil
}
