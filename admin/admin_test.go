package admin

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestEndpoints serves the admin handler over loopback with net/http's
// own server, as berth does, and asks it what probes ask.
func TestEndpoints(t *testing.T) {
	var healthy, ready error
	h := NewHandler(Checks{
		Healthy: func() error { return healthy },
		Ready:   func() error { return ready },
	})
	h.Handle("GET /extra", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "more\n")
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	srv := Serve(ln, h, slog.New(slog.DiscardHandler), errs)
	defer srv.Shutdown(t.Context())
	client := &http.Client{Timeout: 5 * time.Second}

	cases := []struct {
		name           string
		method, path   string
		healthy, ready error
		code           int
		body, length   string
	}{
		{"healthy", "GET", "/healthz", nil, errors.New("starting: apps are booting"), 200, "ok\n", "3"},
		{"wedged", "GET", "/healthz", errors.New("supervision loop has not turned for 7s"), nil, 503, "supervision loop has not turned for 7s\n", "39"},
		{"ready", "GET", "/readyz", nil, nil, 200, "ok\n", "3"},
		{"draining", "GET", "/readyz", nil, errors.New("draining: berth is stopping"), 503, "draining: berth is stopping\n", "28"},
		{"HEAD ready", "HEAD", "/readyz", nil, nil, 200, "", "3"},
		{"HEAD draining", "HEAD", "/readyz", nil, errors.New("draining: berth is stopping"), 503, "", "28"},
		{"query ignored", "GET", "/readyz?verbose=1", nil, nil, 200, "ok\n", "3"},
		{"unknown path", "GET", "/", nil, nil, 404, "404 page not found\n", ""},
		{"subpath", "GET", "/readyz/x", nil, nil, 404, "404 page not found\n", ""},
		{"other method", "POST", "/readyz", nil, nil, 405, "Method Not Allowed\n", ""},
		{"registered", "GET", "/extra", nil, nil, 200, "more\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			healthy, ready = tc.healthy, tc.ready
			req, _ := http.NewRequest(tc.method, "http://"+ln.Addr().String()+tc.path, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || string(b) != tc.body {
				t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
			}
			if tc.length != "" {
				if got := resp.Header.Get("Content-Length"); got != tc.length || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("headers %v, want Content-Length %s, text/plain, no-store", resp.Header, tc.length)
				}
			}
		})
	}
	select {
	case err := <-errs:
		t.Errorf("serving failed: %v", err)
	default:
	}
}
