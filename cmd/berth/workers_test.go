package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/server"
)

// The workers chapter of the end-to-end tests: a worker killed, hung,
// failing to import or threaded; the queue's limits; shutdown.

// TestWorkerKilled: a worker SIGKILLed mid-request costs that request a
// 502 and nothing else.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 2", ""))
	var pid struct{ PID int }
	_, body := b.Get("/pid")
	json.Unmarshal([]byte(body), &pid)

	type result struct {
		code int
		body string
	}
	slow := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() {
			resp, err := e2e.HTTPClient.Get(b.URL("/sleep?3"))
			if err != nil {
				slow <- result{0, err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			slow <- result{resp.StatusCode, string(b)}
		}()
	}
	// Once both workers are sleeping, kill one of them.
	b.WaitStatus(5*time.Second, "both workers asleep", func(st server.Status) bool { return st.Busy == 2 })
	workers := e2e.ChildPIDs(b.Cmd.Process.Pid)
	if len(workers) != 2 {
		t.Fatalf("berth has %d worker processes, want 2", len(workers))
	}
	if err := syscall.Kill(workers[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for i := 0; i < 2; i++ {
		r := <-slow
		codes[r.code]++
	}
	if codes[502] != 1 || codes[200] != 1 {
		t.Errorf("after killing one of two busy workers: statuses %v, want one 502 and one 200", codes)
	}
	if err := b.WaitFor(`worker died while serving a request; replacing it.* status="signal: killed"`, 5*time.Second); err != nil {
		t.Error(err)
	}
	for i := 0; i < 4; i++ {
		if code, _ := b.Get("/pid"); code != 200 {
			t.Errorf("request %d after the kill = %d", i, code)
		}
	}
	if n := len(e2e.ChildPIDs(b.Cmd.Process.Pid)); n != 2 {
		t.Errorf("%d workers after the replacement, want 2", n)
	}
}

func TestImportErrorAtStartup(t *testing.T) {
	t.Parallel()
	inst := e2e.Launch(t, e2e.AppConfig(e2e.SystemPython(t), "broken:app", "workers = 2", ""))
	select {
	case <-inst.Done:
	case <-time.After(30 * time.Second):
		t.Fatal("berth did not exit on an app that fails to import")
	}
	ee, ok := inst.Err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", inst.Err)
	}
	logs := inst.Logs.String()
	for _, want := range []string{`app "probe" failed to boot`, "Traceback (most recent call last)", "broken.py", "json.decoder.JSONDecodeError"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Count(logs, "failed to boot") != 1 {
		t.Errorf("boot failure reported %d times, want once (no crash loop)", strings.Count(logs, "failed to boot"))
	}
}

func TestQueueLimits(t *testing.T) {
	t.Parallel()
	t.Run("queue full", func(t *testing.T) {
		b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  queue = 0", ""))
		busy := make(chan int)
		go func() {
			code, _ := b.Get("/sleep?2")
			busy <- code
		}()
		b.WaitStatus(5*time.Second, "the one worker asleep", func(st server.Status) bool { return st.Busy == 1 })
		code, body := b.Get("/status")
		if code != 503 || !strings.Contains(body, "queue is full") {
			t.Errorf("second request with queue = 0: %d %q, want 503", code, body)
		}
		if c := <-busy; c != 200 {
			t.Errorf("the request holding the worker got %d", c)
		}
	})
	t.Run("queue timeout", func(t *testing.T) {
		b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  queue_timeout = \"300ms\"", ""))
		busy := make(chan int)
		go func() {
			code, _ := b.Get("/sleep?2")
			busy <- code
		}()
		b.WaitStatus(5*time.Second, "the one worker asleep", func(st server.Status) bool { return st.Busy == 1 })
		code, body := b.Get("/status")
		if code != 503 || !strings.Contains(body, "queue_timeout") {
			t.Errorf("request waiting past queue_timeout: %d %q, want 503", code, body)
		}
		if c := <-busy; c != 200 {
			t.Errorf("the request holding the worker got %d", c)
		}
		// The abandoned request must not reach the worker later.
		if code, _ := b.Get("/status"); code != 418 {
			t.Errorf("next request = %d", code)
		}
	})
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  timeout = \"1s\"", ""))
	code, body := b.Get("/sleep?5")
	if code != 504 {
		t.Errorf("GET /sleep?5 with timeout 1s = %d %q, want 504", code, body)
	}
	// faulthandler's dump names the line the worker was stuck on.
	if err := b.WaitFor(`(?s)request timed out.*probe\.py", line \d+ in app`, 5*time.Second); err != nil {
		t.Errorf("no stack dump: %v", err)
	}
	if code, _ := b.Get("/status"); code != 418 {
		t.Errorf("request after the timeout = %d", code)
	}
}

