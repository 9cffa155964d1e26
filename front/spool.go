package front

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// spool holds the part of a streamed response that the worker has made
// and the client has not yet taken, so that a slow reader does not hold
// the worker (nginx's proxy buffering, in berth). A response the client
// keeps up with never enters it: each piece is first offered to the
// socket without waiting, and only what the socket does not take at once
// is kept, in memory up to spoolMem (and while all responses together
// hold less than spoolMemAll), then in an unlinked temp file, up to the
// app's max_buffered_response. Past that the response waits for its
// client, as an unbuffered one would.
//
// While the worker still sends, what is in memory is offered to the
// socket again at each new piece; what went to the file goes out, by
// sendfile, once the worker is done and released.
//
// It belongs to the goroutine writing the response.
type spool struct {
	mem      []byte // bytes to send, from memOff
	memOff   int
	file     *os.File // bytes to send after mem's, from fileOff to fileEnd
	fileOff  int64
	fileEnd  int64
	accounts int64 // bytes of spooledMem this spool counts
}

// Bounds of what responses keep in memory. spoolMem is a few socket
// buffers' worth, so that a client a little behind is caught up from
// memory; beyond, memory would grow with the number of slow clients.
const (
	spoolMem    = 256 << 10
	spoolMemAll = 64 << 20
)

var (
	// spooledMem is what all spools hold in memory (spoolMemAll bounds it).
	spooledMem atomic.Int64
	// spoolFiles counts the temp files spools have made.
	spoolFiles atomic.Int64
)

// SpoolFiles is how many temp files spools have made since berth started.
func SpoolFiles() int64 { return spoolFiles.Load() }

// SpooledMemory is how many bytes all spools hold in memory now.
func SpooledMemory() int64 { return spooledMem.Load() }

// size is what the spool holds.
func (sp *spool) size() int64 {
	return int64(len(sp.mem)-sp.memOff) + sp.fileEnd - sp.fileOff
}

// add keeps the bytes of bufs that follow skip (those written already).
func (sp *spool) add(bufs [][]byte, skip int64) error {
	for _, b := range bufs {
		if skip >= int64(len(b)) {
			skip -= int64(len(b))
			continue
		}
		b, skip = b[skip:], 0
		if sp.memOff > 0 { // what was sent makes room
			sp.mem = sp.mem[:copy(sp.mem, sp.mem[sp.memOff:])]
			sp.memOff = 0
		}
		if sp.file == nil && len(sp.mem)-sp.memOff+len(b) <= spoolMem && spooledMem.Load()+int64(len(b)) <= spoolMemAll {
			sp.mem = append(sp.mem, b...)
			sp.account()
			continue
		}
		if err := sp.toFile(b); err != nil {
			return err
		}
	}
	return nil
}

// account keeps spooledMem in step with the memory the spool holds.
func (sp *spool) account() {
	if n := int64(cap(sp.mem)); n != sp.accounts {
		spooledMem.Add(n - sp.accounts)
		sp.accounts = n
	}
}

// toFile appends b to the spool's temp file, making it first.
func (sp *spool) toFile(b []byte) error {
	if sp.file == nil {
		f, err := tempFile()
		if err != nil {
			return err
		}
		sp.file = f
		spoolFiles.Add(1)
	}
	n, err := sp.file.WriteAt(b, sp.fileEnd)
	sp.fileEnd += int64(n)
	return err
}

// offer writes what the socket takes at once of the spool's memory, then
// of bufs (skip bytes of bufs aside), without waiting; it reports how much
// of bufs went. Nothing of bufs goes while the spool holds anything.
func (sp *spool) offer(c net.Conn, bufs [][]byte) (int64, error) {
	raw := rawConn(c)
	if raw == nil {
		return 0, nil
	}
	if len(sp.mem) > sp.memOff {
		n, err := writeNow(raw, [][]byte{sp.mem[sp.memOff:]})
		sp.memOff += int(n)
		if sp.memOff == len(sp.mem) {
			sp.mem, sp.memOff = sp.mem[:0], 0
		}
		if err != nil || sp.size() > 0 {
			return 0, err
		}
	}
	if sp.size() > 0 {
		return 0, nil
	}
	return writeNow(raw, bufs)
}

// writeNow writes what the socket takes of bufs without waiting (one
// writev; its descriptor is non-blocking, as every socket in Go).
func writeNow(raw syscall.RawConn, bufs [][]byte) (int64, error) {
	var n int
	var err error
	cerr := raw.Write(func(fd uintptr) bool {
		n, err = unix.Writev(int(fd), bufs)
		return true
	})
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		n, err = 0, nil
	}
	return int64(max(n, 0)), errors.Join(cerr, err)
}

// flush writes all the spool holds, waiting for the client as write
// does, each wait at most write_timeout without progress (progress).
func (sp *spool) flush(st *stream) error {
	if len(sp.mem) > sp.memOff {
		b := sp.mem[sp.memOff:]
		err := progress(st, func() (int64, error) {
			n, err := st.conn.Write(b)
			b = b[n:]
			return int64(n), err
		})
		sp.mem, sp.memOff = sp.mem[:0], 0
		if err != nil {
			return err
		}
	}
	if sp.fileEnd == sp.fileOff {
		return nil
	}
	sent, err := st.sendRange(sp.file, sp.fileOff, sp.fileEnd-sp.fileOff)
	sp.fileOff += sent
	return err
}

// release gives the spool's memory and file back.
func (sp *spool) release() {
	sp.mem, sp.memOff = nil, 0
	sp.account()
	if sp.file != nil {
		sp.file.Close()
		sp.file = nil
	}
	sp.fileOff, sp.fileEnd = 0, 0
}
