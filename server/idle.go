package server

import (
	"os"
	"syscall"
	"time"
)

// watchIdle carries out idle_exit: once no front has had a client
// connection open or a request for the configuration's idle_exit, berth
// stops as it does on SIGTERM (STOPPING=1, a clean stop, exit 0, which
// Restart=on-failure leaves alone), and systemd starts it again when the
// next connection reaches its socket, which the kernel queues meanwhile.
// It only does so when every listener's socket came from systemd: a
// berth that bound its own sockets would take them with it and nothing
// would start it again. A reload may change idle_exit; the watch reads it
// each turn, and ends when the server stops.
func (s *Server) watchIdle() {
	warned := false
	for s.phase.Load() == int32(phaseServing) {
		limit, idle, passed := s.idleState()
		switch {
		case limit == 0:
		case !passed:
			if !warned {
				s.log.Warn("idle_exit is off: berth bound some of its sockets itself (not started by systemd's socket units), so nothing would start it again")
				warned = true
			}
		case idle >= limit:
			s.log.Info("idle: no request and no client connection; exiting until the next connection (idle_exit)", "idle_exit", limit.String())
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
			return
		}
		time.Sleep(idlePoll(limit))
	}
}

// idleState is idle_exit, how long every front has been idle, and whether
// every listener's socket came from systemd.
func (s *Server) idleState() (limit, idle time.Duration, passed bool) {
	s.state.RLock()
	defer s.state.RUnlock()
	limit, passed = s.cfg.IdleExit, true
	for _, sock := range s.sockets {
		passed = passed && sock.Passed
	}
	idle = time.Duration(1<<63 - 1)
	for _, f := range s.fronts {
		idle = min(idle, f.Idle())
	}
	return limit, idle, passed
}

// idlePoll is how often the watch looks: a tenth of idle_exit, between
// 100 ms and a second.
func idlePoll(limit time.Duration) time.Duration {
	return min(max(limit/10, 100*time.Millisecond), time.Second)
}
