// Package wire is the frame protocol between berth and its Python workers,
// both ends of it: the Go encoder and decoder here, and the Python worker
// program (worker.py, embedded) that speaks the other side.
//
// Every frame is an 8-byte header — payload length (uint32, little
// endian), type (uint8), flags (uint8), two reserved bytes — then the
// payload. The format is chosen so that Python decodes a request with a
// handful of C-level calls (one unpack, one latin-1 decode, one split, one
// dict(zip())) and never loops over headers in Python: this hop is where a
// Python app server spends its time.
//
// A request frame's payload is a uint32 length, the environ as
// NUL-separated latin-1 "KEY\0value\0KEY\0value", then the body bytes.
// A response frame's payload is a uint32 length, the status line and
// headers as "200 OK\0Name\0value\0...", then the body (or its start, when
// FlagMore says body frames follow).
//
// Frames that carry a file descriptor (SCM_RIGHTS, attached to the
// frame's first byte): a request whose body berth spilled to an unlinked
// temp file (FlagBodyFD; the payload then has no body bytes) or put in
// shared memory (FlagBodyShared), one whose body waits in the client's
// socket (FlagBodySocket), and a file
// frame, by which the worker hands berth an open file for wsgi.file_wrapper
// so that berth sends it with sendfile. Large bodies thus never cross the
// socket and never sit whole in memory on either side.
//
// Requests are counted per socket from 1 on both ends; a cancel frame
// names the request it cancels by that count, so a cancel that crosses the
// end of its response is recognised as stale and ignored.
package wire

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version. The worker announces it in its hello
// frame and berth refuses a worker that speaks another one: both ends ship
// in one binary, so a mismatch means a stale worker file, not a peer to
// negotiate with.
const Version = 1

// HeaderSize is the size of a frame header.
const HeaderSize = 8

// MaxPayload bounds one frame so that a corrupt length cannot make berth
// allocate without limit. Bodies larger than this travel as several body
// frames.
const MaxPayload = 1 << 30

// Type is a frame type.
type Type uint8

