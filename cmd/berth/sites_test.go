package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// TestSystemdSites runs the many-sites-per-host features under one
// booted systemd (one boot for all, to keep the suite's time): the
// sandbox of rendered units with the real examples, restarts that hand
// idle connections over, idle_exit, per-app limits and `berth sites`.
func TestSystemdSites(t *testing.T) {
	t.Parallel()
	c := e2e.BootContainer(t)
	t.Run("sandbox: exposure at most 2.0, unprivileged, Flask and Django serve", func(t *testing.T) { testSandbox(t, c) })
	t.Run("restarts hand idle keep-alive connections over: none fails", func(t *testing.T) { testHandOver(t, c) })
	t.Run("idle_exit: inactive when idle, started by the next connection", func(t *testing.T) { testIdleExit(t, c) })
	t.Run("berth sites: instances in three states", func(t *testing.T) { testSites(t, c) })
}

// copyExamples copies the repository's examples into the container, once,
// and returns where: a checkout under /tmp (as a CI clone may be) is not
// what the container's /tmp holds.
func copyExamples(c *e2e.Container) string {
	c.T.Helper()
	const at = "/srv/berth-examples"
	if _, err := os.Stat(filepath.Join(c.Root, at)); err == nil {
		return at
	}
	if err := os.CopyFS(filepath.Join(c.Root, at), os.DirFS("../../examples")); err != nil {
		c.T.Fatalf("copying the examples into the container: %v", err)
	}
	return at
}

var overallExposure = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// testSandbox: the units `berth units` renders, loaded by systemd, rate
// at most 2.0, run berth and its workers as a user other than root, and
// the Flask and Django examples serve under them.
func testSandbox(t *testing.T, c *e2e.Container) {
	examples := copyExamples(c)
	flask, django := e2e.FreePort(t), e2e.FreePort(t)
	c.InstallConfig("ex", fmt.Sprintf(`
listener "flask" {
  address = "127.0.0.1:%d"
}
listener "django" {
  address = "127.0.0.1:%d"
}
app "shop" {
  listener = "flask"
  module   = "shop:app"
  python   = "/usr/bin/python3"
  chdir    = "%s/flask"
  workers  = 1
  env      = { PYTHONDONTWRITEBYTECODE = "1" }
}
app "notes" {
  listener = "django"
  module   = "notes.wsgi:application"
  python   = "/usr/bin/python3"
  chdir    = "%s/django"
  workers  = 1
  env      = { DJANGO_SETTINGS_MODULE = "notes.settings", PYTHONDONTWRITEBYTECODE = "1" }
}
`, flask, django, examples, examples), "", "ex-flask.socket", "ex-django.socket")
	base := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	for _, tc := range []struct{ url, want string }{
		{base(flask) + "/items", "teapot"},
		{base(django) + "/notes/1/", "buy tea"},
		{base(django) + "/hello/berth/", "berth"},
	} {
		code, body := getURL(t, tc.url)
		if code != 200 || !strings.Contains(strings.ToLower(body), tc.want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", tc.url, code, body, tc.want)
		}
	}
	resp, err := e2e.HTTPClient.PostForm(base(flask)+"/order", url.Values{"name": {"cup"}, "qty": {"3"}})
	if err != nil || resp.StatusCode/100 != 2 {
		t.Errorf("POST /order to Flask: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	out, _ := c.Exec("systemd-analyze", "security", "--no-pager", "ex.service")
	m := overallExposure.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security ex.service: no rating:\n%s", out)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v > 2.0 {
		t.Errorf("systemd-analyze security rates the loaded ex.service %s, want at most 2.0:\n%s", m[1], out)
	}
	t.Logf("loaded ex.service: exposure %s", m[1])
	main := c.Prop("ex.service", "MainPID")
	pids := append([]string{main}, strings.Fields(c.Must("pgrep", "-P", main))...)
	for _, pid := range pids {
		// The container's pids: read in its namespaces.
		status := c.Must("cat", "/proc/"+pid+"/status")
		if uid := statusField(status, "Uid:"); uid == "0" || uid == "" {
			t.Errorf("pid %s of ex.service runs as root", pid)
		}
	}
}

// statusField is the first value of a /proc/PID/status line.
func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == key {
			return f[1]
		}
	}
	return ""
}

// getURL fetches u, failing the test on a transport error.
func getURL(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := e2e.HTTPClient.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", u, err)
	}
	return resp.StatusCode, string(b)
}

