package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/server"
)

// The tests in this file run berth under a real systemd: a container
// booted with systemd-nspawn on an overlay of this machine's root (the
// recipe in DESIGN.md). They need root and systemd-nspawn (Debian's
// systemd-container) and skip, saying so, without them.

// container is one booted systemd in an nspawn container. It shares the
// host's network, so its sockets are reachable on 127.0.0.1.
type container struct {
	t    *testing.T
	dir  string
	root string
	cmd  *exec.Cmd
	pid  int // the container's systemd, as the host sees it
	out  *e2e.SyncBuffer
	vm   *vm // set when it is a VM (vm_test.go): commands go to its agent
}

const containerApp = `import logging, os, sys, time
VERSION = %q
time.sleep(float(os.environ.get("BOOT_DELAY", "0")))
log = logging.getLogger("shop.orders")

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    if path == "/raise":
        raise KeyError("no such order")
    if path == "/log":
        log.warning("stock is low for item %%s", 42)
    body = ("%%s %%d %%s" %% (VERSION, os.getpid(), environ.get("REQUEST_ID"))).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
`

// machines numbers the containers this process boots.
var machines atomic.Int64

// bootContainer boots systemd in a container with berth installed at
// /usr/local/bin/berth and the test app at /srv/berth-test/app.py.
func bootContainer(t *testing.T) *container {
	t.Helper()
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Skip("the systemd tests need systemd-nspawn: apt-get install systemd-container")
	}
	c := newRoot(t)
	// A name of its own: containers of tests running in parallel boot
	// side by side.
	machine := fmt.Sprintf("berth-test-%d-%d", os.Getpid(), machines.Add(1))
	c.cmd = exec.Command("systemd-nspawn", "--register=no", "-D", c.root, "--boot", "--machine="+machine, "--keep-unit", "--console=pipe")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting systemd-nspawn: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for c.pid == 0 && time.Now().Before(deadline) {
		c.pid = findInit(c.cmd.Process.Pid)
		time.Sleep(100 * time.Millisecond)
	}
	if c.pid == 0 {
		t.Fatalf("no systemd in the container after 60 s:\n%s", c.out)
	}
	if !c.waitBooted(deadline) {
		t.Fatalf("the container's systemd did not finish booting in 60 s:\n%s", c.out)
	}
	return c
}

