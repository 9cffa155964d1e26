// Package activation provides berth's listening sockets.
//
// Under systemd the sockets are created by .socket units and passed in,
// matched to listeners by FileDescriptorName= (a later release); without
// systemd berth binds each listener's fallback address itself, so that
// `berth serve` works the same on a laptop or in a container.
package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// Spec is a listener as configured: its name and the address to bind
// when systemd did not pass a socket of that name.
type Spec struct {
	Name    string
	Network string // "tcp" or "unix"
	Address string
}

// Socket is one listening socket, kept open for as long as berth uses it.
//
// Servers never get the socket itself: Listener hands each one a
// duplicate of its file descriptor. A server closing its listener (as an
// HTTP server does when it shuts down) then closes only the duplicate,
// never the socket, so a reload can swap servers on a socket without a
// moment in which connections are refused.
type Socket struct {
	Name string
	// Spec is what the socket was bound for.
	Spec Spec
	// Passed is true for a socket systemd passed in: berth must never
	// close, shut down or unlink it, since systemd keeps queueing
	// connections on it while berth restarts.
	Passed bool
	ln     net.Listener
	file   *os.File
}

// Addr is where the socket listens, as a string for logs.
func (s *Socket) Addr() string { return s.ln.Addr().String() }

// Listener returns a new listener on a duplicate of the socket's file
// descriptor; closing it leaves the socket open.
func (s *Socket) Listener() (net.Listener, error) {
	ln, err := net.FileListener(s.file)
	if err != nil {
		return nil, fmt.Errorf("listener %q: duplicating socket: %w", s.Name, err)
	}
	return ln, nil
}

// Close closes a socket berth bound itself (removing a Unix socket's
// file); a socket systemd passed in is left open.
func (s *Socket) Close() error {
	if s.Passed {
		return nil
	}
	s.file.Close()
	return s.ln.Close()
}

// Listen returns one socket per spec, in order. On failure it closes the
// sockets it already bound and names the listener that failed.
func Listen(specs []Spec) ([]*Socket, error) {
	var out []*Socket
	for _, sp := range specs {
		s, err := listen(sp)
		if err != nil {
			for _, s := range out {
				s.Close()
			}
			return nil, fmt.Errorf("listener %q: %w", sp.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
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
	return &Socket{Name: sp.Name, Spec: sp, ln: ln, file: f}, nil
}

func bind(sp Spec) (net.Listener, error) {
	switch sp.Network {
	case "tcp":
		ln, err := net.Listen("tcp", sp.Address)
		if err != nil {
			return nil, fmt.Errorf("binding %s: %w", sp.Address, err)
		}
		return ln, nil
	case "unix":
		if err := removeStale(sp.Address); err != nil {
			return nil, err
		}
		ln, err := net.Listen("unix", sp.Address)
		if err != nil {
			return nil, fmt.Errorf("binding %s: %w", sp.Address, err)
		}
		return ln, nil
	}
	return nil, fmt.Errorf("unknown network %q", sp.Network)
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
