// Package fakeworker is a worker in Go that speaks berth's frame protocol
// (package wire) in place of the Python one, for tests of the front and
// the supervisor that need a worker's side of the wire but not an app:
// it answers in microseconds, and what it answers says what it was sent.
//
// A test binary becomes the worker: its TestMain calls MaybeRun first,
// and the app's python is the test binary itself, with Env in the app's
// env. berth starts it as it starts Python (`PYTHON -u FILE APP gen N`,
// its files where wire.WorkerFDLayout says); the fake ignores its
// arguments. It checks first that each of its files is where and what the
// layout says, and fails to boot if one is not (so berth and the fake are
// held to one layout, as worker.py is by wire's TestWorkerFDs). It serves
// the first thread only: with threads above 1 it boots (for the layout's
// check) but answers nothing berth sends on the other lanes. With FailVar
// set it fails to boot as a worker whose app does not import.
//
// Each request is answered 200 with a text body: the method, the path,
// the query and the length of the body it got, one per line. A request
// whose body rides in a descriptor (a spilled file, shared memory, the
// client's socket) is answered with the length berth declared; the
// descriptor is dropped unread. Each answer carries X-Pid, the worker's
// pid, and X-Batch, its place among the requests the worker found
// waiting together (1, 2, 3... for a batch berth wrote at once; 1 for a
// request that came alone).
//
// The path chooses a behaviour, so that a test can make a worker slow,
// stuck or dead at a request of its choosing:
//
//	/sleep?ms=N  answers after N milliseconds
//	/hang        never answers (until berth kills the worker)
//	/crash       exits (status 3) in the request, without answering
//	anything else answers at once
//
// As worker.py does, the fake marks the number of each request it starts
// in the marks berth reads when a worker dies (so berth sends again only
// the requests it never started), and sends the answers it has made so
// far when berth asks (a batch in which one request is slow). With
// LogVar set to a file's path, it appends to that file a line "PID
// PATH?QUERY" for each request as it starts it, before the behaviour: a
// test then sees which worker started what, and that nothing ran twice.
package fakeworker

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthd/berth/wire"
	"golang.org/x/sys/unix"
)

// EnvVar, set to "1" in a worker's environment, makes MaybeRun serve.
const EnvVar = "BERTH_FAKE_WORKER"

// FailVar, set in a worker's environment, makes it fail to boot as a
// Python worker whose app does not import: its value is the traceback.
const FailVar = "BERTH_FAKE_WORKER_FAIL"

// LogVar names the file to which the worker appends each request it
// starts (see the package doc); unset, it records nothing.
const LogVar = "BERTH_FAKE_LOG"

// Env is the environment to give an app whose python is the test binary
// so that it runs as the fake worker: EnvVar, LogVar when log is not "",
// and, for a binary built with -race, no pause at exit (the race
// detector's default atexit_sleep_ms is one second, which every worker
// stopped or crashed would cost a test).
func Env(log string) map[string]string {
	env := map[string]string{EnvVar: "1", "GORACE": strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")}
	if log != "" {
		env[LogVar] = log
	}
	return env
}

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
	if err := serve(wire.WorkerFDLayout(threads), checkFiles(threads)); err != nil && err != io.EOF {
		fmt.Fprintln(os.Stderr, "fake worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// worker is the fake's state: its socket's writer, shared by the loop
// that answers and the goroutine that flushes when berth asks.
type worker struct {
	mu    sync.Mutex // guards w
	w     *bufio.Writer
	marks *os.File
	log   *os.File // nil unless LogVar is set
	seq   uint32   // requests read, counted from 1 as berth counts them
	place int      // the request's place among those read together
}

// serve speaks for the worker on its first lane, unless badFiles says
// its files are not where they should be.
func serve(l wire.WorkerFDs, badFiles error) error {
	f := os.NewFile(uintptr(l.Lanes[0]), "berth-wire")
	c, err := net.FileConn(f)
	if err != nil {
		return fmt.Errorf("fd %d is not berth's socket: %w", l.Lanes[0], err)
	}
	f.Close()
	wk := &worker{w: bufio.NewWriter(c), marks: os.NewFile(uintptr(l.Marks), "berth-marks")}
	tb := os.Getenv(FailVar)
	if badFiles != nil {
		tb = "fake worker: " + badFiles.Error()
	}
	if tb != "" {
		if err := writeFrame(wk.w, wire.TypeBootFailed, []byte(tb), nil); err != nil {
			return err
		}
		return wk.w.Flush()
	}
	if path := os.Getenv(LogVar); path != "" {
		if wk.log, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			return fmt.Errorf("opening %s: %w", LogVar, err)
		}
	}
	go wk.flushWhenAsked(os.NewFile(uintptr(l.Flush), "berth-asks"))
	hello := fmt.Sprintf("berth-wire\x00%d\x00%d\x00fake", wire.Version, os.Getpid())
	wk.mu.Lock()
	err = writeFrame(wk.w, wire.TypeHello, []byte(hello), nil)
	wk.mu.Unlock()
	if err != nil {
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
		if err := wk.handle(fr, br.Buffered() == 0); err != nil {
			return err
		}
	}
}

// handle starts request frame fr, behaves as its path says and answers
// it; last says no request is read and waiting behind it, so the answers
// held for a batch go out with this one.
func (wk *worker) handle(fr wire.Frame, last bool) error {
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
	path, query := get("PATH_INFO"), get("QUERY_STRING")
	wk.start(path, query)
	switch path {
	case "/crash":
		os.Exit(3)
	case "/hang":
		for {
			time.Sleep(time.Hour)
		}
	case "/sleep":
		q, _ := url.ParseQuery(query)
		ms, _ := strconv.Atoi(q.Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	n := strconv.Itoa(len(body))
	if fr.Flags&(wire.FlagBodyFD|wire.FlagBodySocket) != 0 {
		n = get("CONTENT_LENGTH")
	}
	text := fmt.Sprintf("%s\n%s\n%s\n%s\n", get("REQUEST_METHOD"), path, query, n)
	head := "200 OK\x00Content-Type\x00text/plain\x00Content-Length\x00" + strconv.Itoa(len(text)) +
		"\x00X-Pid\x00" + strconv.Itoa(os.Getpid()) + "\x00X-Batch\x00" + strconv.Itoa(wk.place)
	wk.mu.Lock()
	defer wk.mu.Unlock()
	err := writeFrame(wk.w, wire.TypeResponse, []byte(head), []byte(text))
	if err == nil && last {
		wk.place = 0
		err = wk.w.Flush()
	}
	return err
}

// start marks the request started, where berth reads it if the worker
// dies, and records it in the log.
func (wk *worker) start(path, query string) {
	wk.seq++
	wk.place++
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], wk.seq)
	_, _ = wk.marks.WriteAt(b[:], 0)
	if wk.log != nil {
		fmt.Fprintf(wk.log, "%d %s?%s\n", os.Getpid(), path, query)
	}
}

// flushWhenAsked sends the answers made so far each time berth asks.
func (wk *worker) flushWhenAsked(asks *os.File) {
	b := make([]byte, 64)
	for {
		if _, err := asks.Read(b); err != nil {
			return
		}
		wk.mu.Lock()
		_ = wk.w.Flush()
		wk.mu.Unlock()
	}
}

// writeFrame writes a frame whose payload is a uint32 length of head,
// head, then body (the layout of hello is the head alone).
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
