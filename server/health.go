package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// statusEvery is how often the supervision loop turns: it refreshes the
// STATUS line and proves, by turning, that berth is not wedged.
const statusEvery = 2 * time.Second

// Run is the supervision loop, until ctx ends: every statusEvery it
// refreshes systemd's STATUS line and stamps a heartbeat; beside it the
// watchdog pings systemd while Healthy holds.
func (s *Server) Run(ctx context.Context) {
	go s.notify.Watchdog(ctx, s.Healthy)
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wedge:
			// Test hook: a wedged supervisor stops turning for good.
			s.log.Warn("supervision loop wedged on purpose (BERTH_TEST_HOOKS)")
			<-ctx.Done()
			return
		case <-t.C:
		}
		s.heartbeat.Store(time.Now().UnixNano())
		if line := s.statusLine(); line != last {
			s.notify.Status(line)
			last = line
		}
	}
}

// Wedge stops the supervision loop, as a deadlock would; only for tests
// of the watchdog, enabled by BERTH_TEST_HOOKS=1.
func (s *Server) Wedge() {
	if os.Getenv("BERTH_TEST_HOOKS") == "1" {
		s.wedge <- struct{}{}
	}
}

// Healthy reports why berth is not healthy, or nil: the supervision loop
// must have turned recently, and every app's dispatch must be moving.
func (s *Server) Healthy() error {
	beat := s.heartbeat.Load()
	if beat == 0 {
		// Only the admin listener asks this early; the watchdog starts
		// with the loop.
		return errors.New("starting: the supervision loop has not begun")
	}
	if age := time.Since(time.Unix(0, beat)); age > 3*statusEvery {
		return fmt.Errorf("supervision loop has not turned for %s", age.Round(time.Second))
	}
	s.state.RLock()
	defer s.state.RUnlock()
	for name, a := range s.apps {
		if err := a.Current().Healthy(); err != nil {
			return fmt.Errorf("app %s: %w", name, err)
		}
	}
	return nil
}

// statusLine is the one line systemctl status shows: apps, workers
// ready/total, busy, queued, generations, last reload.
func (s *Server) statusLine() string {
	st := s.Status()
	ready := 0
	var gens []string
	for _, a := range st.Apps {
		for _, w := range a.Workers {
			if w.PID != 0 {
				ready++
			}
		}
		gens = append(gens, fmt.Sprintf("%s gen %d", a.Name, a.Generation))
	}
	sort.Strings(gens)
	last := "ok"
	if !st.LastReload.OK {
		last = "FAILED: " + st.LastReload.Message
	}
	return fmt.Sprintf("%d app(s), %d/%d workers ready, %d busy, %d queued, %s; %d served; last reload %s",
		len(st.Apps), ready, st.Workers, st.Busy, st.Queued, strings.Join(gens, ", "), st.Served, last)
}
