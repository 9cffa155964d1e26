package server

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// phase is where the server is in its life, as readiness sees it.
type phase int32

const (
	// phaseStarting: apps boot; systemd has not heard READY.
	phaseStarting phase = iota
	// phaseServing: started, and not stopping.
	phaseServing
	// phaseDraining: a stop began (SIGTERM, or a listener failed):
	// berth serves on, but load balancers must send nothing new.
	phaseDraining
)

// Readiness words, as Status and `berth status` show them.
const (
	Ready    = "ready"
	Starting = "starting"
	Draining = "draining"
	NotReady = "not ready"
)

// Errors Ready returns for the phases that are not ready, whatever the
// apps' workers: tests and Status tell them apart.
var (
	errStarting = errors.New("starting: apps are booting")
	errDraining = errors.New("draining: berth is stopping")
)

// Ready reports why a load balancer should not send requests to berth
// now, or nil: from the start until READY, from the moment a stop begins,
// and while an app has no worker that can take a request. A reload does
// not make berth unready: the old generation serves until the new one
// is ready, and only then is it swapped in.
func (s *Server) Ready() error {
	p := phase(s.phase.Load())
	if p != phaseServing {
		// Start fills s.apps without the state lock while the admin
		// listener already answers; storing phaseServing after it is
		// what makes reading them below safe.
		return readiness(p, nil)
	}
	s.state.RLock()
	workers := make(map[string]int, len(s.apps))
	for name, a := range s.apps {
		workers[name] = a.Current().ReadyWorkers()
	}
	s.state.RUnlock()
	return readiness(p, workers)
}

// readiness decides Ready from the phase and each app's count of ready
// workers; an app without one is named (the first by name, so the
// answer is stable from one probe to the next).
func readiness(p phase, workers map[string]int) error {
	switch p {
	case phaseStarting:
		return errStarting
	case phaseDraining:
		return errDraining
	}
	var none []string
	for name, n := range workers {
		if n == 0 {
			none = append(none, name)
		}
	}
	if len(none) == 0 {
		return nil
	}
	sort.Strings(none)
	if len(none) == 1 {
		return fmt.Errorf("app %s has no ready worker", none[0])
	}
	return fmt.Errorf("apps %s and %d more have no ready worker", none[0], len(none)-1)
}

// readinessWord is Ready's answer in one word for Status.
func readinessWord(err error) string {
	switch {
	case err == nil:
		return Ready
	case errors.Is(err, errStarting):
		return Starting
	case errors.Is(err, errDraining):
		return Draining
	}
	return NotReady
}

// BeginDrain starts a stop: from now on Ready says "draining", so load
// balancers take berth out of rotation, and reloads are refused; berth
// itself serves on as before. It returns the admin block's drain_delay:
// how long the caller should let that go on before Shutdown, the time a
// load balancer needs to see the 503 and stop sending (for HAProxy,
// about its check interval times its fall count).
func (s *Server) BeginDrain() time.Duration {
	s.phase.Store(int32(phaseDraining))
	s.state.RLock()
	delay := s.cfg.DrainDelay()
	s.state.RUnlock()
	if delay > 0 {
		s.log.Info("draining: /readyz answers 503; serving on until drain_delay ends", "drain_delay", delay)
		s.notify.Stopping(fmt.Sprintf("stopping: draining for %s (readiness 503), then finishing requests in flight", delay))
	}
	return delay
}
