package front

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawConn is c's socket, for the questions berth asks the kernel about a
// client's connection; nil when c has none.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// clientGone reports whether c's peer has closed the connection (or
// reset it), by peeking at the socket without taking anything from it:
// bytes of a pipelined request leave it open.
func clientGone(c net.Conn) bool {
	raw := rawConn(c)
	if raw == nil {
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

// sendsAtOnce reports whether n more bytes fit in c's send buffer now, so
// that writing them will not wait for the client. Only then is a body
// written from the out ring: a held place keeps the lane's later ones
// taken, and a client that does not read would hold it for up to
// write_timeout, sending the lane's bodies through the socket meanwhile.
// The kernel's own count (SO_MEMINFO: the buffer's size, and what its
// queue takes, overhead included), with half the room to spare.
func sendsAtOnce(c net.Conn, n int) bool {
	raw := rawConn(c)
	if raw == nil {
		return false
	}
	fits := false
	_ = raw.Control(func(fd uintptr) {
		m, ok := meminfo(fd)
		if !ok {
			return
		}
		// TCP counts its queue in WMEM_QUEUED, a Unix socket in
		// WMEM_ALLOC.
		used := max(m[skMeminfoWmemQueued], m[skMeminfoWmemAlloc])
		fits = used < m[skMeminfoSndbuf] && uint64(n) <= uint64(m[skMeminfoSndbuf]-used)/2
	})
	return fits
}

// meminfo is the socket's SO_MEMINFO: the kernel's own count of its
// buffers' sizes and use.
func meminfo(fd uintptr) ([skMeminfoVars]uint32, bool) {
	var m [skMeminfoVars]uint32
	size := uint32(unsafe.Sizeof(m))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&m[0])), uintptr(unsafe.Pointer(&size)), 0)
	return m, e == 0
}

// SO_MEMINFO's fields (linux/sock_diag.h).
const (
	skMeminfoRmemAlloc  = 0
	skMeminfoRcvbuf     = 1
	skMeminfoWmemAlloc  = 2
	skMeminfoSndbuf     = 3
	skMeminfoWmemQueued = 5
	skMeminfoVars       = 9
)

// outQueue is how many bytes c's send queue holds (SIOCOUTQ: for TCP, the
// bytes not yet acknowledged by the client), or -1 when unknown.
func outQueue(c net.Conn) int {
	raw := rawConn(c)
	if raw == nil {
		return -1
	}
	q := -1
	_ = raw.Control(func(fd uintptr) {
		if n, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil {
			q = n
		}
	})
	return q
}