// Frame types. Requests go from berth to the worker; all others from the
// worker to berth.
const (
	// TypeHello: the app is imported; payload "berth-wire\0VERSION\0PID\0PYTHON".
	TypeHello Type = 1
	// TypeBootFailed: the app could not be imported; payload is the traceback.
	TypeBootFailed Type = 2
	// TypeRequest: one request, see the package comment.
	TypeRequest Type = 3
	// TypeResponse: status, headers and the body or its start.
	TypeResponse Type = 4
	// TypeBody: more of a response body; the last one lacks FlagMore.
	TypeBody Type = 5
	// TypeAbort: the app failed after its headers were sent; the client
	// connection must be closed so the client sees a truncated response.
	TypeAbort Type = 6
	// TypeFile: the response body continues with a file, sent by berth
	// (sendfile). The descriptor rides with the frame; the payload is the
	// offset to start at and the byte count (uint64 each, little endian;
	// a count of 1<<63 means to the end of the file).
	TypeFile Type = 7
	// TypeCancel (berth to worker): the client of the response in progress
	// went away. Payload: the request's count (uint32). The worker stops
	// iterating, calls the iterable's close() and ends the response.
	TypeCancel Type = 8
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeBootFailed:
		return "boot-failed"
	case TypeRequest:
		return "request"
	case TypeResponse:
		return "response"
	case TypeBody:
		return "body"
	case TypeAbort:
		return "abort"
	case TypeFile:
		return "file"
	case TypeCancel:
		return "cancel"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// FlagMore on a response or body frame: more body frames follow.
const FlagMore uint8 = 1

// FlagBodyFD on a request frame: the body is in the file whose descriptor
// rides with the frame, CONTENT_LENGTH bytes from its start.
const FlagBodyFD uint8 = 2

// FlagBodyShared on a request frame, with FlagBodyFD: the file is shared
// memory that berth reuses for another request once this one is
// answered, so the worker reads the body (CONTENT_LENGTH bytes from
// SharedBodyOffset) whole before the app starts and closes the descriptor
// (the app gets the bytes, as for a body in the frame). On a response frame: the body is not in the payload, which ends
// after the head with its place in the thread's ring of the worker's out
// file and its length (two uint32s; see OutRegionOffset).
const FlagBodyShared uint8 = 4

// FlagBodySocket on a request frame: the body's first bytes are in the
// payload, as for a body in the frame, and the rest, CONTENT_LENGTH less
// those, is waiting in the receive queue of the client's own socket, whose
// descriptor rides with the frame. The worker reads it from there before
// the app starts (so that berth may read the connection's next request
// once the answer's head is in) and closes the descriptor: one copy, from
// the kernel into the app's bytes, where shared memory costs two. berth
// sends it only once the whole body is queued, so the read never waits
// for the client. A worker that cannot read it all answers with
// Connection: close, since the connection is then out of step.
const FlagBodySocket uint8 = 8

// SharedBodyOffset is where a shared request body starts in its file
// (FlagBodyShared): before it, the file's stamp, 8 random bytes of its
// own, by which a worker that keeps mappings of these files knows one
// from another whose inode number it was given again.
const SharedBodyOffset = 4096

// The worker's out file (WorkerFDs.Out): for each thread a word (uint32
// at 4 × its number) in which berth says up to where it is done with the
// thread's ring, and the ring itself, OutRegionSize bytes from
// OutRegionOffset + OutRegionSize × its number, where the worker leaves
// response bodies (FlagBodyShared). Places in a ring count the bytes ever
// placed there, wrapping at 2^32; a body never wraps around the ring.
//
// 4 MiB a ring: a worker answers a batch of requests (up to 50 here) at
// once, and with 2 MiB most of a batch of 256 KiB answers found no room
// and went through the socket (bench/ab.sh mixed /big 50, wrk -t1: 2 MiB
// 8.9-9.5k req/s, 4 MiB 9.8-10.1k, 8 MiB 9.5-10.4k). Only the pages a
// ring's bodies touch are memory, but a ring in steady use touches all of
// it: 4 MiB of shared memory a thread, in the worker's RSS (and berth's).
// Bodies larger than 1 MiB (front's copyBody) never go there.
const (
	OutRegionOffset = 4096
	OutRegionSize   = 4 << 20
	// OutBodyMax is the largest body a worker leaves in its ring: the
	// largest the front sends whole after freeing the worker.
	OutBodyMax = 1 << 20
)

// ToEOF is the count of a file frame that sends the file to its end.
const ToEOF = 1 << 63

// WorkerSource is the Python worker program. berth writes it to a file and
// runs it with the app's interpreter as `python -u FILE APP gen N`, the
// module and thread count in its environment and its files where
// WorkerFDLayout says.
//
//go:embed worker.py
var WorkerSource string

// ErrFrameTooLarge is a frame header announcing more than MaxPayload.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// Frame is one decoded frame. Payload is only valid until the next call
// to Reader.Next.
type Frame struct {
	Type    Type
	Flags   uint8
	Payload []byte
}

// PutHeader writes a frame header for a payload of n bytes into b[:8].
func PutHeader(b []byte, t Type, flags uint8, n int) {
	binary.LittleEndian.PutUint32(b, uint32(n))
	b[4] = byte(t)
	b[5] = flags
	b[6], b[7] = 0, 0
}

// Reader reads frames from a worker. It reuses one buffer, so reading a
// frame allocates only when a frame is larger than any before it.
type Reader struct {
	r   io.Reader
	hdr [HeaderSize]byte
	buf []byte
}

// NewReader returns a Reader on r, which should be buffered: small frames
// then cost one read system call for many frames.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next reads the next frame. An EOF before a frame starts is io.EOF; one
// inside a frame is io.ErrUnexpectedEOF.
func (r *Reader) Next() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.LittleEndian.Uint32(r.hdr[:4])
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	// The buffer grows as the payload arrives, not to the announced size
	// up front: a corrupt header must not cost a gigabyte of memory.
	p := r.buf[:0]
	for len(p) < int(n) {
		if len(p) == cap(p) {
			p = append(p, make([]byte, min(int(n)-len(p), max(len(p), 64<<10)))...)[:len(p)]
		}
		m, err := io.ReadFull(r.r, p[len(p):min(cap(p), int(n))])
		p = p[:len(p)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.buf = p[:0]
			return Frame{}, err
		}
	}
	r.buf = p[:0]
	return Frame{Type: Type(r.hdr[4]), Flags: r.hdr[5], Payload: p}, nil
}

// Hello is what a worker says once its app is imported.
type Hello struct {
	Version int
	PID     int
	Python  string
}

// ParseHello decodes a hello payload.
func ParseHello(p []byte) (Hello, error) {
	var h Hello
	parts := splitNUL(p, 5)
	if len(parts) != 4 || string(parts[0]) != "berth-wire" {
		return h, fmt.Errorf("wire: malformed hello %q", p)
	}
	if _, err := fmt.Sscanf(string(parts[1]), "%d", &h.Version); err != nil {
		return h, fmt.Errorf("wire: malformed hello version %q", parts[1])
	}
	if _, err := fmt.Sscanf(string(parts[2]), "%d", &h.PID); err != nil {
		return h, fmt.Errorf("wire: malformed hello pid %q", parts[2])
	}
	h.Python = string(parts[3])
	if h.Version != Version {
		return h, fmt.Errorf("wire: worker speaks version %d, berth speaks %d", h.Version, Version)
	}
	return h, nil
}

func splitNUL(p []byte, max int) [][]byte {
	var out [][]byte
	for len(out) < max-1 {
		i := indexNUL(p)
		if i < 0 {
			break
		}
		out = append(out, p[:i])
		p = p[i+1:]
	}
	return append(out, p)
}

func indexNUL(p []byte) int {
	for i, c := range p {
		if c == 0 {
			return i
		}
	}
	return -1
}
