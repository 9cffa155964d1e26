package front

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"

	"github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// proxyHeader is the PROXY protocol header (v1 or v2) a load balancer
// sends before a connection's first request: who the client is and which
// address it connected to. On a listener with proxy_protocol it is read
// before fasthttp reads anything (clientConn.Read), and the addresses it
// carries become the connection's RemoteAddr and LocalAddr.
//
// The header is taken from the socket exactly, byte for byte: berth peeks
// at what has come until the header is whole, then reads just that. A
// reader that buffered ahead would take bytes of the request from the
// socket, which the kernel's count of consumed bytes (clientConn.consumed)
// and a body left in the socket for a worker both rely on. The parsing is
// go-proxyproto's.
//
// A connection whose header is missing, malformed or late is closed
// without an answer: what it sent is not HTTP to berth, and the peer is a
// load balancer, not a person.
type proxyHeader struct {
	log      *slog.Logger
	done     bool
	src, dst net.Addr // nil for a LOCAL header: the connection's own
}

// maxProxyHeader bounds a v2 header berth accepts, its TLVs included
// (HAProxy's and the cloud load balancers' headers are well under it). A
// v1 header is at most 107 bytes by the specification.
const (
	maxProxyHeader   = 1 << 12
	maxProxyHeaderV1 = 107
)

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
	// errNoProxyHeader closes a connection on a proxy_protocol listener
	// that did not start with a valid header.
	errNoProxyHeader = errors.New("connection did not start with a PROXY protocol header")
)

// read takes the header from c's socket, waiting for it under c's read
// deadline, once. On failure it closes c and reports io.EOF, which
// fasthttp takes for a client that left before its first request and
// answers nothing.
func (p *proxyHeader) read(c net.Conn) error {
	p.done = true
	if err := p.take(c); err != nil {
		p.log.Debug("closed a connection without a valid PROXY header", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return io.EOF
	}
	return nil
}

// remote is the client's address as the header says, else c's peer.
func (p *proxyHeader) remote(c net.Conn) net.Addr {
	if p.src != nil {
		return p.src
	}
	return c.RemoteAddr()
}

// local is the address the client connected to, else c's own.
func (p *proxyHeader) local(c net.Conn) net.Addr {
	if p.dst != nil {
		return p.dst
	}
	return c.LocalAddr()
}

func (p *proxyHeader) take(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("PROXY protocol: %T has no socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var buf [maxProxyHeader]byte
	n, err := peekHeader(raw, buf[:])
	if err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:n]); err != nil {
		return fmt.Errorf("PROXY protocol: reading the header: %w", err)
	}
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(buf[:n]), n))
	if err != nil {
		return fmt.Errorf("%w: %w", errNoProxyHeader, err)
	}
	if h.Command.IsProxy() {
		p.src, p.dst = h.SourceAddr, h.DestinationAddr
	}
	return nil
}

// peekHeader waits until a whole header is in the socket's queue and
// returns its length, taking nothing from the socket.
func peekHeader(raw syscall.RawConn, buf []byte) (int, error) {
	var n, length int
	var err error
	rerr := raw.Read(func(fd uintptr) bool {
		n, _, err = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			err = nil
			return false
		case err != nil:
			return true
		case n == 0:
			err = fmt.Errorf("%w: the peer closed first", errNoProxyHeader)
			return true
		}
		length, err = headerLength(buf[:n])
		// Wait for more while the header is short of whole and could
		// still fit.
		return err != nil || length > 0 || n == len(buf)
	})
	switch {
	case rerr != nil:
		return 0, rerr
	case err != nil:
		return 0, err
	case length == 0:
		return 0, fmt.Errorf("%w: longer than %d bytes", errNoProxyHeader, len(buf))
	}
	return length, nil
}

// headerLength is the length of the PROXY header b starts with, 0 while
// b is too short to tell, or an error when b cannot start one.
func headerLength(b []byte) (int, error) {
	switch {
	case bytes.HasPrefix(b, sigV2):
		if len(b) < 16 {
			return 0, nil
		}
		length := 16 + int(binary.BigEndian.Uint16(b[14:16]))
		if length > maxProxyHeader {
			return 0, fmt.Errorf("%w: a v2 header of %d bytes (at most %d)", errNoProxyHeader, length, maxProxyHeader)
		}
		if len(b) < length {
			return 0, nil
		}
		return length, nil
	case bytes.HasPrefix(b, sigV1):
		if i := bytes.Index(b[:min(len(b), maxProxyHeaderV1)], []byte("\r\n")); i >= 0 {
			return i + 2, nil
		}
		if len(b) >= maxProxyHeaderV1 {
			return 0, fmt.Errorf("%w: a v1 line longer than %d bytes", errNoProxyHeader, maxProxyHeaderV1)
		}
		return 0, nil
	case bytes.HasPrefix(sigV2, b[:min(len(b), len(sigV2))]), bytes.HasPrefix(sigV1, b[:min(len(b), len(sigV1))]):
		return 0, nil // a signature's beginning
	}
	return 0, errNoProxyHeader
}
