package server

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/admin"
	"github.com/berthd/berth/units"
)

// The admin listener serves /healthz (Healthy) and /readyz (Ready) from
// the admin block's address, or from the socket systemd passed as
// units.AdminSocketName. It opens before any app boots, so that /readyz
// says "starting" rather than refusing, and closes after everything else
// has stopped, so that a load balancer reads "draining" to the end.

// Admin is the admin listener's handler, for further endpoints (such as
// metrics): register them before Start. It serves whatever address the
// configuration gives it, across reloads.
func (s *Server) Admin() *admin.Handler { return s.adminHandler }

// adminSpec is what activation needs of the admin block.
func adminSpec(a *units.Admin) activation.Spec {
	o := activation.Owner{Mode: os.FileMode(a.Socket.Mode), User: a.Socket.User, Group: a.Socket.Group}
	return activation.Spec{Name: units.AdminSocketName, Network: a.Network, Address: a.Address, Owner: o}
}

// openAdmin opens the admin socket cfg asks for, if it is not the one
// open already: nil when there is nothing new to open (no admin block, or
// the same address).
func (s *Server) openAdmin(cfg *units.Config) (*activation.Socket, error) {
	if cfg.Admin == nil || (s.adminSock != nil && s.adminSock.Spec == adminSpec(cfg.Admin)) {
		return nil, nil
	}
	socks, err := s.set.Listen([]activation.Spec{adminSpec(cfg.Admin)})
	if err != nil {
		return nil, fmt.Errorf("admin block: %w", err)
	}
	return socks[0], nil
}

// startAdmin opens and serves the admin listener of the configuration
// berth starts with.
func (s *Server) startAdmin() error {
	sock, err := s.openAdmin(s.cfg)
	if err != nil {
		return err
	}
	if sock != nil {
		return s.serveAdmin(sock)
	}
	return nil
}

// serveAdmin serves the admin endpoints on sock, in place of the admin
// listener before it, which is shut down (and its socket closed) in the
// background.
func (s *Server) serveAdmin(sock *activation.Socket) error {
	ln, err := sock.Listener()
	if err != nil {
		sock.Close()
		return fmt.Errorf("admin block: %w", err)
	}
	s.closeAdmin()
	s.adminSock, s.adminSrv = sock, admin.Serve(ln, s.adminHandler, s.log, s.serveErr)
	s.log.Info("admin listening", "addr", sock.Addr(), "passed_by_systemd", sock.Passed)
	return nil
}

// commitAdmin is a reload's switch of the admin listener to cfg: to sock
// when the reload opened one, off when cfg has no admin block, else
// unchanged. It returns what changed, or "".
func (s *Server) commitAdmin(cfg *units.Config, sock *activation.Socket) string {
	switch {
	case sock != nil:
		// Cannot fail but for a lack of file descriptors, and then the
		// old admin listener serves on.
		if err := s.serveAdmin(sock); err != nil {
			s.log.Error("admin listener kept on its old address", "err", err)
			return ""
		}
		return "admin on " + sock.Addr()
	case cfg.Admin == nil && s.adminSock != nil:
		s.closeAdmin()
		return "closed admin listener"
	}
	return ""
}

// closeAdmin stops the admin listener, if any, in the background; Wait
// on s.closing sees it done. Probes are one quick request each, so a
// second is plenty for those in flight.
func (s *Server) closeAdmin() {
	srv, sock := s.adminSrv, s.adminSock
	s.adminSrv, s.adminSock = nil, nil
	if srv == nil {
		return
	}
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		sock.Close()
	}()
}
