package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// TestSysmonAwake: `berth serve` runs with the runtime's monitor kept awake
// (GODEBUG's schedtrace, cmd/berth/sysmon.go), set by starting itself
// again, and its workers get GODEBUG as berth was given it (set, empty or
// absent). A GODEBUG that already sets schedtrace is left alone.
func TestSysmonAwake(t *testing.T) {
	t.Parallel()
	python := e2e.SystemPython(t)
	const absent = "(absent)"
	cases := []struct {
		name       string
		godebug    string // absent: not in berth's environment
		wantBerth  string // GODEBUG in berth's environment once running
		wantWorker string // GODEBUG in its worker's
	}{
		{"absent", absent, "schedtrace=2147483647", absent},
		{"empty", "", "schedtrace=2147483647", ""},
		{"other settings", "madvdontneed=1", "madvdontneed=1,schedtrace=2147483647", "madvdontneed=1"},
		{"schedtrace given", "schedtrace=2147483000", "schedtrace=2147483000", "schedtrace=2147483000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := e2e.LaunchWith(t, e2e.AppConfig(python, "probe:app", "workers = 1", ""), func(cmd *exec.Cmd) {
				for _, kv := range os.Environ() {
					if !strings.HasPrefix(kv, "GODEBUG=") {
						cmd.Env = append(cmd.Env, kv)
					}
				}
				if c.godebug != absent {
					cmd.Env = append(cmd.Env, "GODEBUG="+c.godebug)
				}
			})
			if err := b.WaitFor(`INFO  ready `, 30*time.Second); err != nil {
				t.Fatalf("berth did not become ready: %v", err)
			}
			pid := b.Cmd.Process.Pid
			if got := environValue(t, pid, "GODEBUG", absent); got != c.wantBerth {
				t.Errorf("berth runs with GODEBUG %q, want %q", got, c.wantBerth)
			}
			workers := e2e.ChildPIDs(pid)
			if len(workers) != 1 {
				t.Fatalf("berth has children %v, want its one worker", workers)
			}
			if got := environValue(t, workers[0], "GODEBUG", absent); got != c.wantWorker {
				t.Errorf("the worker got GODEBUG %q, want %q", got, c.wantWorker)
			}
			if got := environValue(t, workers[0], "BERTH_GODEBUG_BEFORE", absent); got != absent {
				t.Errorf("the worker got berth's own BERTH_GODEBUG_BEFORE=%q", got)
			}
		})
	}
}

// environValue is name's value in the environment process pid started
// with (its execve's), or absent.
func environValue(t *testing.T, pid int, name, absent string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return absent
}
