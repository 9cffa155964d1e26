package server

import (
	"sync"
	"testing"
	"time"
)

// TestShutdown: Shutdown reports whether every app stopped in time; with
// two apps killed at once, both say so together (run with -race).
func TestShutdown(t *testing.T) {
	cases := []struct {
		name  string
		slow  bool // a request outlives graceful_timeout in each app
		clean bool
	}{
		{"idle", false, true},
		{"busy past graceful_timeout", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t)
			srv := s.start(s.listener("http", "a", "") + s.app("shop", `"http"`, "") +
				s.listener("more", "b", "") + s.app("blog", `"more"`, ""))
			var wg sync.WaitGroup
			if tc.slow {
				for _, f := range []string{"a", "b"} {
					wg.Add(1)
					go func() { defer wg.Done(); get(s.sock(f), "/sleep?ms=3000") }()
				}
				waitBusy(t, srv, 2)
			}
			if clean := srv.Shutdown(false); clean != tc.clean {
				t.Errorf("Shutdown = %v, want %v", clean, tc.clean)
			}
			wg.Wait()
		})
	}
}

// waitBusy waits until n workers are busy.
func waitBusy(t *testing.T, srv *Server, n int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if srv.Status().Busy >= n {
			return
		}
	}
	t.Fatalf("%d workers never became busy", n)
}
