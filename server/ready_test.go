package server

import (
	"testing"
)

// TestReadiness: what /readyz and `berth status` say in each phase, and
// which app they name when one has no ready worker.
func TestReadiness(t *testing.T) {
	cases := []struct {
		name    string
		phase   phase
		workers map[string]int
		word    string
		reason  string // "" when ready
	}{
		{"starting", phaseStarting, nil, Starting, "starting: apps are booting"},
		{"starting, workers up", phaseStarting, map[string]int{"a": 2}, Starting, "starting: apps are booting"},
		{"serving", phaseServing, map[string]int{"a": 2, "b": 1}, Ready, ""},
		{"an app without a worker", phaseServing, map[string]int{"a": 2, "shop": 0}, NotReady, "app shop has no ready worker"},
		{"several, named in order", phaseServing, map[string]int{"zed": 0, "b": 0, "a": 1}, NotReady, "apps b and 1 more have no ready worker"},
		{"draining", phaseDraining, map[string]int{"a": 2}, Draining, "draining: berth is stopping"},
		{"draining, no workers", phaseDraining, map[string]int{"a": 0}, Draining, "draining: berth is stopping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := readiness(tc.phase, tc.workers)
			reason := ""
			if err != nil {
				reason = err.Error()
			}
			if reason != tc.reason || readinessWord(err) != tc.word {
				t.Errorf("readiness = %q (%s), want %q (%s)", reason, readinessWord(err), tc.reason, tc.word)
			}
		})
	}
}
