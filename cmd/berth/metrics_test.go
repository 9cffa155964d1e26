package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/server"
)

// shopApp answers / (200), /missing (404), /slow (sleeps past the app's
// timeout: 504 and the worker killed) and /pid (the worker's pid).
const shopApp = `import os, time
def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(10)
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no"]
    body = str(os.getpid()).encode() if path == "/pid" else b"ok"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
`

func shopConfig(t *testing.T, adminExtra string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shop.py"), []byte(shopApp), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
admin {
  address = "127.0.0.1:0"
  %s
}
app "shop" {
  module  = "shop:app"
  python  = %q
  chdir   = %q
  workers = 2
  timeout = "1s"
}
`, adminExtra, e2e.SystemPython(t), dir)
}

// TestPrometheus: a real Prometheus scrapes /metrics while the test sends
// requests of every outcome, kills a worker and reloads; its queries then
// match what was sent, no counter ever went down across the reload,
// promtool accepts the output, and `berth status --json` carries the same
// figures as /metrics.
func TestPrometheus(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, shopConfig(t, ""))
	admin := b.AdminAddr()
	prom := startPrometheus(t, admin)
	prom.waitFor(`up{job="berth"}`, map[string]float64{"": 1}, 30*time.Second)

	// A new connection per request, so that connections can be counted.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	send := func(method, path string, n, want int) {
		for range n {
			if code, body := getBody(t, client, method, b.URL(path)); code != want {
				t.Fatalf("%s %s = %d %q, want %d", method, path, code, body, want)
			}
		}
	}
	send("GET", "/", 20, 200)
	send("GET", "/missing", 5, 404)
	send("POST", "/", 3, 200)
	send("GET", "/slow", 2, 504)
	_, pid := getBody(t, client, "GET", b.URL("/pid"))
	n, _ := strconv.Atoi(pid)
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatalf("killing worker %s: %v", pid, err)
	}
	prom.waitFor(`berth_worker_exits_total{cause="crash"}`, map[string]float64{"app=shop,cause=crash": 1}, 10*time.Second)
	if code, out := b.Reload(); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	send("GET", "/", 10, 200)
	if code, body, _ := probe("GET", "http://"+admin+"/readyz"); code != 200 {
		t.Errorf("/readyz after the reload = %d %q", code, body)
	}

	// 41 requests: 20+3+10 answered 200 and /pid, 5 404, 2 504.
	prom.waitFor(`sum by (status_class) (berth_requests_total{app="shop"})`,
		map[string]float64{"status_class=2xx": 34, "status_class=4xx": 5, "status_class=5xx": 2}, 10*time.Second)
	for _, c := range []struct {
		q    string
		want map[string]float64
	}{
		{`sum by (method) (berth_requests_total)`, map[string]float64{"method=GET": 38, "method=POST": 3}},
		{`berth_request_duration_seconds_count`, map[string]float64{"listener=http": 0, "app=shop,listener=http": 41}},
		// The two 504s waited at least the 1 s timeout.
		{`berth_request_duration_seconds_bucket{app="shop",le="0.5"} == bool 39`, map[string]float64{"app=shop,le=0.5,listener=http": 1}},
		{`berth_response_bytes_total{app="shop"}`, map[string]float64{"app=shop,listener=http": float64(33*2 + len(pid) + 5*2 + 2*len("gateway timeout: the app did not answer within its timeout\n"))}},
		{`berth_queue_wait_seconds_count`, map[string]float64{"app=shop": 41}},
		{`berth_served_total`, map[string]float64{"app=shop": 39}},
		{`berth_request_timeouts_total`, map[string]float64{"app=shop": 2}},
		{`berth_worker_exits_total > 0`, map[string]float64{"app=shop,cause=crash": 1, "app=shop,cause=timeout": 2, "app=shop,cause=stop": 2}},
		{`berth_queue_rejections_total > 0`, map[string]float64{}},
		{`berth_reloads_total`, map[string]float64{"result=ok": 1, "result=failed": 0}},
		{`berth_app_generation`, map[string]float64{"app=shop": 2}},
		{`berth_workers`, map[string]float64{"app=shop,state=idle": 2, "app=shop,state=busy": 0, "app=shop,state=booting": 0}},
		{`berth_connections_accepted_total`, map[string]float64{"listener=http": 41}},
		{`berth_connections_open`, map[string]float64{"listener=http": 0}},
		// A reload never makes a counter go down.
		{`sum(resets(berth_requests_total[5m])) + sum(resets(berth_served_total[5m])) + sum(resets(berth_worker_exits_total[5m]))`, map[string]float64{"": 0}},
		{`go_goroutines > 0`, nil},
	} {
		got := prom.query(c.q)
		if c.want == nil {
			if len(got) == 0 {
				t.Errorf("query %s: nothing", c.q)
			}
			continue
		}
		if !equalSeries(got, c.want) {
			t.Errorf("query %s = %v, want %v", c.q, got, c.want)
		}
	}

	_, text := getBody(t, client, "GET", "http://"+admin+"/metrics")
	promtoolCheck(t, text)
	sameFigures(t, text, b.Status())
	var out, errb strings.Builder
	run([]string{"status", b.Config}, &out, &errb)
	// Once for all apps, once for the app.
	if strings.Count(out.String(), "\n  since start: 39 served, 0 refused (503), 2 timed out, workers ended: 1 crash, 2 timeout\n") != 2 {
		t.Errorf("berth status lacks the totals since start:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "generation 2") || !strings.Contains(out.String(), "queue 0/1024, 10 served\n") {
		t.Errorf("berth status lacks the current generation's figures:\n%s", out.String())
	}
}

// sameFigures checks that every berth_* sample of the status's metric
// families is in the /metrics text with the same value.
func sameFigures(t *testing.T, text string, st server.Status) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		lines[l] = true
	}
	n := 0
	for _, f := range st.Metrics {
		for _, s := range f.Samples {
			if s.Value == nil {
				continue // histograms: their counts are in berth_*_count, checked as counters are
			}
			line := f.Name + promLabels(s) + " " + strconv.FormatFloat(*s.Value, 'g', -1, 64)
			if !lines[line] {
				t.Errorf("status has %q, /metrics does not", line)
			}
			n++
		}
	}
	if n < 20 {
		t.Errorf("status carries %d samples, want berth's families", n)
	}
}

// promLabels renders a sample's labels as the text format does.
func promLabels(s metrics.Sample) string {
	if len(s.Labels) == 0 {
		return ""
	}
	var parts []string
	for k, v := range s.Labels {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	sortStrings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
