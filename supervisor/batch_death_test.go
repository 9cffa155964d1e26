package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/journal"
)

// TestBatchDeath: requests sent to a worker in one batch behind which
// one is slow. The answer to the fast request before it is sent while the
// slow one runs (the batch is overdue and berth asks for it), and a
// worker killed in the slow request costs that request only: the one
// behind it was never started and is served by the replacement, and none
// runs twice. Before the worker marked the requests it started, berth
// took the first unanswered request for the one in progress and sent
// every later one again: the fast request's answer waited for the slow
// one, was lost with the worker, and the slow request ran a second time
// on the replacement while the one behind it waited.
func TestBatchDeath(t *testing.T) {
	py := pythonOrSkip(t)
	starts := filepath.Join(t.TempDir(), "starts")
	p := startPool(t, func(*testing.T) *Pool {
		app := testApp(py, 1)
		app.Timeout = time.Minute
		app.Env = map[string]string{"TEST_STARTS": starts}
		return NewPool(app, 1, journal.New(io.Discard, slog.LevelInfo))
	})
	waitIdle(t, p)
	held, err := p.Do(Request{Frame: request("GET", "/endless", "held"), Body: []byte("the body")})
	if err != nil {
		t.Fatal(err)
	}
	pid := held.PID
	// Whatever happens, a sleeping worker must not hold Stop for ten
	// minutes.
	t.Cleanup(func() {
		for _, s := range *p.idleOrder.Load() {
			if proc := s.current(); proc != nil {
				proc.kill()
			}
		}
	})
	fast := asyncDo(p, "/record", "fast")
	waitQueued(t, p, 1)
	slow := asyncDo(p, "/sleep", "slow")
	waitQueued(t, p, 2)
	later := asyncDo(p, "/", "later")
	waitQueued(t, p, 3)
	// A fast app by its record: the three go to the worker in one batch
	// when it is free.
	p.serviceNS.Store(int64(100 * time.Microsecond))
	held.Close()

	select {
	case r := <-fast:
		if r.err != nil || r.body != "recorded" {
			t.Fatalf("the fast request: %v %q", r.err, r.body)
		}
	case r := <-slow:
		t.Fatalf("the slow request ended before the fast one: %v %q", r.err, r.body)
	case <-time.After(20 * time.Second):
		t.Fatal("the fast request's answer was held behind the slow request batched after it")
	}
	waitFile(t, starts, "fast\nslow\n")
	syscall.Kill(pid, syscall.SIGKILL)
	select {
	case r := <-slow:
		if !errors.Is(r.err, ErrWorkerDied) {
			t.Errorf("the request in progress: %v %q, want ErrWorkerDied", r.err, r.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the request in progress got no answer 20 s after its worker was killed")
	}
	select {
	case r := <-later:
		if r.err != nil || !strings.HasPrefix(r.body, "GET / later ") || strings.Contains(r.body, fmt.Sprint(pid)) {
			t.Errorf("the request behind the one in progress: %v %q, want the replacement's answer", r.err, r.body)
		}
	case <-time.After(20 * time.Second):
		t.Error("the request behind the one in progress got no answer: the replacement runs the killed request again")
	}
	if b, _ := os.ReadFile(starts); string(b) != "fast\nslow\n" {
		t.Errorf("requests started: %q, want each once", b)
	}
}

type asyncResult struct {
	err  error
	body string
}

// asyncDo sends a request from a goroutine of its own and delivers the
// whole answer.
func asyncDo(p *Pool, path, header string) <-chan asyncResult {
	ch := make(chan asyncResult, 1)
	go func() {
		ex, err := p.Do(Request{Frame: request("GET", path, header), Body: []byte("the body")})
		if err != nil {
			ch <- asyncResult{err: err}
			return
		}
		defer ex.Close()
		body, err := bodyOf(ex)
		ch <- asyncResult{err: err, body: body}
	}()
	return ch
}

// waitQueued waits until n requests wait in p's queue.
func waitQueued(t *testing.T, p *Pool, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); p.q.len() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued after 10 s, want %d", p.q.len(), n)
		}
	}
}

// waitFile waits until the file at path holds want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if b, _ = os.ReadFile(path); string(b) == want {
			return
		}
	}
	t.Fatalf("%s holds %q after 10 s, want %q", path, b, want)
}
