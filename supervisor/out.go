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
// there), and only where berth is done. berth may be done with a lane's
// bodies out of order (one is held until its client's write, see
// Exchange.Hold, while later exchanges of the lane close): the word moves
// to the end of the last body before which all are done. A worker never
// waits for room: when there is none, the body goes through the socket.
type outRegion struct {
	file *os.File // for the worker, until it has it
	mem  []byte

	mu    sync.Mutex
	users int  // bodies in mem not yet done with
	gone  bool // the worker has been reaped: unmap once users is 0
	// placed holds, per lane, the ends of its bodies berth is not yet
	// done with or that follow one it is not, in ring order.
	placed [][]outPlace
}

// outPlace is a body in a lane's ring, by where it ends.
type outPlace struct {
	end  uint32
	done bool
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
	return &outRegion{file: f, mem: mem, placed: make([][]outPlace, lanes)}, nil
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
	o.placed[index] = append(o.placed[index], outPlace{end: pos + n})
	start := wire.OutRegionOffset + index*wire.OutRegionSize + int(off)
	return o.mem[start : start+int(n) : start+int(n)], nil
}

// done tells the worker berth is done with the body of lane index that
// ends at position end, and with those before it that it was done with
// already.
func (o *outRegion) done(index int, end uint32) {
	o.mu.Lock()
	placed := o.placed[index]
	for i := range placed {
		if placed[i].end == end && !placed[i].done {
			placed[i].done = true
			break
		}
	}
	n := 0
	for n < len(placed) && placed[n].done {
		n++
	}
	if n > 0 && !o.gone {
		// A store with release order: berth's reads of the bodies come
		// before the worker can see their places free and write the
		// next ones there. In the machine's byte order, as the worker
		// reads it.
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&o.mem[4*index])), placed[n-1].end)
	}
	o.placed[index] = append(placed[:0], placed[n:]...)
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
