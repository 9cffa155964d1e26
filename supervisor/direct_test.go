package supervisor

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/journal"
)

func startPool(t *testing.T, app func(*testing.T) *Pool) *Pool {
	t.Helper()
	p := app(t)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background()) })
	return p
}

func pythonOrSkip(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Skip("the supervisor tests need /usr/bin/python3")
	}
	return "/usr/bin/python3"
}

// TestDirectAndQueued: a request that finds the worker idle is served on
// the caller's goroutine; one that arrives while it is busy waits in the
// queue and is served as soon as the first is done (the lane goes back to
// the slot that asked for it); then requests go direct again.
func TestDirectAndQueued(t *testing.T) {
	py := pythonOrSkip(t)
	p := startPool(t, func(*testing.T) *Pool {
		return NewPool(testApp(py, 1), 1, journal.New(io.Discard, slog.LevelInfo))
	})
	waitIdle(t, p)
	first, err := p.Do(Request{Frame: request("GET", "/endless", "held"), Body: []byte("the body")})
	if err != nil {
		t.Fatal(err)
	}
	if first.slot == nil {
		first.Close()
		t.Fatalf("a request to an idle worker went through the queue")
	}
	type result struct {
		ex   *Exchange
		body string
	}
	second := make(chan result, 1)
	go func() {
		ex, err := p.Do(Request{Frame: request("GET", "/", "second"), Body: []byte("the body")})
		if err != nil {
			t.Error(err)
			second <- result{}
			return
		}
		second <- result{ex, readAll(t, ex)}
	}()
	select {
	case <-second:
		t.Fatal("a request was served while the only worker was busy")
	case <-time.After(300 * time.Millisecond):
	}
	first.Close() // cancels the endless body
	r := <-second
	if r.ex == nil {
		return
	}
	if r.ex.slot != nil || !strings.HasPrefix(r.body, "GET / second ") {
		t.Errorf("the waiting request: direct %v, body %q; want it from the queue", r.ex.slot != nil, r.body)
	}
	r.ex.Close()
	waitIdle(t, p)
	ex, body := do(t, p, "GET", "/", "again")
	ex.Close()
	if ex.slot == nil || !strings.HasPrefix(body, "GET / again ") {
		t.Errorf("after the queue emptied: direct %v, body %q; want direct", ex.slot != nil, body)
	}
}

// waitIdle waits until a worker of p is lent for direct requests.
func waitIdle(t *testing.T, p *Pool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range *p.idleOrder.Load() {
			if s.owner.Load() == laneIdle {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no worker became idle within 5 s")
}

// TestDirectWorkerGone: a worker killed while idle costs the next request
// nothing: the request finds it gone and waits for the replacement.
func TestDirectWorkerGone(t *testing.T) {
	py := pythonOrSkip(t)
	p := startPool(t, func(*testing.T) *Pool {
		return NewPool(testApp(py, 1), 1, journal.New(io.Discard, slog.LevelInfo))
	})
	ex, before := do(t, p, "GET", "/", "x")
	ex.Close()
	syscall.Kill(ex.PID, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	ex, after := do(t, p, "GET", "/", "x")
	ex.Close()
	if before == after || !strings.HasPrefix(after, "GET / x ") {
		t.Errorf("before the kill %q, after %q: want a new worker's answer", before, after)
	}
}

// TestDirectRecycle: max_requests holds for requests served directly.
func TestDirectRecycle(t *testing.T) {
	py := pythonOrSkip(t)
	p := startPool(t, func(*testing.T) *Pool {
		app := testApp(py, 1)
		app.MaxRequests = 3
		return NewPool(app, 1, journal.New(io.Discard, slog.LevelInfo))
	})
	pids := map[int]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(pids) < 3 && time.Now().Before(deadline) {
		ex, _ := do(t, p, "GET", "/", "x")
		pids[ex.PID] = true
		ex.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) < 3 {
		t.Errorf("requests with max_requests = 3 for 20 s were served by %d worker(s)", len(pids))
	}
}