// waitBooted waits until the booted systemd says it is running
// (degraded counts: a host unit failing in the overlay is not ours).
func (c *container) waitBooted(deadline time.Time) bool {
	for time.Now().Before(deadline) {
		out, _ := c.exec("systemctl", "is-system-running")
		if s := strings.TrimSpace(out); s == "running" || s == "degraded" {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// newRoot mounts an overlay of this machine's root for a container or a
// VM to boot, with berth installed at /usr/local/bin/berth, the test app
// at /srv/berth-test/app.py and a default target of its own.
func newRoot(t *testing.T) *container {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the systemd tests need root (to mount an overlay and run systemd-nspawn)")
	}
	if _, err := os.Stat("/usr/lib/systemd/systemd"); err != nil {
		t.Skip("the systemd tests need systemd installed at /usr/lib/systemd/systemd")
	}
	dir, err := os.MkdirTemp("/var/tmp", "berth-systemd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &container{t: t, dir: dir, root: filepath.Join(dir, "root"), out: &e2e.SyncBuffer{}}
	for _, d := range []string{"up", "work", "root"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	mount := exec.Command("mount", "-t", "overlay", "overlay", "-o",
		fmt.Sprintf("lowerdir=/,upperdir=%s/up,workdir=%s/work", dir, dir), c.root)
	if out, err := mount.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Skipf("the systemd tests need an overlay mount of /, which failed here: %v: %s", err, out)
	}
	t.Cleanup(c.destroy)

	// Boot to a target of our own: basic.target brings sockets and D-Bus,
	// and none of the host's services (which could take our ports).
	c.write("/etc/systemd/system/berth-test.target", "[Unit]\nDescription=berth test target\nRequires=basic.target\nAfter=basic.target\nAllowIsolate=yes\n")
	os.Remove(filepath.Join(c.root, "etc/systemd/system/default.target"))
	if err := os.Symlink("/etc/systemd/system/berth-test.target", filepath.Join(c.root, "etc/systemd/system/default.target")); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(e2e.Bin)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(c.root, "usr/local/bin"), 0o755)
	if err := os.WriteFile(filepath.Join(c.root, "usr/local/bin/berth"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	c.write("/srv/berth-test/app.py", fmt.Sprintf(containerApp, "v1"))
	return c
}

// findInit returns the pid of the systemd that nspawn (pid) started.
func findInit(pid int) int {
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, child := range e2e.ChildPIDs(p) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
			if strings.HasPrefix(string(b), "/usr/lib/systemd/systemd") || strings.HasPrefix(string(b), "/sbin/init") {
				return child
			}
			queue = append(queue, child)
		}
	}
	return 0
}

// write puts a file into the container's root.
func (c *container) write(path, content string) {
	c.t.Helper()
	if c.vm != nil && c.vm.conn != nil {
		if err := c.vm.write(path, content); err != nil {
			c.t.Fatalf("writing %s in the VM: %v", path, err)
		}
		return
	}
	full := filepath.Join(c.root, path)
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// exec runs a command inside the container.
func (c *container) exec(args ...string) (string, error) {
	if c.vm != nil {
		return c.vm.run(args)
	}
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.pid), "-a"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// must runs a command inside the container and fails the test if it fails.
func (c *container) must(args ...string) string {
	c.t.Helper()
	out, err := c.exec(args...)
	if err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// prop reads one property of a unit.
func (c *container) prop(unit, name string) string {
	out, _ := c.exec("systemctl", "show", "-p", name, "--value", unit)
	return strings.TrimSpace(out)
}

func (c *container) destroy() {
	switch {
	case c.vm != nil:
		c.vm.close() // a throwaway machine: no need to wait for a poweroff
	case c.pid != 0:
		c.exec("systemctl", "poweroff")
	}
	if c.cmd != nil && c.cmd.Process != nil {
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	}
	if err := exec.Command("umount", c.root).Run(); err != nil {
		exec.Command("umount", "-l", c.root).Run()
	}
	os.RemoveAll(c.dir)
	if c.t.Failed() {
		c.t.Logf("container console:\n%s", c.out)
	}
}

// site is one berth service installed in the container with units that
// `berth units` rendered there.
type site struct {
	c    *container
	name string
	port int
	url  string
}

// install writes a configuration for the test app, renders its units with
// `berth units` inside the container, adds drop-in lines, and enables the
// socket.
func (c *container) install(name, env string, dropIn string) *site {
	c.t.Helper()
	port := e2e.FreePort(c.t)
	c.write("/etc/berth/"+name+".hcl", fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:%d"
}
app "shop" {
  module  = "app:app"
  python  = "/usr/bin/python3"
  chdir   = "/srv/berth-test"
  workers = 2
  env     = { PYTHONDONTWRITEBYTECODE = "1", %s }
}
`, port, env))
	c.must("/usr/local/bin/berth", "units", "--name", name, "--berth", "/usr/local/bin/berth", "--dir", "/etc/systemd/system", "/etc/berth/"+name+".hcl")
	if dropIn != "" {
		c.write("/etc/systemd/system/"+name+".service.d/test.conf", "[Service]\n"+dropIn+"\n")
	}
	c.must("systemctl", "daemon-reload")
	c.must("systemctl", "enable", "--now", name+".socket")
	return &site{c: c, name: name, port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
}

func (s *site) get(path string) (int, string, error) {
	resp, err := e2e.HTTPClient.Get(s.url + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// status is the site's `berth status --json`, asked inside the container.
func (s *site) status() server.Status {
	s.c.t.Helper()
	var st struct{ Berth server.Status }
	out := s.c.must("/usr/local/bin/berth", "status", "--json", "/etc/berth/"+s.name+".hcl")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		s.c.t.Fatalf("berth status --json: %v\n%s", err, out)
	}
	return st.Berth
}

func (s *site) waitActive() {
	s.c.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if s.c.prop(s.name+".service", "ActiveState") == "active" {
			return
		}
	}
	out, _ := s.c.exec("systemctl", "status", "--no-pager", s.name+".service")
	s.c.t.Fatalf("%s.service did not become active:\n%s", s.name, out)
}

// journal returns the service's journal entries as JSON objects.
func (s *site) journal() []map[string]any {
	s.c.exec("journalctl", "--sync")
	out, _ := s.c.exec("journalctl", "-u", s.name+".service", "-o", "json", "--no-pager")
	var entries []map[string]any
	for _, line := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			entries = append(entries, e)
		}
	}
	return entries
}

func TestSystemd(t *testing.T) {
	t.Parallel()
	c := bootContainer(t)

	t.Run("socket activation: listening first, the first connection starts berth", func(t *testing.T) {
		s := c.install("act", "", "")
		// The rendered socket defers accepting to the first bytes, as a
		// socket berth binds does (activation.DeferAccept).
		if v := c.prop("act.socket", "DeferAcceptUSec"); v != "5s" {
			t.Errorf("act.socket DeferAcceptUSec = %q, want 5s", v)
		}
		if st := c.prop("act.service", "ActiveState"); st != "inactive" {
			t.Fatalf("act.service is %s before any connection, want inactive", st)
		}
		code, body, err := s.get("/")
		if err != nil || code != 200 || !strings.HasPrefix(body, "v1 ") {
			t.Fatalf("first request through the socket: %d %q %v", code, body, err)
		}
		s.waitActive()
		if out, _ := c.exec("/usr/local/bin/berth", "status", "/etc/berth/act.hcl"); !strings.Contains(out, "listener http on 127.0.0.1:") ||
			!strings.Contains(out, "passed by systemd") || !strings.Contains(out, "systemd: act.service active (running)") {
			t.Errorf("berth status in the unit:\n%s", out)
		}
	})

	t.Run("READY only once the workers are ready", func(t *testing.T) {
		s := c.install("slow", `BOOT_DELAY = "3"`, "")
		c.must("systemctl", "start", "--no-block", "slow.service")
		time.Sleep(time.Second) // a second into the app's 3 s import
		if st := c.prop("slow.service", "ActiveState"); st != "activating" {
			t.Errorf("slow.service is %s while its app imports, want activating", st)
		}
		s.waitActive()
		if code, _, err := s.get("/"); code != 200 || err != nil {
			t.Errorf("after READY: %d %v", code, err)
		}
	})

	t.Run("EXTEND_TIMEOUT keeps a slow boot alive past TimeoutStartSec", func(t *testing.T) {
		s := c.install("ext", `BOOT_DELAY = "6"`, "TimeoutStartSec=3s")
		c.must("systemctl", "start", "--no-block", "ext.service")
		s.waitActive()
		if code, _, err := s.get("/"); code != 200 || err != nil {
			t.Errorf("after a 6 s boot with TimeoutStartSec=3s: %d %v", code, err)
		}
	})

	t.Run("STATUS is shown by systemctl status", func(t *testing.T) {
		s := c.install("stat", "", "")
		s.get("/")
		s.waitActive()
		var out string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			out, _ = c.exec("systemctl", "status", "--no-pager", "stat.service")
			if strings.Contains(out, "Status: \"1 app(s), 2/2 workers ready") {
				return
			}
		}
		t.Errorf("no STATUS line in systemctl status:\n%s", out)
	})

	t.Run("reload under load, and a failed reload keeps the old config", func(t *testing.T) {
		s := c.install("rel", "", "")
		s.get("/")
		s.waitActive()
		load := startLoad(s.url+"/", 4, status200, nil)
		for i := 2; i <= 6; i++ {
			c.write("/srv/berth-test/app.py", fmt.Sprintf(containerApp, fmt.Sprintf("v%d", i)))
			c.must("systemctl", "reload", "rel.service")
			if _, body, _ := s.get("/"); !strings.HasPrefix(body, fmt.Sprintf("v%d ", i)) {
				t.Errorf("after reload %d: %q", i, body)
			}
		}
		cfg, _ := os.ReadFile(filepath.Join(c.root, "etc/berth/rel.hcl"))
		c.write("/etc/berth/rel.hcl", string(cfg)+"\nbogus = 1\n")
		if out, err := c.exec("systemctl", "reload", "rel.service"); err == nil {
			t.Errorf("systemctl reload with a broken config succeeded:\n%s", out)
		}
		if _, body, _ := s.get("/"); !strings.HasPrefix(body, "v6 ") {
			t.Errorf("after the failed reload: %q, want the old config still serving v6", body)
		}
		if st := c.prop("rel.service", "ActiveState"); st != "active" {
			t.Errorf("after the failed reload the service is %s", st)
		}
		out, _ := c.exec("journalctl", "-u", "rel.service", "--no-pager")
		if !strings.Contains(out, "Unsupported argument") {
			t.Errorf("the diagnostics of the failed reload are not in the journal:\n%s", out)
		}
		c.write("/etc/berth/rel.hcl", string(cfg))
		c.write("/srv/berth-test/app.py", fmt.Sprintf(containerApp, "v1"))
		ok, failed, samples := load.finish()
		t.Logf("systemctl reload ×6 under load: %d ok, %d failed", ok, failed)
		if failed != 0 || ok == 0 {
			t.Errorf("%d requests failed during reloads: %v", failed, samples)
		}
	})

	t.Run("restart under load loses nothing: the socket queues", func(t *testing.T) {
		s := c.install("rst", "", "")
		s.get("/")
		s.waitActive()
		load := startLoad(s.url+"/", 4, status200, nil)
		for i := 0; i < 3; i++ {
			time.Sleep(300 * time.Millisecond) // load between restarts
			c.must("systemctl", "restart", "rst.service")
		}
		time.Sleep(500 * time.Millisecond) // load after the last restart
		ok, failed, samples := load.finish()
		t.Logf("systemctl restart ×3 under load: %d ok, %d failed", ok, failed)
		if failed != 0 || ok == 0 {
			t.Errorf("%d requests failed across restarts: %v", failed, samples)
		}
	})

	t.Run("stop drains requests in flight", func(t *testing.T) {
		s := c.install("stp", "", "")
		s.get("/")
		s.waitActive()
		var wg sync.WaitGroup
		var code int
		var err error
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, err = s.get("/sleep?2")
		}()
		e2e.WaitUntil(t, 10*time.Second, "the request on a worker", func() bool { return s.status().Busy == 1 })
		c.must("systemctl", "stop", "stp.service", "stp.socket")
		wg.Wait()
		if code != 200 || err != nil {
			t.Errorf("request in flight during stop: %d %v", code, err)
		}
		if st := c.prop("stp.service", "ActiveState"); st != "inactive" {
			t.Errorf("after stop: %s (result %s)", st, c.prop("stp.service", "Result"))
		}
	})

	t.Run("the watchdog restarts a wedged supervisor", func(t *testing.T) {
		s := c.install("wd", "", "WatchdogSec=3s\nEnvironment=BERTH_TEST_HOOKS=1\nRestartSec=100ms")
		s.get("/")
		s.waitActive()
		pid := c.prop("wd.service", "MainPID")
		c.must("systemctl", "kill", "--kill-whom=main", "-s", "USR2", "wd.service")
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && c.prop("wd.service", "NRestarts") == "0" {
			time.Sleep(200 * time.Millisecond)
		}
		if n := c.prop("wd.service", "NRestarts"); n == "0" {
			t.Fatalf("no restart after the supervisor wedged")
		}
		s.waitActive()
		if now := c.prop("wd.service", "MainPID"); now == pid {
			t.Errorf("MainPID unchanged (%s) after a watchdog restart", pid)
		}
		out, _ := c.exec("journalctl", "-u", "wd.service", "--no-pager")
		if !strings.Contains(out, "Watchdog timeout") {
			t.Errorf("the journal does not show a watchdog timeout:\n%s", out)
		}
		if code, _, err := s.get("/"); code != 200 || err != nil {
			t.Errorf("after the watchdog restart: %d %v", code, err)
		}
	})

	t.Run("journal records carry fields", func(t *testing.T) {
		s := c.install("jr", "", "")
		_, body, _ := s.get("/")
		s.waitActive()
		reqID := strings.Fields(body)[2]
		s.get("/raise")
		s.get("/log")
		var access, traceback, logging map[string]any
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && (access == nil || traceback == nil || logging == nil); time.Sleep(200 * time.Millisecond) {
			for _, e := range s.journal() {
				switch {
				case e["REQUEST_ID"] == reqID && e["HTTP_STATUS"] == "200":
					access = e
				case strings.Contains(fmt.Sprint(e["MESSAGE"]), "KeyError: 'no such order'"):
					traceback = e
				case e["PYTHON_LOGGER"] == "shop.orders":
					logging = e
				}
			}
		}
		if access == nil {
			t.Fatalf("no access record with REQUEST_ID=%s", reqID)
		}
		for k, want := range map[string]string{"SYSLOG_IDENTIFIER": "berth", "HTTP_METHOD": "GET", "HTTP_PATH": "/", "BERTH_APP": "shop", "REMOTE_ADDR": "127.0.0.1", "PRIORITY": "6"} {
			if access[k] != want {
				t.Errorf("access record %s = %v, want %q", k, access[k], want)
			}
		}
		for _, k := range []string{"DURATION_USEC", "BYTES"} {
			if _, ok := access[k]; !ok {
				t.Errorf("access record lacks %s", k)
			}
		}
		if traceback == nil {
			t.Fatal("no traceback record")
		}
		msg := fmt.Sprint(traceback["MESSAGE"])
		if traceback["PRIORITY"] != "3" || !strings.Contains(msg, "Traceback (most recent call last)") || traceback["BERTH_WORKER_PID"] == nil || traceback["BERTH_GENERATION"] != "1" {
			t.Errorf("traceback record: %v", traceback)
		}
		if logging == nil {
			t.Fatal("no record of Python's logging module")
		}
		if logging["PRIORITY"] != "4" || logging["MESSAGE"] != "stock is low for item 42" || logging["BERTH_WORKER_PID"] == nil {
			t.Errorf("logging record: %v", logging)
		}
	})
}
