package front

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// unixConn is a client's connection on a Unix socket: a reverse proxy on
// the same host, most often; with proxy_protocol, HAProxy.
type unixConn struct {
	*net.UnixConn
	proxy  *proxyHeader // as clientConn's
	linger bool         // as clientConn's
	closed func()       // as clientConn's
	ho     *handover    // as clientConn's
}

func (c *unixConn) Close() error {
	c.ho.closing()
	if c.closed != nil {
		c.closed()
	}
	if c.linger {
		linger(c.UnixConn)
	}
	return c.UnixConn.Close()
}

// Lingering close (nginx's lingering_close): a request refused while its
// client may still be sending (a 413 for a declared body past the limit,
// a 400) is answered, then berth shuts its side and reads and drops what
// still comes, until the client closes, pauses for lingerWait, or
// lingerTotal has passed (nginx's lingering_timeout and lingering_time). Closing at once with bytes unread
// makes the kernel send a reset, which destroys the answer before the
// client reads it (curl: 2 uploads in 6 saw "connection reset" instead
// of the 413).
const (
	lingerWait  = 2 * time.Second
	lingerTotal = 10 * time.Second
)

// halfCloser is a connection whose writing side can be shut alone.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// linger shuts c's writing side and drains c (see lingerWait).
func linger(c halfCloser) {
	if c.CloseWrite() != nil {
		return
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	end := time.Now().Add(lingerTotal)
	for {
		wait := time.Now().Add(lingerWait)
		if wait.After(end) {
			wait = end
		}
		_ = c.SetReadDeadline(wait)
		if _, err := c.Read(*bp); err != nil {
			return
		}
	}
}

// setLinger has c linger when it closes.
func setLinger(c net.Conn) {
	switch c := c.(type) {
	case *clientConn:
		c.linger = true
	case *unixConn:
		c.linger = true
	}
}

func (c *unixConn) Read(p []byte) (int, error) {
	if c.proxy != nil && !c.proxy.done {
		if err := c.proxy.read(c.UnixConn); err != nil {
			return 0, err
		}
	}
	if !c.ho.beginRead() {
		return 0, net.ErrClosed
	}
	n, err := c.UnixConn.Read(p)
	c.ho.endRead(n)
	return n, err
}

func (c *unixConn) RemoteAddr() net.Addr {
	if c.proxy == nil {
		return c.UnixConn.RemoteAddr()
	}
	return c.proxy.remote(c.UnixConn)
}

func (c *unixConn) LocalAddr() net.Addr {
	if c.proxy == nil {
		return c.UnixConn.LocalAddr()
	}
	return c.proxy.local(c.UnixConn)
}

// clientConn is a client's TCP connection as fasthttp reads it, with two
// ways for berth to leave a large request body in the kernel for the
// worker to read itself (see socketBody) while fasthttp's reading of the
// connection stays in step. Embedding keeps every method of the
// connection, sendfile and net.Buffers' writev included; only reading and
// its deadline are berth's. (fasthttp itself writes a response larger than
// its write buffer with one writev only to a *net.TCPConn; see
// writeBufferSize.)
//
// The fields belong to the goroutine serving the connection, the one
// reading it.
type clientConn struct {
	*net.TCPConn
	// peek makes Read report nothing rather than read the socket: the
	// handler takes what fasthttp holds of the body, and no more.
	peek bool
	// skip counts bytes a worker took from the socket: Read reports them
	// read without reading (or writing p), and fasthttp moves past them.
	skip int64
	// deadline is the read deadline fasthttp set last (body_timeout for a
	// body), which a wait in slices (queued) puts back.
	deadline time.Time
	// proxy is the connection's PROXY header on a proxy_protocol
	// listener, read before anything else; nil elsewhere.
	proxy *proxyHeader
	// linger: a request was refused while the client may still be
	// sending; Close lingers (see linger).
	linger bool
	// closed tells the listener the connection is gone (its counts);
	// it runs once, whoever closes first.
	closed func()
	// ho is shared with a stop that may hand the connection over to the
	// next berth (handover.go), under its own lock; nil when none will.
	ho *handover
}

func (c *clientConn) Close() error {
	// A hand-over deciding on the connection stores it first.
	c.ho.closing()
	if c.closed != nil {
		c.closed()
	}
	if c.linger {
		linger(c.TCPConn)
	}
	return c.TCPConn.Close()
}

func (c *clientConn) Read(p []byte) (int, error) {
	if c.proxy != nil && !c.proxy.done {
		if err := c.proxy.read(c.TCPConn); err != nil {
			return 0, err
		}
	}
	switch {
	case c.skip > 0:
		n := int(min(int64(len(p)), c.skip))
		c.skip -= int64(n)
		return n, nil
	case c.peek:
		return 0, nil
	}
	if !c.ho.beginRead() {
		return 0, net.ErrClosed
	}
	n, err := c.TCPConn.Read(p)
	c.ho.endRead(n)
	return n, err
}

// RemoteAddr is the client's address: the PROXY header's, if any.
func (c *clientConn) RemoteAddr() net.Addr {
	if c.proxy == nil {
		return c.TCPConn.RemoteAddr()
	}
	return c.proxy.remote(c.TCPConn)
}

// LocalAddr is where the client connected: the PROXY header's, if any.
func (c *clientConn) LocalAddr() net.Addr {
	if c.proxy == nil {
		return c.TCPConn.LocalAddr()
	}
	return c.proxy.local(c.TCPConn)
}

func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return c.TCPConn.SetReadDeadline(t)
}

