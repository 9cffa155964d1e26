// Package fakeworker is a worker in Go that speaks berth's frame protocol
// (package wire) in place of the Python one, for tests of the front and
// the supervisor that need a worker's side of the wire but not an app:
// it answers in microseconds, and what it answers says what it was sent.
//
// A test binary becomes the worker: its TestMain calls MaybeRun first,
// and the app's python is the test binary itself with Env set (see
// Config). berth starts it as it starts Python (`PYTHON -u FILE APP gen
// N`, its files where wire.WorkerFDLayout says); the fake ignores its
// arguments and serves one thread. It checks first that each of its files
// is where and what the layout says, and fails to boot if one is not (so
// berth and the fake are held to one layout, as worker.py is by wire's
// TestWorkerFDs).
//
// Each request is answered 200 with a text body: the method, the path,
// the query and the length of the body it got, one per line. A request
// whose body rides in a descriptor (a spilled file, shared memory, the
// client's socket) is answered with the length berth declared; the
// descriptor is dropped unread. A request for /sleep/MS is answered MS
// milliseconds late, as by an app at work: a worker busy for as long as a
// test needs.
package fakeworker

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berthd/berth/wire"
	"golang.org/x/sys/unix"
)

// EnvVar, set to "1" in a worker's environment, makes MaybeRun serve.
const EnvVar = "BERTH_FAKE_WORKER"

// FailVar, set in a worker's environment, makes it fail to boot as a
// Python worker whose app does not import: its value is the traceback.
const FailVar = "BERTH_FAKE_WORKER_FAIL"

// MaybeRun serves as a fake worker, and exits, when the process was
// started as one; else it returns at once.
func MaybeRun() {
	if os.Getenv(EnvVar) != "1" {
		return
	}
	threads, err := strconv.Atoi(os.Getenv("BERTH_THREADS"))
	if err != nil {
		threads = 1
	}
	if err := serve(os.NewFile(wire.FDLane0, "berth-wire"), checkFiles(threads)); err != nil && err != io.EOF {
		fmt.Fprintln(os.Stderr, "fake worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve speaks for the worker on f, its first lane, unless badFiles says
// its files are not where they should be.
func serve(f *os.File, badFiles error) error {
	c, err := net.FileConn(f)
	if err != nil {
		return fmt.Errorf("fd %d is not berth's socket: %w", wire.FDLane0, err)
	}
	f.Close()
	w := bufio.NewWriter(c)
	tb := os.Getenv(FailVar)
	if badFiles != nil {
		tb = "fake worker: " + badFiles.Error()
	}
	if tb != "" {
		if err := writeFrame(w, wire.TypeBootFailed, []byte(tb), nil); err != nil {
			return err
		}
		return w.Flush()
	}
	hello := fmt.Sprintf("berth-wire\x00%d\x00%d\x00fake", wire.Version, os.Getpid())
	if err := writeFrame(w, wire.TypeHello, []byte(hello), nil); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c, 64<<10)
	r := wire.NewReader(br)
	for {
		fr, err := r.Next()
		if err != nil {
			return err
		}
		if fr.Type != wire.TypeRequest {
			continue // a cancel: every answer is whole at once
		}
		if err := answer(w, fr); err != nil {
			return err
		}
		if br.Buffered() == 0 { // the last of a batch: answer them all
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

// answer writes the response to request frame fr.
func answer(w *bufio.Writer, fr wire.Frame) error {
	env, body, ok := wire.DecodeRequest(fr.Payload)
	if !ok {
		return fmt.Errorf("a request frame that does not decode")
	}
	get := func(k string) string {
		for _, kv := range env {
			if kv[0] == k {
				return kv[1]
			}
		}
		return ""
	}
	if ms, ok := strings.CutPrefix(get("PATH_INFO"), "/sleep/"); ok {
		d, _ := strconv.Atoi(ms)
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
	n := strconv.Itoa(len(body))
	if fr.Flags&(wire.FlagBodyFD|wire.FlagBodySocket) != 0 {
		n = get("CONTENT_LENGTH")
	}
	text := fmt.Sprintf("%s\n%s\n%s\n%s\n", get("REQUEST_METHOD"), get("PATH_INFO"), get("QUERY_STRING"), n)
	head := "200 OK\x00Content-Type\x00text/plain\x00Content-Length\x00" + strconv.Itoa(len(text))
	return writeFrame(w, wire.TypeResponse, []byte(head), []byte(text))
}

// writeFrame writes a frame whose payload is a uint32 length of head,
// head, then body (hello and boot-failed are the head alone).
func writeFrame(w *bufio.Writer, t wire.Type, head, body []byte) error {
	var hdr [wire.HeaderSize]byte
	payload := head
	if t == wire.TypeResponse {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(head)))
		payload = append(append(n[:], head...), body...)
	}
	wire.PutHeader(hdr[:], t, 0, len(payload))
	w.Write(hdr[:])
	if _, err := w.Write(payload); err != nil {
		return err
	}
	if t == wire.TypeHello {
		return w.Flush()
	}
	return nil
}

// checkFiles checks that the worker's files are where
// wire.WorkerFDLayout says for threads threads, each of the kind and
// size berth gives it.
func checkFiles(threads int) error {
	l := wire.WorkerFDLayout(threads)
	type want struct {
		fd   int
		what string
		mode uint32
		size int64 // -1: any
	}
	files := []want{{l.Log, "the log pipe", unix.S_IFIFO, -1}, {l.Marks, "the marks", unix.S_IFREG, int64(4 * threads)},
		{l.Flush, "the flush pipe", unix.S_IFIFO, -1}, {l.Out, "the out file", unix.S_IFREG, int64(wire.OutRegionOffset + threads*wire.OutRegionSize)}}
	for i, fd := range l.Lanes {
		files = append(files, want{fd, fmt.Sprintf("lane %d", i), unix.S_IFSOCK, -1})
	}
	for _, w := range files {
		var st unix.Stat_t
		if err := unix.Fstat(w.fd, &st); err != nil {
			return fmt.Errorf("fd %d, %s: %w", w.fd, w.what, err)
		}
		if st.Mode&unix.S_IFMT != w.mode || (w.size >= 0 && st.Size != w.size) {
			return fmt.Errorf("fd %d is not %s (mode %o, %d bytes)", w.fd, w.what, st.Mode, st.Size)
		}
	}
	return nil
}
