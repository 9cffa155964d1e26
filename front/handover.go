package front

import (
	"context"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// A stopping berth hands its idle keep-alive connections to the next one
// through systemd's file descriptor store, so that a client sending its
// next request as berth restarts is answered by the new berth instead of
// meeting a closed connection. Only a connection whose bytes are all
// still in the kernel can be handed over: one that fasthttp is between
// requests on (StateIdle) and waiting to read with nothing buffered. A
// connection with a request in flight, or whose next request arrives as
// berth hands it, is finished instead: its response says Connection:
// close and berth closes it after.

// handovers is the register of a front's connections that may be handed
// over, and how: store puts a duplicate of a descriptor in the store.
type handovers struct {
	store func(fd int) error
	mu    sync.Mutex
	conns map[*handover]struct{}
}

// handover is what one connection shares with the stop that may hand it
// over: the goroutine serving it reads, the stopping one hands it. Its
// fields are guarded by mu; cond signals the end of a read or a hand-over.
type handover struct {
	reg  *handovers
	conn syscall.Conn
	// kick sets the socket's read deadline without telling the wrapping
	// connection: it ends a read that waits for the next request.
	kick func(time.Time) error

	mu      sync.Mutex
	cond    sync.Cond
	idle    bool // fasthttp waits for the next request on it (ConnState)
	reading bool // a read is in the kernel
	got     bool // a read returned bytes since the connection went idle
	pending bool // a hand-over is deciding; Close waits
	gone    bool // handed over (or being): reads fail
}

// track registers a connection of the front; nil on a front that hands
// none over.
func (r *handovers) track(conn syscall.Conn, kick func(time.Time) error) *handover {
	if r == nil {
		return nil
	}
	h := &handover{reg: r, conn: conn, kick: kick}
	h.cond.L = &h.mu
	r.mu.Lock()
	r.conns[h] = struct{}{}
	r.mu.Unlock()
	return h
}

// beginRead says a read of the socket starts; false when the connection
// was handed over and must not be read.
func (h *handover) beginRead() bool {
	if h == nil {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return false
	}
	h.reading = true
	return true
}

// endRead says the read returned n bytes.
func (h *handover) endRead(n int) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.reading = false
	h.got = h.got || n > 0
	h.cond.Broadcast()
	h.mu.Unlock()
}

// setIdle follows fasthttp's state of the connection.
func (h *handover) setIdle(idle bool) {
	h.mu.Lock()
	h.idle = idle
	if idle {
		h.got = false
	}
	h.mu.Unlock()
}

// closing waits for a hand-over deciding on the connection, so that the
// connection is stored before berth closes its descriptor, and forgets it.
func (h *handover) closing() {
	if h == nil {
		return
	}
	h.mu.Lock()
	for h.pending {
		h.cond.Wait()
	}
	h.mu.Unlock()
	h.reg.mu.Lock()
	delete(h.reg.conns, h)
	h.reg.mu.Unlock()
}

// handOver stores every idle connection it can and reports how many. The
// goroutines serving them see their read fail and close their copies.
func (r *handovers) handOver() (n int, err error) {
	r.mu.Lock()
	conns := make([]*handover, 0, len(r.conns))
	for h := range r.conns {
		conns = append(conns, h)
	}
	r.mu.Unlock()
	for _, h := range conns {
		ok, herr := h.handOver()
		if ok {
			n++
		}
		if herr != nil && err == nil {
			err = herr
		}
	}
	return n, err
}

// handOver stores the connection if it waits for its next request with
// nothing read of it: it ends the wait (a read deadline in the past) and
// stores the descriptor unless the wait ended with bytes, in which case
// the request is served as any other.
func (h *handover) handOver() (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.idle || !h.reading || h.got || h.gone {
		return false, nil
	}
	h.gone, h.pending = true, true
	defer func() { h.pending = false; h.cond.Broadcast() }()
	if err := h.kick(time.Unix(1, 0)); err != nil {
		h.gone = false
		return false, err
	}
	for h.reading {
		h.cond.Wait()
	}
	if h.got {
		h.gone = false
		return false, nil
	}
	raw, err := h.conn.SyscallConn()
	if err != nil {
		return false, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = h.reg.store(int(fd)) }); err != nil {
		return false, err
	}
	return serr == nil, serr
}

// EnableHandOver makes the front's idle connections ones that HandOver
// can pass on through store. It must be called before Serve.
func (s *Server) EnableHandOver(store func(fd int) error) {
	s.handovers = &handovers{store: store, conns: map[*handover]struct{}{}}
}

// HandOver stops accepting and stores the front's connections (see
// EnableHandOver) as each comes to wait for its next request: those idle
// now at once, those with a request in flight once it is answered, until
// none is left or ctx ends; it reports how many went. The front then
// shuts down as ever: what is left is finished with Connection: close.
// Waiting for each connection to be idle, rather than handing over those
// idle at one instant, matters: fasthttp marks a connection idle a moment
// before it reads again, and one closed in that moment may be sent a
// request it never answers.
func (s *Server) HandOver(ctx context.Context) (int, error) {
	if s.handovers == nil {
		return 0, nil
	}
	s.stopAccepting()
	total := 0
	t := time.NewTicker(handOverPoll)
	defer t.Stop()
	for {
		n, err := s.handovers.handOver()
		total += n
		if err != nil || s.handovers.live() == 0 {
			return total, err
		}
		select {
		case <-ctx.Done():
			return total, nil
		case <-t.C:
		}
	}
}

// handOverPoll is how often HandOver looks for newly idle connections.
const handOverPoll = 5 * time.Millisecond

// live counts the connections still open.
func (r *handovers) live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// stopAccepting closes the front's listener (a duplicate: the socket
// stays open, its new connections queued for the next berth).
func (s *Server) stopAccepting() {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln != nil {
		s.ln.Close()
	}
}

// Adopt serves connections a previous berth handed over, as if accepted
// first. It must be called before Serve.
func (s *Server) Adopt(files []*os.File) {
	for _, f := range files {
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			s.log.Warn("a handed-over connection is not a socket", "err", err)
			continue
		}
		s.adopted = append(s.adopted, c)
	}
	if len(s.adopted) > 0 {
		s.log.Info("serving connections handed over by the previous berth", "conns", len(s.adopted))
	}
}

// adoptedListener accepts the adopted connections, then its listener's.
type adoptedListener struct {
	net.Listener
	mu      sync.Mutex
	adopted []net.Conn
}

func (l *adoptedListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.adopted) > 0 {
		c := l.adopted[0]
		l.adopted = l.adopted[1:]
		l.mu.Unlock()
		return c, nil
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// withAdopted is ln, accepting the adopted connections first.
func (s *Server) withAdopted(ln net.Listener) net.Listener {
	s.lnMu.Lock()
	s.ln = ln
	s.lnMu.Unlock()
	if len(s.adopted) == 0 {
		return ln
	}
	adopted := s.adopted
	s.adopted = nil
	return &adoptedListener{Listener: ln, adopted: adopted}
}

// connState follows fasthttp's view of each connection: for the front's
// activity (idle_exit) and for its hand-over.
func (s *Server) connState(c net.Conn, st fasthttp.ConnState) {
	s.activity.note(st)
	s.countConn(st)
	var h *handover
	switch c := c.(type) {
	case *clientConn:
		h = c.ho
	case *unixConn:
		h = c.ho
	}
	if h != nil {
		// A new connection waits for its first request as an idle one
		// for its next: either may go with nothing read of it.
		h.setIdle(st == fasthttp.StateIdle || st == fasthttp.StateNew)
	}
}
