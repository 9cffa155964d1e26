package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// The tests in this file run berth under a real systemd: a container
// booted with systemd-nspawn on an overlay of this machine's root (the
// recipe in DESIGN.md). They need root and systemd-nspawn (Debian's
// systemd-container) and skip, saying so, without them.

func TestSystemd(t *testing.T) {
	t.Parallel()
	c := e2e.BootContainer(t)

	t.Run("socket activation: listening first, the first connection starts berth", func(t *testing.T) {
		s := c.Install("act", "", "")
		// The rendered socket defers accepting to the first bytes, as a
		// socket berth binds does (activation.DeferAccept).
		if v := c.Prop("act.socket", "DeferAcceptUSec"); v != "5s" {
			t.Errorf("act.socket DeferAcceptUSec = %q, want 5s", v)
		}
		if st := c.Prop("act.service", "ActiveState"); st != "inactive" {
			t.Fatalf("act.service is %s before any connection, want inactive", st)
		}
		code, body, err := s.Get("/")
		if err != nil || code != 200 || !strings.HasPrefix(body, "v1 ") {
			t.Fatalf("first request through the socket: %d %q %v", code, body, err)
		}
		s.WaitActive()
		if out, _ := c.Exec("/usr/local/bin/berth", "status", "/etc/berth/act.hcl"); !strings.Contains(out, "listener http on 127.0.0.1:") ||
			!strings.Contains(out, "passed by systemd") || !strings.Contains(out, "systemd: act.service active (running)") {
			t.Errorf("berth status in the unit:\n%s", out)
		}
	})

	t.Run("READY only once the workers are ready", func(t *testing.T) {
		s := c.Install("slow", `BOOT_DELAY = "3"`, "")
		c.Must("systemctl", "start", "--no-block", "slow.service")
		time.Sleep(time.Second) // a second into the app's 3 s import
		if st := c.Prop("slow.service", "ActiveState"); st != "activating" {
			t.Errorf("slow.service is %s while its app imports, want activating", st)
		}
		s.WaitActive()
		if code, _, err := s.Get("/"); code != 200 || err != nil {
			t.Errorf("after READY: %d %v", code, err)
		}
	})

	t.Run("EXTEND_TIMEOUT keeps a slow boot alive past TimeoutStartSec", func(t *testing.T) {
		s := c.Install("ext", `BOOT_DELAY = "6"`, "TimeoutStartSec=3s")
		c.Must("systemctl", "start", "--no-block", "ext.service")
		s.WaitActive()
		if code, _, err := s.Get("/"); code != 200 || err != nil {
			t.Errorf("after a 6 s boot with TimeoutStartSec=3s: %d %v", code, err)
		}
	})

	t.Run("STATUS is shown by systemctl status", func(t *testing.T) {
		s := c.Install("stat", "", "")
		s.Get("/")
		s.WaitActive()
		var out string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			out, _ = c.Exec("systemctl", "status", "--no-pager", "stat.service")
			if strings.Contains(out, "Status: \"1 app(s), 2/2 workers ready") {
				return
			}
		}
		t.Errorf("no STATUS line in systemctl status:\n%s", out)
	})

	t.Run("reload under load, and a failed reload keeps the old config", func(t *testing.T) {
		s := c.Install("rel", "", "")
		s.Get("/")
		s.WaitActive()
		load := startLoad(s.URL+"/", 4, status200, nil)
		for i := 2; i <= 6; i++ {
			c.Write("/srv/berth-test/app.py", fmt.Sprintf(e2e.ContainerApp, fmt.Sprintf("v%d", i)))
			c.Must("systemctl", "reload", "rel.service")
			if _, body, _ := s.Get("/"); !strings.HasPrefix(body, fmt.Sprintf("v%d ", i)) {
				t.Errorf("after reload %d: %q", i, body)
			}
		}
		cfg, _ := os.ReadFile(filepath.Join(c.Root, "etc/berth/rel.hcl"))
		c.Write("/etc/berth/rel.hcl", string(cfg)+"\nbogus = 1\n")
		if out, err := c.Exec("systemctl", "reload", "rel.service"); err == nil {
			t.Errorf("systemctl reload with a broken config succeeded:\n%s", out)
		}
		if _, body, _ := s.Get("/"); !strings.HasPrefix(body, "v6 ") {
			t.Errorf("after the failed reload: %q, want the old config still serving v6", body)
		}
		if st := c.Prop("rel.service", "ActiveState"); st != "active" {
			t.Errorf("after the failed reload the service is %s", st)
		}
		out, _ := c.Exec("journalctl", "-u", "rel.service", "--no-pager")
		if !strings.Contains(out, "Unsupported argument") {
			t.Errorf("the diagnostics of the failed reload are not in the journal:\n%s", out)
		}
		c.Write("/etc/berth/rel.hcl", string(cfg))
		c.Write("/srv/berth-test/app.py", fmt.Sprintf(e2e.ContainerApp, "v1"))
		ok, failed, samples := load.finish()
		t.Logf("systemctl reload ×6 under load: %d ok, %d failed", ok, failed)
		if failed != 0 || ok == 0 {
			t.Errorf("%d requests failed during reloads: %v", failed, samples)
		}
	})

	t.Run("restart under load loses nothing: the socket queues", func(t *testing.T) {
		s := c.Install("rst", "", "")
		s.Get("/")
		s.WaitActive()
		load := startLoad(s.URL+"/", 4, status200, nil)
		for i := 0; i < 3; i++ {
			time.Sleep(300 * time.Millisecond) // load between restarts
			c.Must("systemctl", "restart", "rst.service")
		}
		time.Sleep(500 * time.Millisecond) // load after the last restart
		ok, failed, samples := load.finish()
		t.Logf("systemctl restart ×3 under load: %d ok, %d failed", ok, failed)
		if failed != 0 || ok == 0 {
			t.Errorf("%d requests failed across restarts: %v", failed, samples)
		}
	})

	t.Run("stop drains requests in flight", func(t *testing.T) {
		s := c.Install("stp", "", "")
		s.Get("/")
		s.WaitActive()
		var wg sync.WaitGroup
		var code int
		var err error
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, err = s.Get("/sleep?2")
		}()
		e2e.WaitUntil(t, 10*time.Second, "the request on a worker", func() bool { return s.Status().Busy == 1 })
		c.Must("systemctl", "stop", "stp.service", "stp.socket")
		wg.Wait()
		if code != 200 || err != nil {
			t.Errorf("request in flight during stop: %d %v", code, err)
		}
		if st := c.Prop("stp.service", "ActiveState"); st != "inactive" {
			t.Errorf("after stop: %s (result %s)", st, c.Prop("stp.service", "Result"))
		}
	})

	t.Run("the watchdog restarts a wedged supervisor", func(t *testing.T) {
		s := c.Install("wd", "", "WatchdogSec=3s\nEnvironment=BERTH_TEST_HOOKS=1\nRestartSec=100ms")
		s.Get("/")
		s.WaitActive()
		pid := c.Prop("wd.service", "MainPID")
		c.Must("systemctl", "kill", "--kill-whom=main", "-s", "USR2", "wd.service")
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && c.Prop("wd.service", "NRestarts") == "0" {
			time.Sleep(200 * time.Millisecond)
		}
		if n := c.Prop("wd.service", "NRestarts"); n == "0" {
			t.Fatalf("no restart after the supervisor wedged")
		}
		s.WaitActive()
		if now := c.Prop("wd.service", "MainPID"); now == pid {
			t.Errorf("MainPID unchanged (%s) after a watchdog restart", pid)
		}
		out, _ := c.Exec("journalctl", "-u", "wd.service", "--no-pager")
		if !strings.Contains(out, "Watchdog timeout") {
			t.Errorf("the journal does not show a watchdog timeout:\n%s", out)
		}
		if code, _, err := s.Get("/"); code != 200 || err != nil {
			t.Errorf("after the watchdog restart: %d %v", code, err)
		}
	})

	t.Run("journal records carry fields", func(t *testing.T) {
		s := c.Install("jr", "", "")
		_, body, _ := s.Get("/")
		s.WaitActive()
		reqID := strings.Fields(body)[2]
		s.Get("/raise")
		s.Get("/log")
		var access, traceback, logging map[string]any
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && (access == nil || traceback == nil || logging == nil); time.Sleep(200 * time.Millisecond) {
			for _, e := range s.Journal() {
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
