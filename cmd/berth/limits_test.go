package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/server"
)

// The apps of TestLimitsSystemd: hog allocates 200 MiB on /alloc, calm
// only answers. Each answers with its name and pid.
const limitsHog = `import os
def app(environ, start_response):
    if environ["PATH_INFO"] == "/alloc":
        b = b"x" * (200 << 20)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("hog %d" % os.getpid()).encode()]
`

const limitsCalm = `import os
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("calm %d" % os.getpid()).encode()]
`

const limitsConfig = `
listener "http" {
  address = "%s:%d"
}
app "hog" {
  module  = "hog:app"
  python  = "/usr/bin/python3"
  chdir   = "/srv/berth-limits"
  mount   = "/hog"
  workers = 2
  limits {
    memory     = "%s"
    tasks      = 64
    cpu_weight = 50
  }
}
%s`

const limitsCalmApp = `
app "calm" {
  module  = "calm:app"
  python  = "/usr/bin/python3"
  chdir   = "/srv/berth-limits"
  workers = 1
}
`

// TestLimitsSystemd: under a real systemd, a site's apps run in cgroups
// of their own below berth's delegated one, shown by systemctl status;
// their limits are in the kernel's files; a worker the OOM killer ends is
// reported as such while the other app serves on; a reload that removes
// an app removes its cgroup. It runs in the container the other systemd
// tests boot, and in a VM (internal/e2e/vm.go) with a kernel of its own:
// on a host whose cgroups are hybrid, the container's cgroup v2 tree has no
// controllers, what needs them is skipped there by name, and berth says
// once why the limits are off; the VM has them all.
func TestLimitsSystemd(t *testing.T) {
	// Serial: QEMU emulates the VM's CPUs in software, and beside the
	// parallel tests it did not boot within its 60 s.
	for _, m := range []struct {
		name   string
		listen string // the address in the machine the site's listener binds
		boot   func(t *testing.T, port int) *e2e.Container
	}{
		{"container", "127.0.0.1", func(t *testing.T, port int) *e2e.Container { return e2e.BootContainer(t) }},
		{"vm", "0.0.0.0", func(t *testing.T, port int) *e2e.Container { return e2e.BootVM(t, port) }},
	} {
		t.Run(m.name, func(t *testing.T) {
			port := e2e.FreePort(t)
			testLimits(t, m.boot(t, port), m.listen, port)
		})
	}
}

