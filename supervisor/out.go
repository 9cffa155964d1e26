package supervisor

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/berthd/berth/wire"
)

// outRegion is the shared memory (a memfd mapped by berth and the worker)
// in which each worker thread may leave response bodies instead of writing
// them to its socket (wire.FlagBodyShared): a body then costs the worker a
// copy into memory and berth nothing until it sends it, where through the
// socket it cost a copy into and one out of the socket's buffers on top —
// most of berth's time on a 256 KiB response.
//
// Each lane has a ring of wire.OutRegionSize bytes (from
// wire.OutRegionOffset + its index × that) and a word (uint32 at 4 × its
// index) in which berth says how far it is done with the ring: positions
// count bytes ever placed, wrapping at 2^32. The worker puts each body
// whole after the last (skipping the ring's end when it does not fit
// there), and only where berth is done; berth closes a lane's exchanges in
// order, each moving the word to its body's end. A worker never waits for
// room: when there is none, the body goes through the socket.
type outRegion struct {
	file *os.File // for the worker, until it has it
	mem  []byte

	mu    sync.Mutex
	users int  // exchanges whose head's body is in mem
	gone  bool // the worker has been reaped: unmap once users is 0
}

// outFile is how long the out file is for lanes lanes.
func outFile(lanes int) int {
	return wire.OutRegionOffset + lanes*wire.OutRegionSize
}

func newOutRegion(lanes int) (*outRegion, error) {
	f, mem, err := wire.SharedMemory("berth-out", outFile(lanes))
	if err != nil {
		return nil, fmt.Errorf("the worker's response memory: %w", err)
	}
	return &outRegion{file: f, mem: mem}, nil
}

// errOutGone: an answer read after its worker was reaped points into
// memory already unmapped (its frame was still buffered).
var errOutGone = errors.New("the worker is gone, and its out memory with it")

// body returns the n bytes lane index left at ring position pos, counted
// as in use until done(index, pos+n). It fails when they are not within
// the ring (the worker broke the protocol), or when the worker is gone.
func (o *outRegion) body(index int, pos, n uint32) ([]byte, error) {
	off := pos % wire.OutRegionSize
	if n > wire.OutRegionSize-off {
		return nil, fmt.Errorf("%w: a shared body of %d bytes at %d", wire.ErrBadResponse, n, pos)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gone {
		return nil, errOutGone
	}
	o.users++
	start := wire.OutRegionOffset + index*wire.OutRegionSize + int(off)
	return o.mem[start : start+int(n) : start+int(n)], nil
}

// done tells the worker berth is done with lane index's ring up to
// position end.
func (o *outRegion) done(index int, end uint32) {
	// A store with release order: berth's reads of the body come before
	// the worker can see its place free and write the next one there.
	// In the machine's byte order, as the worker reads it.
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&o.mem[4*index])), end)
	o.mu.Lock()
	o.users--
	unmap := o.gone && o.users == 0
	o.mu.Unlock()
	if unmap {
		unix.Munmap(o.mem)
	}
}

// close unmaps the memory once no exchange reads from it: the worker is
// gone, but a body of its may still be on its way to a client.
func (o *outRegion) close() {
	o.mu.Lock()
	o.gone = true
	unmap := o.users == 0
	o.mu.Unlock()
	if unmap {
		unix.Munmap(o.mem)
	}
}
