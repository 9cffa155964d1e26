package front

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berthd/berth/wire"
)

// sharedBody is a request body buffer in memory the worker can read: a
// memfd mapped into berth. The body is read from the client straight into
// the mapping and its descriptor rides with the request frame, as a temp
// file's does, so a large body never crosses the worker's socket: that
// crossing (berth's write, the worker's read, each a copy through socket
// buffers) was most of the cost of a 1 MiB upload.
//
// The file starts with a stamp, random and its own (wire.SharedBodyOffset
// bytes, the body after them): a worker keeps its mappings of these files
// by inode, and inode numbers wrap, so it checks the stamp before it
// trusts a mapping it has for a descriptor it is sent.
type sharedBody struct {
	file    *os.File
	mapping []byte // the whole file
	mem     []byte // its body part
	pool    *sharedPool
}

// sharedFrom is the smallest body read into a sharedBody. Below it the
// body rides in the frame, where requests of a batch share one write:
// passing a descriptor costs the worker about 5 us, which a 16 KiB body's
// crossing of the socket does not (bench/ab.sh uploads: 16 KiB even,
// 32 KiB +8-37% shared, 60 KiB +5-24%, 128 KiB +60%).
const sharedFrom = 32 << 10

// keepShared and keepSharedCount bound the idle sharedBodies kept for the
// next uploads (a fresh one costs a page fault per 4 KiB as it is filled):
// their bytes, and their descriptors.
const (
	keepShared      = 64 << 20
	keepSharedCount = 64
)

// sharedPool holds an app's idle sharedBodies. Each app has its own: a
// worker keeps mappings of the buffers it was sent (worker.py's
// SharedBodies), so a buffer must never carry another app's bodies. Not
// a sync.Pool: one dropped by the GC would keep its descriptor and
// mapping.
type sharedPool struct {
	mu     sync.Mutex
	free   []*sharedBody
	size   int64
	closed bool // the app is gone: buffers given back are freed
}

// get returns a sharedBody of at least n bytes, an idle one when one is
// large enough. The worker reads CONTENT_LENGTH bytes from its start, so
// its file keeps the mapping's size whatever the body's.
func (p *sharedPool) get(n int64) (*sharedBody, error) {
	p.mu.Lock()
	free := p.free
	best := -1 // the smallest that fits: a big one stays for a big body
	for i, f := range free {
		if int64(len(f.mem)) >= n && (best < 0 || len(f.mem) < len(free[best].mem)) {
			best = i
		}
	}
	if best < 0 {
		p.mu.Unlock()
		return newShared(p, n)
	}
	b := free[best]
	free[best] = free[len(free)-1]
	p.free = free[:len(free)-1]
	p.size -= int64(len(b.mem))
	p.mu.Unlock()
	return b, nil
}

// newShared makes a sharedBody of at least n bytes (bodySize: one serves
// bodies of about the same size).
func newShared(p *sharedPool, n int64) (*sharedBody, error) {
	size := bodySize(n)
	f, mapping, err := wire.SharedMemory("berth-body", int(wire.SharedBodyOffset+size))
	if err != nil {
		return nil, fmt.Errorf("making a shared body buffer: %w", err)
	}
	binary.LittleEndian.PutUint64(mapping, rand.Uint64())
	return &sharedBody{file: f, mapping: mapping, mem: mapping[wire.SharedBodyOffset:], pool: p}, nil
}

// put keeps b for a later body of its app, or frees it when enough are
// kept. Only once the worker is done with the request: until then it may
// read.
func (b *sharedBody) put() {
	p := b.pool
	p.mu.Lock()
	if !p.closed && p.size+int64(len(b.mem)) <= keepShared && len(p.free) < keepSharedCount {
		p.free = append(p.free, b)
		p.size += int64(len(b.mem))
		b = nil
	}
	p.mu.Unlock()
	if b != nil {
		b.destroy()
	}
}

// drain frees the idle buffers, and those given back from now on: the app
// is gone.
func (p *sharedPool) drain() {
	p.mu.Lock()
	free := p.free
	p.free, p.size, p.closed = nil, 0, true
	p.mu.Unlock()
	for _, b := range free {
		b.destroy()
	}
}

func (b *sharedBody) destroy() {
	unix.Munmap(b.mapping)
	b.file.Close()
}