// testHandOver: 50 keep-alive clients, each pausing up to 20 ms between
// requests, across 10 `systemctl restart`s: no request fails, and the
// idle connections went through systemd's store to the next berth.
func testHandOver(t *testing.T, c *e2e.Container) {
	// Ten restarts in a few seconds are past systemd's default start
	// limit (5 in 10 s), which is not what this tests.
	c.Write("/etc/systemd/system/ho.service.d/limit.conf", "[Unit]\nStartLimitIntervalSec=0\n")
	s := c.Install("ho", "", "")
	s.Get("/")
	s.WaitActive()
	load := startKeepAlive(fmt.Sprintf("127.0.0.1:%d", s.Port), "/", 50, 20*time.Millisecond)
	for range 10 {
		time.Sleep(700 * time.Millisecond) // load between restarts
		if out, err := c.Exec("systemctl", "restart", "ho.service"); err != nil {
			log, _ := c.Exec("journalctl", "-u", "ho.service", "--no-pager", "-n", "60")
			t.Fatalf("systemctl restart: %v\n%s\n%s", err, out, log)
		}
	}
	time.Sleep(time.Second) // load after the last restart
	ok, failed, dials, samples := load.finish()
	t.Logf("50 keep-alive clients across 10 systemctl restarts: %d ok, %d failed, %d connections opened", ok, failed, dials)
	if failed != 0 || ok == 0 {
		t.Errorf("%d requests failed across restarts: %v", failed, samples)
	}
	handed, adopted := 0, 0
	for _, e := range s.Journal() {
		msg := fmt.Sprint(e["MESSAGE"])
		if strings.HasPrefix(msg, "handed idle connections to the next berth") {
			handed++
		}
		if strings.HasPrefix(msg, "serving connections handed over by the previous berth") {
			adopted++
		}
	}
	t.Logf("restarts that handed connections over: %d; starts that served them: %d", handed, adopted)
	if handed == 0 || adopted == 0 {
		log, _ := c.Exec("journalctl", "-u", "ho.service", "--no-pager", "-n", "3", "-o", "verbose", "--grep", "handing")
		t.Log(log)
		t.Errorf("no connection went through the store: %d stops handed some over, %d starts took some", handed, adopted)
	}
}

// testIdleExit: with idle_exit = "3s" the Flask example's service stays
// up while a client holds a connection open, goes inactive (not failed)
// once idle, its socket listening on; the next connection starts it and
// is answered 200, and the cold start (connect to first byte) is logged.
func testIdleExit(t *testing.T, c *e2e.Container) {
	examples := copyExamples(c)
	port := e2e.FreePort(t)
	c.InstallConfig("idle", fmt.Sprintf(`
idle_exit = "3s"
listener "http" {
  address = "127.0.0.1:%d"
}
app "shop" {
  module  = "shop:app"
  python  = "/usr/bin/python3"
  chdir   = "%s/flask"
  workers = 1
}
`, port, examples), "")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if code, _ := getURL(t, "http://"+addr+"/items"); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	e2e.HTTPClient.CloseIdleConnections() // its keep-alive connection would count as open
	// An open keep-alive connection, idle after its request, keeps berth
	// up. (One that sends nothing is not berth's yet: the kernel holds it
	// for DeferAcceptSec.)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /items HTTP/1.1\r\nHost: test\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("request on the held connection: %v %v", resp, err)
	}
	time.Sleep(5 * time.Second) // past idle_exit: the held connection must keep it up
	if st := c.Prop("idle.service", "ActiveState"); st != "active" {
		t.Errorf("idle.service is %s while a client holds a connection open, want active", st)
	}
	conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && c.Prop("idle.service", "ActiveState") != "inactive" {
		time.Sleep(200 * time.Millisecond)
	}
	if st, res := c.Prop("idle.service", "ActiveState"), c.Prop("idle.service", "Result"); st != "inactive" || res != "success" {
		t.Fatalf("idle.service is %s (result %s) after 3 s idle, want inactive (success)", st, res)
	}
	if sub := c.Prop("idle.socket", "SubState"); sub != "listening" {
		t.Errorf("idle.socket is %s after the service exited, want listening", sub)
	}
	ms, code := coldStart(t, addr, "/items")
	t.Logf("cold start of the Flask example (connection to first byte): %d ms", ms)
	if code != 200 {
		t.Errorf("the request that woke the site: status %d", code)
	}
	if st := c.Prop("idle.service", "ActiveState"); st != "active" {
		t.Errorf("idle.service is %s after the waking request", st)
	}
}

// coldStart connects to addr, sends GET path, and returns the time from
// the connection to the first byte of the response, and its status.
func coldStart(t *testing.T, addr, path string) (int64, int) {
	t.Helper()
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", path)
	br := bufio.NewReader(conn)
	if _, err := br.Peek(1); err != nil {
		t.Fatalf("waiting for the first byte: %v", err)
	}
	ms := time.Since(start).Milliseconds()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return ms, resp.StatusCode
}

// testSites: `berth sites` lists the instances the subtests before left
// (ho running, idle gone idle again) and one whose app cannot import
// (failed), each with its state, and the running one's workers, requests
// and last reload.
func testSites(t *testing.T, c *e2e.Container) {
	c.Write("/etc/systemd/system/bad.service.d/limit.conf", "[Service]\nRestart=no\n")
	c.Install("bad", "", "")
	c.Write("/etc/berth/bad.hcl", strings.Replace(string(must(os.ReadFile(filepath.Join(c.Root, "etc/berth/bad.hcl")))), "app:app", "nosuchmodule:app", 1))
	c.Exec("systemctl", "start", "bad.service")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (c.Prop("bad.service", "ActiveState") != "failed" || c.Prop("idle.service", "ActiveState") != "inactive") {
		time.Sleep(200 * time.Millisecond)
	}
	out := c.Must("/usr/local/bin/berth", "sites")
	t.Logf("berth sites:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ho\.service +active/running +2 +\d+ +[0-9.]+M +[1-9]\d* +ok `),
		regexp.MustCompile(`(?m)^idle\.service +inactive/dead +- +- +- +- +-$`),
		regexp.MustCompile(`(?m)^bad\.service +failed/failed `),
	} {
		if !want.MatchString(out) {
			t.Errorf("berth sites has no line matching %s", want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
