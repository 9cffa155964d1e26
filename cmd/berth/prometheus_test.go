package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// promServer is a real Prometheus (Debian's prometheus package) started
// by a test on loopback, with its own storage, scraping one target.
type promServer struct {
	t    *testing.T
	base string
}

// scrapeEvery is the test Prometheus' scrape interval.
const scrapeEvery = 200 * time.Millisecond

// startPrometheus runs prometheus scraping target (host:port) /metrics
// every scrapeEvery until the test ends; it skips the test, saying so,
// when prometheus or promtool is not installed.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	for _, bin := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (Debian's prometheus package): %v", bin, err)
		}
	}
	dir := t.TempDir()
	conf := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: [%q]\n",
		scrapeEvery, scrapeEvery, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))
	cmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	logs := &e2e.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", logs)
		}
	})
	p := &promServer{t: t, base: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 60 s: %v\n%s", err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query runs an instant query and returns each series' value by its
// labels ("" for a series with none, else "k=v,k=v" sorted).
func (p *promServer) query(q string) map[string]float64 {
	p.t.Helper()
	resp, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		p.t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		p.t.Fatalf("query %s: %v %s %s", q, err, r.Status, r.Error)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		out[labelKey(s.Metric)] = v
	}
	return out
}

// waitFor polls q until its result is want, or fails after d.
func (p *promServer) waitFor(q string, want map[string]float64, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	var got map[string]float64
	for time.Now().Before(deadline) {
		if got = p.query(q); equalSeries(got, want) {
			return
		}
		time.Sleep(scrapeEvery)
	}
	p.t.Errorf("query %s = %v, want %v", q, got, want)
}

func labelKey(m map[string]string) string {
	var parts []string
	for k, v := range m {
		if k != "__name__" && k != "job" && k != "instance" {
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func equalSeries(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// promtoolCheck lints a /metrics body with promtool check metrics.
func promtoolCheck(t *testing.T, body string) {
	t.Helper()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// getBody GETs url and returns its status and body.
func getBody(t *testing.T, client *http.Client, method, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sortStrings(s []string) { sort.Strings(s) }
