package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// maxFDs is how many descriptors one read can carry. berth and the worker
// send at most one per frame and a read spans a few frames at most; a
// read that brings more is a protocol error (the kernel would have closed
// the rest), reported by TakeFile.
const maxFDs = 16

// FDConn reads from a Unix socket and keeps, in arrival order, the file
// descriptors that ride with the bytes read. A frame that announces a
// descriptor takes the oldest one with TakeFile: descriptors are attached
// to the first byte of their frame, so they arrive no later than the frame
// and in frame order, however reads split or join frames.
//
// Reads and TakeFile belong to one goroutine; Close may come from any.
type FDConn struct {
	*net.UnixConn
	oob []byte

	mu     sync.Mutex
	fds    []int
	trunc  bool
	closed bool
}

// NewFDConn wraps c.
func NewFDConn(c *net.UnixConn) *FDConn {
	return &FDConn{UnixConn: c, oob: make([]byte, syscall.CmsgSpace(4*maxFDs))}
}

// Read reads like c.Read and collects the descriptors that came with it.
func (c *FDConn) Read(p []byte) (int, error) {
	n, oobn, flags, _, err := c.ReadMsgUnix(p, c.oob)
	if oobn > 0 || flags&syscall.MSG_CTRUNC != 0 {
		c.mu.Lock()
		c.collect(c.oob[:oobn])
		c.trunc = c.trunc || flags&syscall.MSG_CTRUNC != 0
		c.mu.Unlock()
	}
	if n < 0 { // ReadMsgUnix passes the syscall's -1 through on errors
		n = 0
	}
	if errors.Is(err, io.EOF) {
		err = io.EOF // as Read reports it, unwrapped
	}
	return n, err
}

func (c *FDConn) collect(oob []byte) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		c.trunc = true
		return
	}
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		if c.closed {
			for _, fd := range fds {
				syscall.Close(fd)
			}
			continue
		}
		c.fds = append(c.fds, fds...)
	}
}

// ErrNoFD is returned by TakeFile when a frame announced a descriptor that
// did not arrive.
var ErrNoFD = errors.New("wire: frame announced a file descriptor that did not arrive")

// TakeFile returns the oldest descriptor received and not yet taken, as a
// file the caller owns.
func (c *FDConn) TakeFile(name string) (*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.fds) == 0 {
		if c.trunc {
			return nil, fmt.Errorf("%w (control message truncated)", ErrNoFD)
		}
		return nil, ErrNoFD
	}
	fd := c.fds[0]
	c.fds = c.fds[1:]
	return os.NewFile(uintptr(fd), name), nil
}

// Close closes the socket and every descriptor received and not taken.
func (c *FDConn) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, fd := range c.fds {
		syscall.Close(fd)
	}
	c.fds = nil
	c.mu.Unlock()
	return c.UnixConn.Close()
}

// WriteWithFile writes b with f's descriptor attached to its first byte.
// f is an *os.File or a connection; its descriptor is reached through
// SyscallConn, not os.File.Fd, which would make a non-blocking socket
// blocking for its every user.
func WriteWithFile(c *net.UnixConn, b []byte, f syscall.Conn) (int, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("descriptor to send: %w", err)
	}
	var n int
	cerr := raw.Control(func(fd uintptr) {
		n, _, err = c.WriteMsgUnix(b, syscall.UnixRights(int(fd)), nil)
	})
	if cerr != nil {
		return 0, fmt.Errorf("descriptor to send: %w", cerr)
	}
	if err != nil || n == len(b) {
		return n, err
	}
	// A stream socket may take part of it; the descriptor went with the
	// first byte.
	m, err := c.Write(b[n:])
	return n + m, err
}

// FileRange is a file frame's payload: where in the file to start and how
// many bytes to send (ToEOF for all that is there).
type FileRange struct {
	Offset, Count uint64
}

// ParseFileRange decodes a file frame's payload.
func ParseFileRange(p []byte) (FileRange, error) {
	if len(p) != 16 {
		return FileRange{}, fmt.Errorf("%w: file frame of %d bytes", ErrBadResponse, len(p))
	}
	return FileRange{binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:])}, nil
}

// AppendCancel appends a cancel frame for request number seq.
func AppendCancel(b []byte, seq uint32) []byte {
	var f [HeaderSize + 4]byte
	PutHeader(f[:], TypeCancel, 0, 4)
	binary.LittleEndian.PutUint32(f[HeaderSize:], seq)
	return append(b, f[:]...)
}
