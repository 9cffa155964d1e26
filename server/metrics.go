package server

import (
	"github.com/berthd/berth/front"
	"github.com/berthd/berth/metrics"
)

// The metrics registry is the server's, made in New and kept for the
// process's life: fronts, pools and workers come and go with reloads, the
// counts they add to stay. /metrics on the admin listener renders it, and
// Status carries the same gathering (Status.Metrics), so `berth status
// --json` and a scrape never disagree.

// initMetrics makes the registry and serves it at /metrics.
func (s *Server) initMetrics() {
	s.metrics = metrics.New(s.live)
	s.metrics.SetOn(s.cfg.MetricsOn())
	s.metrics.Spool(func() float64 { return float64(front.SpoolFiles()) }, func() float64 { return float64(front.SpooledMemory()) })
	s.adminHandler.Handle("GET /metrics", s.metrics.Handler())
}

// live is each app's state for a scrape, in the configuration's order;
// nothing while berth starts (Start fills the apps without the state lock).
func (s *Server) live() []metrics.Live {
	if phase(s.phase.Load()) == phaseStarting {
		return nil
	}
	s.state.RLock()
	defer s.state.RUnlock()
	var out []metrics.Live
	for _, a := range s.cfg.Apps {
		if app := s.apps[a.Name]; app != nil {
			out = append(out, app.Live())
		}
	}
	return out
}

// appMetrics is the series of the app called name.
func (s *Server) appMetrics(name string) *metrics.App { return s.metrics.App(name) }

// metricFamilies is what Status carries of the registry; an error of the
// gathering (none is expected: every collector is berth's) is logged and
// leaves it out.
func (s *Server) metricFamilies() []metrics.Family {
	fs, err := s.metrics.Families()
	if err != nil {
		s.log.Warn("metrics for status", "err", err)
	}
	return fs
}