func (c *clientConn) SetDeadline(t time.Time) error {
	c.deadline = t
	return c.TCPConn.SetDeadline(t)
}

// buffered reads from r, a request's body stream, what fasthttp already
// holds of the body (read from the socket with the head), appending it
// to buf. It never reads the socket.
func (c *clientConn) buffered(r io.Reader, buf []byte) ([]byte, error) {
	c.peek = true
	defer func() { c.peek = false }()
	for {
		before := len(buf)
		var err error
		buf, err = readMore(r, buf)
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return buf, err
		case len(buf) == before:
			return buf, nil
		}
	}
}

// consumed is how many bytes have ever been taken from the socket, by
// berth or a worker: the kernel's count of bytes received, less those
// still queued. Around an exchange it says whether the worker read the
// body from the socket, whatever the worker says. The two counts come
// from two calls; a count taken while bytes arrived between them (the
// received count moved) is taken again.
func (c *clientConn) consumed() (int64, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	n := int64(-1)
	cerr := raw.Control(func(fd uintptr) {
		for range 8 {
			var before, after *unix.TCPInfo
			var q int
			if before, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err != nil {
				return
			}
			if q, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ); err != nil {
				return
			}
			if after, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err != nil {
				return
			}
			if before.Bytes_received == after.Bytes_received {
				n = int64(after.Bytes_received) - int64(q)
				return
			}
		}
	})
	if err = errors.Join(cerr, err); err == nil && n < 0 {
		err = errors.New("the client's bytes kept arriving while berth counted them")
	}
	return n, err
}

// queueSlice is the longest a wait for a body in the socket goes on with
// no new byte of it (see queued).
const queueSlice = 100 * time.Millisecond

// queue says how a wait for a body in the socket ended (queued).
type queue int

const (
	queueAll   queue = iota // it is all there
	queueEarly              // the kernel woke berth before it was; a read of what is there opens the window
	queueNo                 // it cannot wait whole in the socket: read it as ever
)

// queued waits until n bytes are in the socket's receive queue. The
// socket's SO_RCVLOWAT is n meanwhile, so that the kernel wakes berth
// once, not per segment, and grows the receive buffer to hold them (here
// with room to spare: see setLowat).
//
// The kernel also wakes the reader early: when the window it offers the
// client is about to close, as on a connection whose window has not grown
// yet (its first upload), and when the buffer is nearly full. A closing
// window opens again once the bytes there are read, which the caller does
// (queueEarly, with how many are there); a full buffer means reading the
// body. And whatever a kernel does or fails to do, a wait that sees no new
// byte for queueSlice ends too (queueNo): berth never waits on a client
// that cannot send, and one that pauses has its body read as it comes.
// The whole wait ends with the read deadline (body_timeout), with its
// error, after dropping what came (408).
func (c *clientConn) queued(n int64) (queue, int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return queueNo, 0, err
	}
	deadline := c.deadline
	state, lowat, done := queueNo, false, false
	seen := 0 // bytes queued at the last look
	_ = raw.Control(func(fd uintptr) {
		if q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			seen = q
		}
	})
	for !done {
		from := seen
		slice := time.Now().Add(queueSlice)
		if !deadline.IsZero() && deadline.Before(slice) {
			slice = deadline
		}
		if err = c.TCPConn.SetReadDeadline(slice); err != nil {
			break
		}
		woken := false // the first call is before any wait
		err = raw.Read(func(fd uintptr) bool {
			q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			if err != nil {
				done = true
				return true
			}
			seen = max(seen, q)
			switch {
			case int64(q) >= n:
				state, done = queueAll, true
			case !lowat:
				lowat = setLowat(int(fd), n)
				done = !lowat
			case !woken:
			case nearlyFull(int(fd)):
				done = true
			default:
				state, done = queueEarly, true
			}
			woken = true
			return done
		})
		if !errors.Is(err, os.ErrDeadlineExceeded) || !deadline.IsZero() && !time.Now().Before(deadline) {
			break // done, or a failure, or out of time
		}
		// The end of a slice: on while bytes come.
		err = nil
		_ = raw.Control(func(fd uintptr) {
			if q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
				seen = max(seen, q)
			}
		})
		done = seen <= from
	}
	_ = c.TCPConn.SetReadDeadline(deadline)
	if lowat {
		_ = raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, 1)
		})
	}
	if err != nil {
		// Out of time (408): what came of the body is dropped, as a read
		// of it would have, so that closing the connection with it
		// unread does not reset it before the client has the answer.
		c.drain()
		return queueNo, 0, err
	}
	return state, max(seen, 0), nil
}