// testLimits is TestLimitsSystemd in one booted machine, whose site
// listens on listen:port there and is reached on 127.0.0.1:port here.
func testLimits(t *testing.T, c *e2e.Container, listen string, port int) {
	c.Write("/srv/berth-limits/hog.py", limitsHog)
	c.Write("/srv/berth-limits/calm.py", limitsCalm)
	c.InstallConfig("lim", fmt.Sprintf(limitsConfig, listen, port, "64MiB", limitsCalmApp), "")
	s := &e2e.Site{C: c, Name: "lim", Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if code, body, err := s.Get("/"); code != 200 || !strings.HasPrefix(body, "calm ") {
		log, _ := c.Exec("journalctl", "-u", "lim.service", "--no-pager", "-n", "12", "-o", "verbose")
		t.Fatalf("first request: %d %q %v\n%s", code, body, err, log)
	}
	s.WaitActive()
	cg := serviceCgroup(c, "lim.service")
	controllers := strings.Fields(c.Must("cat", cg+"/cgroup.controllers"))
	t.Logf("the service's cgroup %s has controllers %q", cg, controllers)
	has := func(ctrl string) bool { return strings.Contains(" "+strings.Join(controllers, " ")+" ", " "+ctrl+" ") }

	t.Run("apps are sub-groups: berth in supervisor, each app's workers in app-NAME", func(t *testing.T) {
		out, _ := c.Exec("systemctl", "status", "--no-pager", "lim.service")
		for _, g := range []string{"├─app-calm", "├─app-hog", "└─supervisor"} {
			if !strings.Contains(out, g) {
				t.Errorf("systemctl status lacks %q:\n%s", g, out)
			}
		}
		main := c.Prop("lim.service", "MainPID")
		if procs := c.Must("cat", cg+"/supervisor/cgroup.procs"); strings.TrimSpace(procs) != main {
			t.Errorf("supervisor holds %q, want berth's pid %s alone", procs, main)
		}
		hogs := appPIDs(c, "lim", "hog")
		got := strings.Fields(c.Must("cat", cg+"/app-hog/cgroup.procs"))
		slices.Sort(got)
		if len(hogs) != 2 || strings.Join(got, " ") != strings.Join(hogs, " ") {
			t.Errorf("app-hog holds %q, want hog's workers %q", got, hogs)
		}
		if got := c.Must("cat", cg+"/cgroup.procs"); strings.TrimSpace(got) != "" {
			t.Errorf("the delegated cgroup itself holds processes %q", got)
		}
	})

	t.Run("limits: in the kernel's files, or said once to be off", func(t *testing.T) {
		offs := journalGrep(c, "lim.service", "limits are off")
		if !has("memory") {
			if len(offs) != 1 || !strings.Contains(offs[0], "per-app limits are off (memory, pids, cpu)") {
				t.Errorf("want one message saying memory limits are off, got %q", offs)
			}
			t.Skipf("berth's cgroup has no memory controller here (controllers %q: a hybrid hierarchy keeps them on cgroup v1)", controllers)
		}
		if len(offs) != 0 {
			t.Errorf("limits said to be off: %q", offs)
		}
		for file, want := range map[string]string{"memory.max": "67108864", "memory.high": "max", "pids.max": "64", "cpu.weight": "50"} {
			if got := strings.TrimSpace(c.Must("cat", cg+"/app-hog/"+file)); got != want {
				t.Errorf("app-hog/%s = %q, want %s", file, got, want)
			}
		}
	})

	t.Run("a worker past memory is OOM-killed, reported, replaced; the other app serves on", func(t *testing.T) {
		if !has("memory") {
			t.Skipf("berth's cgroup has no memory controller here (controllers %q): nothing to OOM-kill by", controllers)
		}
		testOOM(t, s)
	})

	t.Run("the cgroup package against the kernel, delegated", func(t *testing.T) {
		testRealCgroup(t, c)
	})

	t.Run("a reload that removes an app removes its cgroup", func(t *testing.T) {
		c.Write("/etc/berth/lim.hcl", fmt.Sprintf(limitsConfig, listen, port, "96MiB", ""))
		c.Must("systemctl", "reload", "lim.service")
		deadline := time.Now().Add(20 * time.Second)
		for exists(c, cg+"/app-calm") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if exists(c, cg+"/app-calm") {
			t.Errorf("app-calm still there after the reload")
		}
		if out, _ := c.Exec("systemctl", "status", "--no-pager", "lim.service"); strings.Contains(out, "app-calm") || !strings.Contains(out, "app-hog") {
			t.Errorf("systemctl status after the reload:\n%s", out)
		}
		if has("memory") {
			if got := strings.TrimSpace(c.Must("cat", cg+"/app-hog/memory.max")); got != strconv.Itoa(96<<20) {
				t.Errorf("app-hog/memory.max after the reload = %s, want 96 MiB", got)
			}
		}
		if offs := journalGrep(c, "lim.service", "limits are off"); len(offs) > 1 {
			t.Errorf("limits said to be off %d times, want once at most: %q", len(offs), offs)
		}
	})
}

// testOOM: hog's /alloc allocates 200 MiB under 64 MiB: that worker, and
// only it, is killed by the kernel; the journal says so with the app's
// name; calm, under load throughout, fails nothing; the next request to
// hog is served by the replacement.
func testOOM(t *testing.T, s *e2e.Site) {
	c := s.C
	before := appPIDs(c, "lim", "hog")
	calm := appPIDs(c, "lim", "calm")
	load := startLoad(s.URL+"/", 4, status200, nil)
	start := time.Now()
	code, body, err := s.Get("/hog/alloc")
	took := time.Since(start)
	time.Sleep(time.Second) // calm's load goes on past the OOM kill
	ok, failed, samples := load.finish()
	if code != 502 {
		t.Errorf("/hog/alloc: %d %q %v, want 502", code, body, err)
	}
	t.Logf("/hog/alloc answered %d after %s; calm served %d requests meanwhile, %d failed %q", code, took.Round(time.Millisecond), ok, failed, samples)
	if failed > 0 || ok == 0 {
		t.Errorf("calm: %d served, %d failed %q", ok, failed, samples)
	}
	kills := journalGrep(c, "lim.service", "worker killed by the OOM killer: memory limit 64MiB")
	if len(kills) != 1 || !strings.Contains(kills[0], "BERTH_APP=hog") {
		t.Errorf("journal: %q, want one OOM kill of app hog", kills)
	}
	code, body, err = s.Get("/hog/")
	after := appPIDs(c, "lim", "hog")
	kept := 0
	for _, p := range after {
		if strings.Contains(" "+strings.Join(before, " ")+" ", " "+p+" ") {
			kept++
		}
	}
	if code != 200 || !strings.HasPrefix(body, "hog ") || len(after) != 2 || kept != 1 {
		t.Errorf("after the kill: /hog/ %d %q %v; hog's workers %q, before %q (want one kept, one new)", code, body, err, after, before)
	}
	if now := appPIDs(c, "lim", "calm"); strings.Join(now, " ") != strings.Join(calm, " ") {
		t.Errorf("calm's workers %q, before %q", now, calm)
	}
	if n := workerExits(c, "lim", "hog", "oom"); n != 1 {
		t.Errorf("berth_worker_exits_total{app=hog,cause=oom} = %v, want 1", n)
	}
	if n := workerExits(c, "lim", "hog", "crash"); n != 0 {
		t.Errorf("berth_worker_exits_total{app=hog,cause=crash} = %v, want 0", n)
	}
}

// workerExits is berth_worker_exits_total of app and cause, from `berth
// status --json`.
func workerExits(c *e2e.Container, site, app, cause string) float64 {
	c.T.Helper()
	var st struct{ Berth server.Status }
	out := c.Must("/usr/local/bin/berth", "status", "--json", "/etc/berth/"+site+".hcl")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.T.Fatalf("berth status --json: %v\n%s", err, out)
	}
	for _, f := range st.Berth.Metrics {
		for _, sm := range f.Samples {
			if f.Name == "berth_worker_exits_total" && sm.Labels["app"] == app && sm.Labels["cause"] == cause && sm.Value != nil {
				return *sm.Value
			}
		}
	}
	return -1
}

