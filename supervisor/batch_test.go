package supervisor

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/berthd/berth/journal"
)

// TestBatchShare: a worker that turns to the queue takes all of it, up to
// what fits in batchBudget at the app's pace and maxBatch, unless other
// workers are idle, which then get their share; before any response has
// been timed it takes one request.
func TestBatchShare(t *testing.T) {
	for _, tc := range []struct {
		name    string
		queued  int           // requests waiting behind the first
		idle    int           // other workers idle (of 3 others)
		service time.Duration // the app's pace; 0: not yet timed
		want    int
	}{
		{"others busy: the whole queue", 10, 0, 50 * time.Microsecond, 11},
		{"one other idle: half", 10, 1, 50 * time.Microsecond, 6},
		{"three others idle: a quarter", 10, 3, 50 * time.Microsecond, 3},
		{"budget bounds a slow app", 10, 0, batchBudget / 3, 4},
		{"slower than the budget: one", 10, 0, 2 * batchBudget, 1},
		{"pace unknown: one", 10, 0, 0, 1},
		{"maxBatch bounds a fast app", maxBatch + 8, 0, time.Microsecond, maxBatch},
		{"nothing queued: one", 0, 0, 50 * time.Microsecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := testApp("python3", 4)
			app.QueueSize = 64
			p := NewPool(app, 1, journal.New(io.Discard, slog.LevelInfo))
			s := &slot{pool: p}
			order := []*slot{s}
			for i := 0; i < 3; i++ {
				other := &slot{pool: p}
				other.owner.Store(laneSlot)
				if i < tc.idle {
					other.owner.Store(laneIdle)
				}
				order = append(order, other)
			}
			p.idleOrder.Store(&order)
			p.nslots.Store(int32(len(order)))
			p.serviceNS.Store(int64(tc.service))
			for i := 0; i < tc.queued; i++ {
				p.q.push(&job{})
			}
			if got := len(s.batch(&job{})); got != tc.want {
				t.Errorf("batch of %d; want %d", got, tc.want)
			}
			if left := p.q.len(); left != tc.queued-(tc.want-1) {
				t.Errorf("%d left in the queue; want %d", left, tc.queued-(tc.want-1))
			}
		})
	}
}
