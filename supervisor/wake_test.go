package supervisor

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/berthd/berth/journal"
)

// serveNap is one request to /nap (a 1 ms app) served to its end; it
// returns the PID of the worker that served it.
func serveNap(t *testing.T, p *Pool) int {
	ex, err := p.Do(Request{Frame: request("GET", "/nap", "nap"), Body: []byte("the body")})
	if err != nil {
		t.Error(err)
		return 0
	}
	defer ex.Close()
	if body, err := bodyOf(ex); err != nil || body != "napped" {
		t.Errorf("/nap answered %q, %v", body, err)
	}
	return ex.PID
}

func napPool(t *testing.T) *Pool {
	py := pythonOrSkip(t)
	p := startPool(t, func(*testing.T) *Pool {
		return NewPool(testApp(py, 2), 1, journal.New(io.Discard, slog.LevelInfo))
	})
	waitIdle(t, p)
	for range 20 { // the app's pace: about 1 ms a request
		serveNap(t, p)
	}
	return p
}

// TestHoldForBusyWorker: on a fast app, a request that arrives while a
// worker is busy waits for it rather than waking the idle one, so pairs
// of overlapping requests are served by one worker.
func TestHoldForBusyWorker(t *testing.T) {
	p := napPool(t)
	same := 0
	for range 20 {
		first := make(chan int, 1)
		go func() { first <- serveNap(t, p) }()
		time.Sleep(300 * time.Microsecond) // the first is at work, not done
		second := serveNap(t, p)
		if <-first == second {
			same++
		}
	}
	if same < 15 {
		t.Errorf("%d of 20 overlapping pairs were served by one worker; want the second to wait for the busy one", same)
	}
}

// TestHoldNotBehindSlow: a held request whose worker turns out slow is
// given to an idle worker after wakeBudget, and one that arrives while
// the only busy worker has been at it longer than that is not held.
func TestHoldNotBehindSlow(t *testing.T) {
	p := napPool(t)
	slow := make(chan int, 1)
	go func() {
		ex, err := p.Do(Request{Frame: request("GET", "/nap", "long"), Body: []byte("the body")})
		if err != nil {
			t.Error(err)
			slow <- 0
			return
		}
		slow <- ex.PID
		ex.Close()
	}()
	time.Sleep(300 * time.Microsecond) // the slow one is at work, its worker busy
	start := time.Now()
	held := serveNap(t, p)
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("a request held behind a slow one was served after %v; want an idle worker woken for it", d)
	}
	time.Sleep(3 * wakeBudget)
	ex, err := p.Do(Request{Frame: request("GET", "/nap", "late"), Body: []byte("the body")})
	if err != nil {
		t.Fatal(err)
	}
	if ex.slot == nil {
		t.Errorf("a request arriving while the only busy worker was slow went through the queue; want it served directly")
	}
	ex.Close()
	if pid := <-slow; pid == held {
		t.Errorf("the held request was served by the slow one's worker %d", pid)
	}
}
