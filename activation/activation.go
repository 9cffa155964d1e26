// Package activation provides berth's listening sockets.
//
// Under systemd the sockets are created by .socket units and passed in,
// matched to listeners by FileDescriptorName=; without systemd berth binds
// each listener's fallback address itself, so that `berth serve` works the
// same on a laptop or in a container.
package activation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// Spec is a listener as configured: its name and the address to bind
// when systemd did not pass a socket of that name.
type Spec struct {
	Name    string
	Network string // "tcp" or "unix"
	Address string
	// Owner is the mode and ownership of a Unix socket berth binds; TCP
	// sockets and sockets systemd passed ignore it.
	Owner Owner
}

// Socket is one listener's listening socket (or sockets: systemd may pass
// several under one name, say for IPv4 and IPv6), kept open for as long as
// berth uses it.
//
// Servers never get the socket itself: Listener hands each one a listener
// on a duplicate of its file descriptor. A server closing its listener (as
// an HTTP server does when it shuts down) then closes only the duplicate,
// never the socket, so a reload can swap servers on a socket without a
// moment in which connections are refused, and a socket systemd passed is
// never closed, shut down or unlinked.
type Socket struct {
	Name string
	// Spec is what the socket was bound for.
	Spec Spec
	// Passed is true for a socket systemd passed in: berth must never
	// close it, since systemd keeps queueing connections on it while
	// berth restarts.
	Passed bool
	ln     net.Listener // for Addr, and to close a socket berth bound
	files  []*os.File
}

// Addr is where the socket listens, as a string for logs.
func (s *Socket) Addr() string {
	a := s.ln.Addr().String()
	if len(s.files) > 1 {
		a += fmt.Sprintf(" (+%d more)", len(s.files)-1)
	}
	return a
}

// Listener returns a new listener on duplicates of the socket's file
// descriptors; closing it leaves the socket open.
func (s *Socket) Listener() (net.Listener, error) {
	var lns []net.Listener
	for _, f := range s.files {
		ln, err := net.FileListener(f)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("listener %q: duplicating socket: %w", s.Name, err)
		}
		lns = append(lns, ln)
	}
	if len(lns) == 1 {
		return lns[0], nil
	}
	return newMultiListener(lns), nil
}

// Close closes a socket berth bound itself (removing a Unix socket's
// file); a socket systemd passed in is left open.
func (s *Socket) Close() error {
	if s.Passed {
		return nil
	}
	for _, f := range s.files {
		f.Close()
	}
	return s.ln.Close()
}

// Set is the sockets systemd passed in, kept for the life of the process:
// go-systemd's activation reads (and unsets) LISTEN_FDS once, so the files
// are taken once and matched to listeners by name at every (re)load.
type Set struct {
	passed map[string][]*os.File
	order  []string
	used   map[string]bool
	// clients are client connections a previous berth handed over
	// (clients.go), by listener name.
	clients map[string][]*os.File
}

// Inherit takes the sockets systemd passed (LISTEN_FDS, LISTEN_PID,
// LISTEN_FDNAMES) and unsets those variables so that workers do not see
// them. Without systemd the set is empty.
func Inherit() *Set {
	s := &Set{passed: map[string][]*os.File{}, used: map[string]bool{}, clients: map[string][]*os.File{}}
	for _, f := range activation.Files(true) {
		if s.takeClient(f) {
			continue
		}
		if _, ok := s.passed[f.Name()]; !ok {
			s.order = append(s.order, f.Name())
		}
		s.passed[f.Name()] = append(s.passed[f.Name()], f)
	}
	return s
}

// Names lists the names of the passed sockets, in systemd's order.
func (s *Set) Names() []string { return s.order }

// Unused lists passed socket names that no listener has claimed.
func (s *Set) Unused() []string {
	var out []string
	for _, n := range s.order {
		if !s.used[n] {
			out = append(out, n)
		}
	}
	return out
}

// Listen returns one socket per spec, in order: the socket systemd passed
// under the spec's name, or else one bound to its address. On failure it
// closes the sockets it bound and names the listener that failed.
func (s *Set) Listen(specs []Spec) ([]*Socket, error) {
	var out []*Socket
	for _, sp := range specs {
		sock, err := s.listen(sp)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("listener %q: %w", sp.Name, err)
		}
		out = append(out, sock)
	}
	return out, nil
}

func (s *Set) listen(sp Spec) (*Socket, error) {
	files, ok := s.passed[sp.Name]
	if !ok {
		return listen(sp)
	}
	sock := &Socket{Name: sp.Name, Spec: sp, Passed: true, files: files}
	for i, f := range files {
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("socket %q passed by systemd is not a listening stream socket: %w", sp.Name, err)
		}
		if i == 0 {
			sock.ln = ln
		} else {
			ln.Close()
		}
	}
	s.used[sp.Name] = true
	return sock, nil
}

// Listen binds one socket per spec, without systemd.
func Listen(specs []Spec) ([]*Socket, error) {
	return (&Set{}).Listen(specs)
}

func listen(sp Spec) (*Socket, error) {
	ln, err := bind(sp)
	if err != nil {
		return nil, err
	}
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("getting the socket's file: %w", err)
	}
	return &Socket{Name: sp.Name, Spec: sp, ln: ln, files: []*os.File{f}}, nil
}

func bind(sp Spec) (net.Listener, error) {
	switch sp.Network {
	case "tcp":
		ln, err := net.Listen("tcp", sp.Address)
		if err != nil {
			return nil, fmt.Errorf("binding %s: %w", sp.Address, err)
		}
		deferAccept(ln.(*net.TCPListener))
		return ln, nil
	case "unix":
		return bindUnix(sp)
	}
	return nil, fmt.Errorf("unknown network %q", sp.Network)
}

// bindUnix binds a Unix socket with sp.Owner's mode and ownership. A
// user or group that does not resolve fails before anything is bound or
// removed.
func bindUnix(sp Spec) (net.Listener, error) {
	uid, gid, err := sp.Owner.ids()
	if err != nil {
		return nil, err
	}
	if err := removeStale(sp.Address); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: restrict(sp.Owner.Mode)}
	ln, err := lc.Listen(context.Background(), "unix", sp.Address)
	if err != nil {
		return nil, fmt.Errorf("binding %s: %w", sp.Address, err)
	}
	if err := own(sp.Address, sp.Owner, uid, gid); err != nil {
		ln.Close() // removes the file
		return nil, err
	}
	return ln, nil
}

// DeferAccept is how long the kernel holds a new TCP connection on a
// socket berth binds before berth accepts it, unless its first bytes come
// sooner (TCP_DEFER_ACCEPT; rendered socket units say DeferAcceptSec= for
// the same). An HTTP client speaks first, so berth then accepts a
// connection with its request already there, and reads it without a read
// that finds nothing, a wait on the poller and a wake-up per connection
// (a new connection per request: 12-20% more req/s, bench/RESULTS.md;
// keep-alive unchanged). A client that connects and stays silent is
// accepted when the time is up, rounded up to the kernel's SYN-ACK
// retries (7 s), and header_timeout runs from then on. Whole seconds: the
// kernel and DeferAcceptSec= take seconds.
const DeferAccept = 5 * time.Second

// deferAccept sets TCP_DEFER_ACCEPT on ln, best effort: it only saves
// work, berth serves the same without it, and a sandbox that refuses the
// option must not keep berth from serving.
func deferAccept(ln *net.TCPListener) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, int(DeferAccept/time.Second))
	})
}

// removeStale deletes a Unix socket file left behind by a server that is
// gone (nothing accepts on it), and refuses to touch one that is in use or
// is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by another server", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	return nil
}