// testRealCgroup runs the cgroup package's TestRealCgroup as a service of
// its own with Delegate=yes, as berth runs, under an unprivileged user.
func testRealCgroup(t *testing.T, c *e2e.Container) {
	bin := filepath.Join(c.Root, "usr/local/bin/cgroup.test")
	if out, err := exec.Command("go", "test", "-c", "-o", bin, "../../cgroup").CombinedOutput(); err != nil {
		t.Fatalf("building the cgroup package's tests: %v\n%s", err, out)
	}
	out, err := c.Exec("systemd-run", "--wait", "--pipe", "-q", "-p", "Delegate=yes", "-p", "DynamicUser=yes",
		"/usr/local/bin/cgroup.test", "-test.run", "TestRealCgroup", "-test.v")
	t.Logf("TestRealCgroup, delegated:\n%s", out)
	if err != nil || !strings.Contains(out, "--- PASS: TestRealCgroup") {
		t.Errorf("TestRealCgroup did not pass under Delegate=yes: %v", err)
	}
	if !strings.Contains(out, "--- PASS: TestRealCgroup/clone_into") {
		t.Errorf("TestRealCgroup did not start a process in its group")
	}
}

// serviceCgroup is the directory of unit's cgroup in the container's
// cgroup v2 hierarchy (unified, or hybrid's /sys/fs/cgroup/unified).
func serviceCgroup(c *e2e.Container, unit string) string {
	c.T.Helper()
	root := "/sys/fs/cgroup"
	if !exists(c, root+"/cgroup.controllers") {
		root += "/unified"
	}
	return root + c.Prop(unit, "ControlGroup")
}

func exists(c *e2e.Container, path string) bool {
	_, err := c.Exec("test", "-e", path)
	return err == nil
}

// appPIDs are the pids of app's current workers, from `berth status`.
func appPIDs(c *e2e.Container, site, app string) []string {
	c.T.Helper()
	var st struct {
		Berth struct {
			Apps []struct {
				Name    string
				Workers []struct{ PID int }
			}
		}
	}
	out := c.Must("/usr/local/bin/berth", "status", "--json", "/etc/berth/"+site+".hcl")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.T.Fatalf("berth status --json: %v\n%s", err, out)
	}
	var pids []string
	for _, a := range st.Berth.Apps {
		if a.Name == app {
			for _, w := range a.Workers {
				pids = append(pids, strconv.Itoa(w.PID))
			}
		}
	}
	slices.Sort(pids)
	return pids
}

// journalGrep returns unit's journal entries whose message contains
// text, each as "MESSAGE BERTH_APP=app".
func journalGrep(c *e2e.Container, unit, text string) []string {
	c.Exec("journalctl", "--sync")
	out, _ := c.Exec("journalctl", "-u", unit, "-o", "json", "--no-pager")
	var found []string
	for _, line := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if msg, _ := e["MESSAGE"].(string); strings.Contains(msg, text) {
			app, _ := e["BERTH_APP"].(string)
			found = append(found, msg+" BERTH_APP="+app)
		}
	}
	return found
}
