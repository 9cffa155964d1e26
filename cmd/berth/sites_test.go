package main

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestSystemdSites runs the many-sites-per-host features under one
// booted systemd (one boot for all, to keep the suite's time): the
// sandbox of rendered units with the real examples, restarts that hand
// idle connections over, idle_exit, per-app limits and `berth sites`.
func TestSystemdSites(t *testing.T) {
	c := bootContainer(t)
	t.Run("sandbox: exposure at most 2.0, unprivileged, Flask and Django serve", func(t *testing.T) { testSandbox(t, c) })
}

// installConfig writes /etc/berth/NAME.hcl, renders its units with
// `berth units` inside the container (default user), adds the drop-in
// lines to its service and enables its sockets.
func (c *container) installConfig(name, hcl, dropIn string, sockets ...string) {
	c.t.Helper()
	c.write("/etc/berth/"+name+".hcl", hcl)
	c.must("/usr/local/bin/berth", "units", "--name", name, "--berth", "/usr/local/bin/berth", "--dir", "/etc/systemd/system", "/etc/berth/"+name+".hcl")
	if dropIn != "" {
		c.write("/etc/systemd/system/"+name+".service.d/test.conf", "[Service]\n"+dropIn+"\n")
	}
	c.must("systemctl", "daemon-reload")
	if len(sockets) == 0 {
		sockets = []string{name + ".socket"}
	}
	c.must(append([]string{"systemctl", "enable", "--now"}, sockets...)...)
}

var overallExposure = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// testSandbox: the units `berth units` renders, loaded by systemd, rate
// at most 2.0, run berth and its workers as a user other than root, and
// the Flask and Django examples serve under them.
func testSandbox(t *testing.T, c *container) {
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	flask, django := freePort(t), freePort(t)
	c.installConfig("ex", fmt.Sprintf(`
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
	resp, err := httpClient.PostForm(base(flask)+"/order", url.Values{"name": {"cup"}, "qty": {"3"}})
	if err != nil || resp.StatusCode/100 != 2 {
		t.Errorf("POST /order to Flask: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	out, _ := c.exec("systemd-analyze", "security", "--no-pager", "ex.service")
	m := overallExposure.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security ex.service: no rating:\n%s", out)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v > 2.0 {
		t.Errorf("systemd-analyze security rates the loaded ex.service %s, want at most 2.0:\n%s", m[1], out)
	}
	t.Logf("loaded ex.service: exposure %s", m[1])
	main := c.prop("ex.service", "MainPID")
	pids := append([]string{main}, strings.Fields(c.must("pgrep", "-P", main))...)
	for _, pid := range pids {
		// The container's pids: read in its namespaces.
		status := c.must("cat", "/proc/"+pid+"/status")
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
	resp, err := httpClient.Get(u)
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
