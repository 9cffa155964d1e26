package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// integrityBerth runs testdata's integrity app with marks in a temp dir;
// extra goes in the app block.
func integrityBerth(t *testing.T, extra string) (*e2e.Instance, string) {
	t.Helper()
	dir := t.TempDir()
	return e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "integrity:app", fmt.Sprintf("env = { INTEGRITY_DIR = %q }\n%s", dir, extra), "")), dir
}

// marks lists the marks of kind what: the pids that left them.
func marks(t *testing.T, dir, what string) []int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, what+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, n := range names {
		pid, _ := strconv.Atoi(strings.Split(filepath.Base(n), "-")[1])
		pids = append(pids, pid)
	}
	return pids
}

// waitMark waits up to d for a mark of kind what by pid.
func waitMark(t *testing.T, dir, what string, pid int, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		for _, p := range marks(t, dir, what) {
			if p == pid {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestChunkedCutShort: a chunked upload whose client ends its stream
// before the last chunk (or in the middle of the last chunk's line) is
// refused, in memory and past buffer_body_bytes alike, and the app is
// never called with it; the same upload sent whole, then ended, is served.
func TestChunkedCutShort(t *testing.T) {
	t.Parallel()
	b, dir := integrityBerth(t, `workers = 1
  buffer_body_bytes = "64KiB"`)
	head := "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	big := strings.Repeat("10000\r\n"+strings.Repeat("b", 0x10000)+"\r\n", 4) // 256 KiB: past the buffer
	cases := []struct {
		name, body string
		served     bool
	}{
		{"whole, then the stream ends", "5\r\nhello\r\n0\r\n\r\n", true},
		{"cut after a chunk", "5\r\nhello\r\n", false},
		{"cut inside a chunk", "5\r\nhel", false},
		{"last chunk without its CRLF", "5\r\nhello\r\n0\r\n", false},
		{"cut inside a trailer", "5\r\nhello\r\n0\r\nX-Sum: 1", false},
		{"spilled, whole", big + "0\r\n\r\n", true},
		{"spilled, cut", big, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(marks(t, dir, "upload"))
			c, err := net.Dial("tcp", b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, head+tc.body); err != nil {
				t.Fatal(err)
			}
			_ = c.(*net.TCPConn).CloseWrite()
			answer, _ := io.ReadAll(bufio.NewReader(c))
			status := e2e.StatusOf(string(answer))
			time.Sleep(100 * time.Millisecond) // a mark the app would leave
			called := len(marks(t, dir, "upload")) > before
			switch {
			case tc.served && (status != 200 || !called):
				t.Errorf("answered %d, app called %v; want 200 and called", status, called)
			case !tc.served && (status != 400 || called):
				t.Errorf("answered %d (%q), app called %v; want 400 and never called", status, answer, called)
			}
		})
	}
}

// TestChunkedBadLine: a chunked upload with a line of its framing that is
// not RFC 9112's (whitespace after a size, an extension that is not one,
// a bad trailer) is refused with 400 and the connection closed, whether
// the line comes first or after good chunks, in a body kept in memory or
// one past buffer_body_bytes on its way to a temp file; the app is never
// called with it. The client keeps its side open: the refusal is the
// line's, not the stream's end. Well-formed ones with BWS around ';' and
// '=' are served, in memory and spilled.
func TestChunkedBadLine(t *testing.T) {
	t.Parallel()
	b, dir := integrityBerth(t, `workers = 1
  buffer_body_bytes = "64KiB"`)
	head := "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	big := strings.Repeat("10000\r\n"+strings.Repeat("b", 0x10000)+"\r\n", 4) // 256 KiB: past the buffer
	cases := []struct {
		name, body string
		served     bool
	}{
		{"trailing space, first line", "5 \r\nhello\r\n0\r\n\r\n", false},
		{"trailing tab, first line", "5\t\r\nhello\r\n0\r\n\r\n", false},
		{"trailing space after good chunks", "3\r\nhel\r\n2 \r\nlo\r\n0\r\n\r\n", false},
		{"trailing space on the last chunk", "5\r\nhello\r\n0 \r\n\r\n", false},
		{"extension not a token", "5;a b\r\nhello\r\n0\r\n\r\n", false},
		{"trailer obs-fold", "5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n", false},
		{"spilled, trailing space after good chunks", big + "5 \r\nhello\r\n0\r\n\r\n", false},
		{"spilled, trailing space on the last chunk", big + "0 \r\n\r\n", false},
		{"BWS around ; and =", "5 ;a = b\r\nhello\r\n0\t;c\r\n\r\n", true},
		{"spilled, BWS", big + "5\t; a=\"q\"\r\nhello\r\n0\r\n\r\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(marks(t, dir, "upload"))
			c, err := net.Dial("tcp", b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			go io.WriteString(c, head+tc.body)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			time.Sleep(100 * time.Millisecond) // a mark the app would leave
			called := len(marks(t, dir, "upload")) > before
			if tc.served {
				if resp.StatusCode != 200 || !called {
					t.Errorf("answered %d (%q), app called %v; want 200 and called", resp.StatusCode, answer, called)
				}
				return
			}
			if resp.StatusCode != 400 || called {
				t.Errorf("answered %d (%q), app called %v; want 400 and never called", resp.StatusCode, answer, called)
			}
			if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("the connection stayed open after the 400 (read %d, %v)", n, err)
			}
		})
	}
}

// TestExitHooks: the app's atexit handlers run in each worker berth ends
// on purpose — recycled, retired by scaling down, left behind by a
// reload, stopped with berth — within graceful_timeout.
func TestExitHooks(t *testing.T) {
	t.Parallel()
	b, dir := integrityBerth(t, `max_requests = 3
  graceful_timeout = "5s"
  workers {
    min          = 1
    max          = 2
    spawn_after  = "50ms"
    idle_timeout = "1s"
  }`)
	pidOf := func(path string) int {
		code, body := b.Get(path)
		pid, err := strconv.Atoi(body)
		if code != 200 || err != nil {
			t.Fatalf("GET %s: %d %q", path, code, body)
		}
		return pid
	}

	// Recycled after max_requests.
	first := pidOf("/pid")
	for i := 0; i < 3 && pidOf("/pid") == first; i++ {
	}
	if !waitMark(t, dir, "atexit", first, 5*time.Second) {
		t.Errorf("recycle: no atexit mark from worker %d", first)
	}

	// Retired when the pool scales down: two at once make a second.
	seen := map[int]bool{}
	for try := 0; try < 5 && len(seen) < 2; try++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := pidOf("/sleep?0.3")
				mu.Lock()
				seen[p] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	if len(seen) < 2 {
		t.Fatalf("the pool never grew to two workers: %v", seen)
	}
	retired := 0
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline) && retired == 0; time.Sleep(50 * time.Millisecond) {
		for p := range seen {
			if !e2e.PIDAlive(p) && waitMark(t, dir, "atexit", p, 0) {
				retired = p
			}
		}
	}
	if retired == 0 {
		t.Errorf("scale-down: no retired worker of %v left an atexit mark", seen)
	}

	// Left behind by a reload.
	old := pidOf("/pid")
	if code, out := b.Reload(); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	if !waitMark(t, dir, "atexit", old, 5*time.Second) {
		t.Errorf("reload: no atexit mark from the old generation's worker %d", old)
	}

	// Stopped with berth.
	last := pidOf("/pid")
	_ = b.Cmd.Process.Signal(syscall.SIGTERM)
	<-b.Done
	if !waitMark(t, dir, "atexit", last, time.Second) {
		t.Errorf("stop: no atexit mark from worker %d", last)
	}
}

// TestErrorsFlush: wsgi.errors.write of half a line and flush() reach
// berth's log at once, not when the worker exits (PEP 3333).
func TestErrorsFlush(t *testing.T) {
	t.Parallel()
	b, _ := integrityBerth(t, "workers = 1")
	if code, _ := b.Get("/errors?abc"); code != 200 {
		t.Fatalf("GET /errors: %d", code)
	}
	if err := b.WaitFor(`flushed-abc`, 2*time.Second); err != nil {
		t.Errorf("the flushed half line is not in the log: %v", err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(b.Cmd.Process.Pid)); err != nil {
		t.Errorf("berth is gone: %v", err)
	}
}