// TestThreads: threads = 4 gives one worker four dispatch slots, the app
// sees wsgi.multithread, and a thread past the timeout gets its 504 and
// a stack dump of every thread.
func TestThreads(t *testing.T) {
	// Serial: four 1 s requests must end within 3.5 s.
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  threads = 4\n  timeout = \"2s\"", ""))
	_, body := b.Get("/env")
	if !strings.Contains(body, `"wsgi.multithread": true`) {
		t.Errorf("environ of a threaded worker: %s", body)
	}
	start := time.Now()
	var wg sync.WaitGroup
	pids := make(chan string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := b.Get("/sleep?1")
			if code != 200 {
				t.Errorf("GET /sleep?1 = %d", code)
			}
			pids <- e2e.RegexpFind(body, `"pid": (\d+)`)
		}()
	}
	wg.Wait()
	close(pids)
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("4 requests sleeping 1 s on 4 threads took %s: they did not run at once", d)
	}
	seen := map[string]bool{}
	for p := range pids {
		seen[p] = true
	}
	if len(seen) != 1 {
		t.Errorf("threads of one worker answered from %d processes", len(seen))
	}
	if st := b.Status(); st.Apps[0].Workers[0].Threads != 4 {
		t.Errorf("status: %+v", st.Apps[0].Workers[0])
	}
	if code, _ := b.Get("/sleep?10"); code != 504 {
		t.Errorf("a thread past its timeout: %d, want 504", code)
	}
	if err := b.WaitFor(`(?s)request timed out.*Thread 0x[0-9a-f]+.*probe\.py", line \d+ in app`, 5*time.Second); err != nil {
		t.Errorf("no stack dump of the threads: %v", err)
	}
	if code, _ := b.Get("/status"); code != 418 {
		t.Errorf("after the timeout: %d", code)
	}
}

// TestShutdown: SIGTERM lets in-flight requests finish, stops the workers
// and exits 0.
func TestShutdown(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 2", ""))
	workers := e2e.ChildPIDs(b.Cmd.Process.Pid)
	if len(workers) != 2 {
		t.Fatalf("%d workers, want 2", len(workers))
	}
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e2e.HTTPClient.Get(b.URL("/sleep?1"))
			if err != nil {
				codes <- 0
				return
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	b.WaitStatus(5*time.Second, "both requests in flight", func(st server.Status) bool { return st.Busy == 2 })
	b.Cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("in-flight request during shutdown got %d, want 200", c)
		}
	}
	select {
	case <-b.Done:
	case <-time.After(15 * time.Second):
		t.Fatal("berth did not exit after SIGTERM")
	}
	if b.Err != nil {
		t.Errorf("berth exit: %v, want 0", b.Err)
	}
	for _, pid := range workers {
		if e2e.PIDAlive(pid) {
			t.Errorf("worker %d still running after berth exited", pid)
		}
	}
	if _, err := net.DialTimeout("tcp", b.Addr, time.Second); err == nil {
		t.Errorf("listener still accepting after exit")
	}
}

// TestNoOrphansOnSIGKILL: workers notice berth is gone and exit.
func TestNoOrphansOnSIGKILL(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 2", ""))
	workers := e2e.ChildPIDs(b.Cmd.Process.Pid)
	if len(workers) != 2 {
		t.Fatalf("%d workers, want 2", len(workers))
	}
	b.Cmd.Process.Kill()
	<-b.Done
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range workers {
		for e2e.PIDAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if e2e.PIDAlive(pid) {
			t.Errorf("worker %d outlived a SIGKILLed berth", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestWorkerScheduling checks that workers run under SCHED_BATCH by
// default, every thread of a threaded worker too, and as berth itself
// with scheduling = "normal" — the policy as the kernel reports it.
func TestWorkerScheduling(t *testing.T) {
	t.Parallel()
	// policies reads the scheduling policy (field 41 of stat) of every
	// thread of pid.
	policies := func(pid int) []string {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of worker %d: %v", pid, err)
		}
		var out []string
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				t.Fatal(err)
			}
			// Fields after the command (in parentheses), from field 3 on.
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			out = append(out, f[41-3])
		}
		return out
	}
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"default", "workers = 1\n  threads = 3", "3"}, // SCHED_BATCH
		{"normal", "workers = 1\n  scheduling = \"normal\"", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", tc.extra, ""))
			got := policies(b.PID())
			for _, p := range got {
				if p != tc.want {
					t.Errorf("worker threads' policies %v, want all %s", got, tc.want)
					break
				}
			}
		})
	}
}
