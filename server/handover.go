package server

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/front"
	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
)

// Restarts that drop nothing: a stopping berth stores its idle keep-alive
// connections in systemd's file descriptor store (FDSTORE=1, under
// activation.ClientPrefix + the listener's name), and the next berth,
// which systemd passes them to with the listening sockets, serves them
// from where they were. Only listeners on a socket systemd passed take
// part (berth's own socket dies with it), and not those with
// proxy_protocol: a connection's PROXY header was read by the berth that
// stored it and cannot be read again.

// prepareHandOver, as the front f of listener l starts, gives it the
// connections handed over for l and lets it hand its own over at stop.
func (s *Server) prepareHandOver(f *front.Server, l units.Listener, sock *activation.Socket) {
	name := activation.ClientPrefix + l.Name
	if clients := s.set.Clients(l.Name); len(clients) > 0 {
		// The store's copies would keep connections open after berth
		// closes them.
		if err := s.notify.RemoveFDs(name); err != nil {
			s.log.Warn("removing handed-over connections from systemd's store", "err", err)
		}
		if l.ProxyProtocol {
			for _, c := range clients {
				c.Close()
			}
			s.log.Info("closed connections handed over to a listener that now reads PROXY headers", journal.KeyListener, l.Name, "conns", len(clients))
		} else {
			f.Adopt(clients)
		}
	}
	if sock.Passed && !l.ProxyProtocol && s.notify.Enabled() {
		f.EnableHandOver(func(fd int) error { return s.notify.StoreFD(name, fd) })
	}
}

// dropStrayClients closes handed-over connections of listeners that are
// no more, once every listener took its own.
func (s *Server) dropStrayClients() {
	names := s.set.DropClients()
	for _, n := range names {
		s.notify.RemoveFDs(activation.ClientPrefix + n)
	}
	if len(names) > 0 {
		s.log.Info("closed connections handed over to listeners that are no more", "listeners", strings.Join(names, ","))
	}
}

// handOverIdle stores front f's idle connections on the way out and
// counts them into handed.
func (s *Server) handOverIdle(ctx context.Context, f *front.Server, handed *atomic.Int64) {
	n, err := f.HandOver(ctx)
	if err != nil {
		s.log.Warn("handing idle connections to the next berth", "err", err)
	}
	handed.Add(int64(n))
}

// handedOver waits until systemd has every connection stored (the store
// is filled before berth exits) and says how many went.
func (s *Server) handedOver(handed *atomic.Int64) {
	n := handed.Load()
	if n == 0 {
		return
	}
	if err := s.notify.Barrier(5 * time.Second); err != nil {
		s.log.Warn("waiting for systemd to store the handed-over connections", "err", err)
	}
	s.log.Info("handed idle connections to the next berth through systemd's file descriptor store", "conns", n)
}
