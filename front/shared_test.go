package front

import (
	"testing"

	"github.com/berthd/berth/wire"
)

// TestSharedPool checks which idle buffer a body gets (the smallest that
// fits, else a new one of the next power of two from 64 KiB) and that the
// idle ones stay within keepSharedCount.
func TestSharedPool(t *testing.T) {
	pool := &sharedPool{}
	defer pool.drain()
	get := func(n int64) *sharedBody {
		t.Helper()
		b, err := pool.get(n)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := b.file.Stat(); err != nil || fi.Size() != int64(len(b.mapping)) || len(b.mapping) != wire.SharedBodyOffset+len(b.mem) {
			t.Fatalf("buffer of %d bytes has a file of %v bytes (%v), mapped %d", len(b.mem), fi.Size(), err, len(b.mapping))
		}
		return b
	}
	small, big := get(40<<10), get(700<<10)
	if len(small.mem) != 64<<10 || len(big.mem) != 1<<20 {
		t.Fatalf("new buffers of %d and %d bytes, want 64 KiB and 1 MiB", len(small.mem), len(big.mem))
	}
	big.put()
	small.put()
	for _, c := range []struct {
		n    int64
		want int
	}{
		{1 << 10, 64 << 10}, // the smallest that fits, not the first
		{1 << 10, 1 << 20},  // the only one left
		{1 << 10, 64 << 10}, // none left: a new one
	} {
		b := get(c.n)
		if len(b.mem) != c.want {
			t.Errorf("a %d-byte body got a buffer of %d bytes, want %d", c.n, len(b.mem), c.want)
		}
		defer b.put()
	}

	var held []*sharedBody
	for range keepSharedCount + 5 {
		held = append(held, get(1))
	}
	for _, b := range held {
		b.put()
	}
	pool.mu.Lock()
	idle := len(pool.free)
	pool.mu.Unlock()
	if idle != keepSharedCount {
		t.Errorf("%d idle buffers kept, want %d", idle, keepSharedCount)
	}

	// Once drained (the app is gone), what comes back is freed.
	b := get(1)
	pool.drain()
	b.put()
	pool.mu.Lock()
	idle = len(pool.free)
	pool.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d idle buffers kept by a drained pool, want 0", idle)
	}
}
