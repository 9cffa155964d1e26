package supervisor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/wire"
)

// patternOf is what the test app's /pattern sends for "n,seed".
func patternOf(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((seed + i) % 251)
	}
	return b
}

// TestOutRing: big answers of one batch wait in the worker's out ring, and
// the ring is given back only as each exchange closes. The first answer is
// held open while the worker makes the rest: had berth given its place
// back when it read the answer, the third (which then fits only by
// wrapping around to the start) would overwrite it.
func TestOutRing(t *testing.T) {
	py := pythonOrSkip(t)
	p := startPool(t, func(*testing.T) *Pool {
		return NewPool(testApp(py, 1), 1, journal.New(io.Discard, slog.LevelInfo))
	})
	waitIdle(t, p)
	held, err := p.Do(Request{Frame: request("GET", "/endless", "held"), Body: []byte("the body")})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000000
	type answer struct {
		ex  *Exchange
		err error
	}
	first := make(chan answer, 1)
	go func() {
		ex, err := p.Do(Request{Frame: request("GET", "/pattern", fmt.Sprintf("%d,0", n)), Body: []byte("the body")})
		first <- answer{ex, err}
	}()
	waitQueued(t, p, 1)
	var rest []<-chan asyncResult
	for i := 1; i <= 4; i++ {
		rest = append(rest, asyncDo(p, "/pattern", fmt.Sprintf("%d,%d", n, i)))
		waitQueued(t, p, 1+i)
	}
	p.serviceNS.Store(int64(100 * time.Microsecond)) // so that the five go as one batch
	held.Close()

	a := <-first
	if a.err != nil {
		t.Fatal(a.err)
	}
	open := true
	defer func() {
		if open { // else the pool's Stop waits for it
			a.ex.Close()
		}
	}()
	if !a.ex.outBody {
		t.Error("a 1 MB answer did not come through the out ring")
	}
	want := patternOf(n, 0)
	if !bytes.Equal(a.ex.Head.Body, want) {
		t.Error("the first answer is not what the app sent")
	}
	time.Sleep(300 * time.Millisecond) // the worker makes the other four
	if !bytes.Equal(a.ex.Head.Body, want) {
		t.Error("the first answer changed while its exchange was open: its place in the ring was reused")
	}
	a.ex.Close()
	open = false
	for i, ch := range rest {
		select {
		case r := <-ch:
			if r.err != nil || r.body != string(patternOf(n, i+1)) {
				t.Errorf("answer %d: %v, %d bytes, not what the app sent", i+2, r.err, len(r.body))
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("answer %d did not come", i+2)
		}
	}
}

// TestOutRingHeld: a body held past its exchange (Exchange.Hold, as the
// front does to write it from the ring) keeps its place while the lane
// goes on to other requests, whose bodies come through the ring's other
// places or the socket; once it is let go, the ring serves again.
func TestOutRingHeld(t *testing.T) {
	py := pythonOrSkip(t)
	p := startPool(t, func(*testing.T) *Pool {
		return NewPool(testApp(py, 1), 1, journal.New(io.Discard, slog.LevelInfo))
	})
	waitIdle(t, p)
	const n = 1000000 // four fit a ring (wire.OutRegionSize)
	ex, err := p.Do(Request{Frame: request("GET", "/pattern", fmt.Sprintf("%d,0", n)), Body: []byte("the body")})
	if err != nil {
		t.Fatal(err)
	}
	held := ex.Hold()
	if held == nil {
		ex.Close()
		t.Fatal("a 1 MB answer did not come through the out ring")
	}
	body := ex.Head.Body
	ex.Close() // the worker is free, the body is not
	defer held.Close()
	want := patternOf(n, 0)
	for i := 1; i <= 6; i++ {
		r := <-asyncDo(p, "/pattern", fmt.Sprintf("%d,%d", n, i))
		if r.err != nil || r.body != string(patternOf(n, i)) {
			t.Fatalf("answer %d while the first is held: %v, %d bytes, not what the app sent", i+1, r.err, len(r.body))
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("the held answer changed when answer %d was made: its place in the ring was reused", i+1)
		}
	}
	held.Close()
	held.Close() // a second close does nothing
	for i := 7; i <= 9; i++ {
		ex, err := p.Do(Request{Frame: request("GET", "/pattern", fmt.Sprintf("%d,%d", n, i)), Body: []byte("the body")})
		if err != nil {
			t.Fatal(err)
		}
		inRing := ex.outBody
		got, err := bodyOf(ex)
		ex.Close()
		if err != nil || got != string(patternOf(n, i)) {
			t.Fatalf("answer %d after the held one was let go: %v, not what the app sent", i+1, err)
		}
		if !inRing {
			t.Errorf("answer %d came through the socket with the ring free again", i+1)
		}
	}
}

// TestOutRegionOrder: the worker learns a place is free only when every
// body before it is done with, whatever order berth is done in.
func TestOutRegionOrder(t *testing.T) {
	o, err := newOutRegion(2)
	if err != nil {
		t.Fatal(err)
	}
	o.file.Close()
	defer o.close()
	word := func() uint32 { return binary.NativeEndian.Uint32(o.mem[4:]) }
	for _, pos := range []uint32{0, 100, 300} {
		if _, err := o.body(1, pos, 100); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		end, want uint32
		place     bool // a body at 400 comes first
	}{
		{end: 200, want: 0},                // the second: the first is still in use
		{end: 100, want: 200},              // the first: up to the second is done
		{end: 450, want: 200, place: true}, // the fourth: the third is in use
		{end: 400, want: 450},              // the third: all done
	} {
		if step.place {
			if _, err := o.body(1, 400, 50); err != nil {
				t.Fatal(err)
			}
		}
		o.done(1, step.end)
		if got := word(); got != step.want {
			t.Errorf("done with the body ending at %d: the worker may write up to %d, want %d", step.end, got, step.want)
		}
	}
	if len(o.placed[1]) != 0 || o.users != 0 {
		t.Errorf("all done, and still %d places and %d users", len(o.placed[1]), o.users)
	}
	if got := binary.NativeEndian.Uint32(o.mem); got != 0 {
		t.Errorf("lane 0's word moved to %d", got)
	}
}

// TestOutRegionLifetime: the out memory stays mapped while an exchange
// reads from it, also after the worker is gone, and no body is handed out
// once it is gone; places must lie within a lane's ring.
func TestOutRegionLifetime(t *testing.T) {
	o, err := newOutRegion(2)
	if err != nil {
		t.Fatal(err)
	}
	o.file.Close()
	if _, err := o.body(1, wire.OutRegionSize-10, 11); !errors.Is(err, wire.ErrBadResponse) {
		t.Errorf("a body past its ring's end: %v, want ErrBadResponse", err)
	}
	b, err := o.body(1, 3*wire.OutRegionSize+5, 100) // positions wrap the ring
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "still mapped")
	o.close() // the worker is reaped while the body is on its way
	if _, err := o.body(0, 0, 10); !errors.Is(err, errOutGone) {
		t.Errorf("a body after the worker is gone: %v, want errOutGone", err)
	}
	if string(b[:12]) != "still mapped" {
		t.Errorf("the body in use reads %q", b[:12])
	}
	if got := o.mem[wire.OutRegionOffset+wire.OutRegionSize+5]; got != 's' {
		t.Errorf("the body is not at its lane's ring, 5 bytes in: %q", got)
	}
	o.done(1, 3*wire.OutRegionSize+105) // the last user: unmapped now
	if o.users != 0 {
		t.Errorf("%d users after done", o.users)
	}
}
