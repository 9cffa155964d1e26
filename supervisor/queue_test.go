package supervisor

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/berthd/berth/units"
)

// TestQueue checks the ring's order across growth and wrap-around, its
// size limit (a blocked lane making room even at size 0), batches and
// the expiry of the oldest requests.
func TestQueue(t *testing.T) {
	jobsAt := func(queued ...int64) []*job {
		var js []*job
		for _, q := range queued {
			js = append(js, &job{queued: q})
		}
		return js
	}
	t.Run("order", func(t *testing.T) {
		q := newQueue(100)
		var in []*job
		// Push and pop unevenly, so that the ring wraps and grows with
		// requests in it.
		for round := 0; round < 5; round++ {
			for _, j := range jobsAt(make([]int64, 20)...) {
				if !q.push(j) {
					t.Fatalf("push refused with %d queued", q.len())
				}
				in = append(in, j)
			}
			for k := 0; k < 13; k++ {
				if got := q.pop(); got != in[0] {
					t.Fatalf("round %d: pop %d is not the oldest", round, k)
				}
				in = in[1:]
			}
		}
		if q.len() != len(in) {
			t.Fatalf("len %d, want %d", q.len(), len(in))
		}
		got := q.take(nil, 10)
		for k, j := range got {
			if j != in[k] {
				t.Fatalf("take: job %d out of order", k)
			}
		}
		if len(got) != 10 || q.len() != len(in)-10 {
			t.Fatalf("take 10 of %d: got %d, %d left", len(in), len(got), q.len())
		}
		if got := q.take(nil, 1000); len(got) != len(in)-10 || q.pop() != nil || q.len() != 0 {
			t.Fatalf("take all: got %d, want %d, then nothing", len(got), len(in)-10)
		}
	})
	for _, tc := range []struct {
		name        string
		size, lanes int
		accepted    int
	}{
		{"size limit", 3, 0, 3},
		{"size 0 refuses", 0, 0, 0},
		{"size 0 with a blocked lane", 0, 1, 1},
		{"lanes beyond size", 1, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(tc.size)
			q.lanes.Store(int32(tc.lanes))
			n := 0
			for _, j := range jobsAt(make([]int64, 5)...) {
				if q.push(j) {
					n++
				}
			}
			if n != tc.accepted {
				t.Errorf("accepted %d of 5, want %d", n, tc.accepted)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		q := newQueue(10)
		for _, j := range jobsAt(10, 20, 30, 40) {
			q.push(j)
		}
		old, next := q.expired(25)
		if len(old) != 2 || old[0].queued != 10 || old[1].queued != 20 || next != 30 || q.len() != 2 {
			t.Fatalf("expired(25) = %d jobs, next %d, %d left; want 2, 30, 2", len(old), next, q.len())
		}
		if old, next := q.expired(100); len(old) != 2 || next != 0 || q.len() != 0 {
			t.Fatalf("expired(100) = %d jobs, next %d; want 2, 0", len(old), next)
		}
	})
}

// TestQueueTimeout checks that a pool answers ErrQueueTimeout to a request
// no worker took within queue_timeout, with no timer of its own: the pool
// has no worker at all here, so nothing else can answer.
func TestQueueTimeout(t *testing.T) {
	app := units.App{Name: "t", QueueSize: 4, QueueTimeout: 50 * time.Millisecond}
	p := NewPool(app, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go p.expire()
	defer close(p.drained)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := p.Do(Request{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrQueueTimeout) {
			t.Fatalf("Do = %v, want ErrQueueTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Do still waiting 10 s after a queue_timeout of 50 ms")
	}
	if waited := time.Since(start); waited < app.QueueTimeout {
		t.Errorf("timed out after %v, before queue_timeout %v", waited, app.QueueTimeout)
	}
	if p.q.len() != 0 {
		t.Errorf("%d requests left queued", p.q.len())
	}
}