// setLowat sets the socket's SO_RCVLOWAT to n and reports whether the
// kernel took it whole. The kernel sizes the receive buffer for a mark by
// the payload it has seen per byte of buffer; bodies' segments then need
// a few per cent more (a 1 MiB body filled it 7 KiB short of its end),
// and the kernel calls a buffer within an eighth of full pressed (a wake,
// and see nearlyFull). Marked half as high again first, the buffer grows
// that much (a limit, not memory taken), and the second mark does not
// shrink it. The kernel holds a mark to half its largest receive
// buffer (tcp_rmem, or SO_RCVBUF when set): a body past that cannot wait
// whole in the socket, and the mark is then not left set.
func setLowat(fd int, n int64) bool {
	// Urgent data kept in line, so that the kernel's queued count
	// (SIOCINQ), which otherwise stops at an urgent byte, counts what is
	// there for the worker, and consumed stays true (HTTP has no use
	// for urgent data).
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_OOBINLINE, 1) != nil {
		return false
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVLOWAT, int(n+n/2)) != nil {
		return false
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVLOWAT, int(n)) == nil {
		if got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVLOWAT); err == nil && int64(got) >= n {
			return true
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVLOWAT, 1)
	return false
}

// nearlyFull reports whether the socket's receive buffer is within an
// eighth of full (the kernel's own test of memory pressure): no window
// update lets more in then.
func nearlyFull(fd int) bool {
	m, ok := meminfo(uintptr(fd))
	if !ok {
		return true
	}
	return m[skMeminfoRmemAlloc] >= m[skMeminfoRcvbuf]-m[skMeminfoRcvbuf]/8
}

// drain drops what is queued on the socket now, without waiting: a
// connection about to close with a body unread (408, a refusal, or out of
// step after a worker failed) then ends in an orderly close, not a reset
// that may reach the client before its answer.
func (c *clientConn) drain() {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	bp := skipBufs.Get().(*[]byte)
	defer skipBufs.Put(bp)
	_ = raw.Control(func(fd uintptr) {
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		for err == nil && n > 0 {
			var k int
			k, err = unix.Read(int(fd), (*bp)[:min(len(*bp), n)])
			if k <= 0 {
				return
			}
			n -= k
		}
	})
}

// skipBufs are what fasthttp "reads" a skipped body into (see
// clientConn.skip): large enough that its reader passes them to Read
// rather than filling its own buffer. What lands in them (drain's bytes,
// or the stale ones of a reader's buffer) is never looked at.
var skipBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// errOutOfStep: the body stream ended before the bytes a worker took.
var errOutOfStep = errors.New("the request body stream ended before the bytes the worker read")

// skipped moves r, a request's body stream, past the n bytes a worker
// read from the socket itself, without reading them again.
func (c *clientConn) skipped(r io.Reader, n int64) error {
	bp := skipBufs.Get().(*[]byte)
	defer skipBufs.Put(bp)
	c.skip = n
	defer func() { c.skip = 0 }()
	for c.skip > 0 {
		_, err := r.Read(*bp)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if c.skip > 0 {
		return errOutOfStep
	}
	return nil
}
