package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/server"
)

// rssPeak samples the resident memory of berth's own process and of its
// workers while a transfer runs, and keeps the peaks.
type rssPeak struct {
	mu            sync.Mutex
	berth, worker int64
	stop          chan struct{}
	done          chan struct{}
}

func watchRSS(pid int) *rssPeak {
	p := &rssPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			b := rssOf(pid)
			var w int64
			for _, c := range e2e.ChildPIDs(pid) {
				w = max(w, rssOf(c))
			}
			p.mu.Lock()
			p.berth, p.worker = max(p.berth, b), max(p.worker, w)
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *rssPeak) finish() (berth, worker int64) {
	close(p.stop)
	<-p.done
	return p.berth, p.worker
}

// rssOf is a process's resident set in bytes, from /proc.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	var kb int64
	if s := e2e.RegexpFind(string(b), `VmRSS:\s+(\d+) kB`); s != "" {
		fmt.Sscanf(s, "%d", &kb)
	}
	return kb << 10
}

// pattern is an endless reader of a repeating, non-zero pattern.
type pattern struct{ off int }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.off % 251)
		p.off++
	}
	return len(b), nil
}

// TestBigBodies moves 256 MiB each way — an upload read in blocks by the
// app, a generated response, a file through wsgi.file_wrapper — and
// checks every byte arrives while neither berth nor its worker grows
// anywhere near the body's size: large bodies stream and spill, they are
// never held whole. The peaks are logged (43-49 MiB for berth, 19 for the
// worker, with 1 GiB or 256 MiB bodies alike: the size does not show in
// them, so the test moves 256 MiB, which under the race detector takes a
// quarter of the 87 s that 1 GiB took).
func TestBigBodies(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("moves 1 GiB through loopback; skipped with -short")
	}
	const size = 256 << 20
	const bound = 128 << 20 // half of what a buffered body would cost
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  max_body_bytes = \"2GiB\"\n  timeout = \"120s\"", ""))
	client := &http.Client{Timeout: 5 * time.Minute}

	check := func(what string, peak *rssPeak) {
		t.Helper()
		berth, worker := peak.finish()
		t.Logf("%s: peak RSS berth %d MiB, worker %d MiB", what, berth>>20, worker>>20)
		if berth > bound || worker > bound {
			t.Errorf("%s: peak RSS berth %d MiB, worker %d MiB; want both under %d MiB", what, berth>>20, worker>>20, bound>>20)
		}
	}

	t.Run("upload", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			want := sha256.New()
			body := io.TeeReader(io.LimitReader(&pattern{}, size), want)
			req, _ := http.NewRequest("POST", b.URL("/hash"), body)
			if !chunked {
				req.ContentLength = size
			}
			peak := watchRSS(b.Cmd.Process.Pid)
			resp, err := client.Do(req)
			if err != nil {
				peak.finish()
				t.Fatal(err)
			}
			var got struct {
				Length int64
				SHA256 string
				Input  string
			}
			json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			check(fmt.Sprintf("256 MiB upload (chunked %v)", chunked), peak)
			if got.Length != size || got.SHA256 != hex.EncodeToString(want.Sum(nil)) {
				t.Errorf("chunked %v: the app read %d bytes, sha256 %s", chunked, got.Length, got.SHA256)
			}
			if got.Input != "BufferedReader" {
				t.Errorf("wsgi.input of a spilled body is a %s, want the temp file (BufferedReader)", got.Input)
			}
		}
	})

	download := func(t *testing.T, what, path string, want []byte) {
		peak := watchRSS(b.Cmd.Process.Pid)
		resp, err := client.Get(b.URL(path))
		if err != nil {
			peak.finish()
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		check(what, peak)
		if err != nil || n != size || (want != nil && hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(want)) {
			t.Errorf("%s: %d bytes (%v)", what, n, err)
		}
		if path != "/big?4096" && resp.ContentLength != size {
			t.Errorf("%s: Content-Length %d, want the file's size", what, resp.ContentLength)
		}
	}
	t.Run("generated response", func(t *testing.T) {
		download(t, "256 MiB generated response", "/big?4096", nil) // 4096 × 64 KiB
	})
	t.Run("file_wrapper", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "big.bin")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(&pattern{}, size)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		download(t, "256 MiB file through wsgi.file_wrapper (sendfile)", "/sendfile?"+path, h.Sum(nil))
	})
}

// TestSharedBodies sends bodies of the sizes berth passes in shared memory
// (32 KiB up to buffer_body_bytes), from several clients at once so that
// the buffers are reused, and checks each arrives whole and as itself —
// also the one an app keeps unread past its request while the buffer it
// came in serves the next upload.
func TestSharedBodies(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""))
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(path string, body []byte) (map[string]any, error) {
		resp, err := client.Post(b.URL(path), "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var got map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
			return nil, fmt.Errorf("status %d, %v", resp.StatusCode, err)
		}
		return got, nil
	}
	body := func(size, seed int) []byte {
		p := &pattern{off: seed}
		buf := make([]byte, size)
		p.Read(buf)
		return buf
	}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

	t.Run("kept past the request", func(t *testing.T) {
		first, second := body(200<<10, 1), body(200<<10, 2)
		if _, err := post("/keep-input", first); err != nil {
			t.Fatal(err)
		}
		if _, err := post("/echo", second); err != nil {
			t.Fatal(err)
		}
		got, err := post("/kept", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got["sha256"] != sum(first) {
			t.Errorf("the kept wsgi.input read %v bytes, sha256 %v; want the first upload's %s (the second's is %s)",
				got["length"], got["sha256"], sum(first), sum(second))
		}
	})

	// One client, one buffer, many uploads: more bytes in all than the
	// worker keeps mapped, all through the one mapping it keeps.
	t.Run("one after another", func(t *testing.T) {
		up := body(1<<20, 9)
		before := map[int]int{}
		for _, pid := range e2e.ChildPIDs(b.Cmd.Process.Pid) {
			before[pid] = sharedMaps(pid)
		}
		for i := range 80 {
			got, err := post("/echo", up)
			if err != nil {
				t.Fatalf("upload %d: %v", i+1, err)
			}
			if got["sha256"] != sum(up) {
				t.Fatalf("upload %d: sha256 %v, want %s", i+1, got["sha256"], sum(up))
			}
		}
		for _, pid := range e2e.ChildPIDs(b.Cmd.Process.Pid) {
			if n := sharedMaps(pid); n > before[pid]+1 {
				t.Errorf("worker %d has %d shared body buffers mapped after uploads through one (%d before)", pid, n, before[pid])
			}
		}
	})

	// More clients than the worker keeps mappings of berth's buffers.
	const clients = 24
	t.Run("many at once", func(t *testing.T) {
		sizes := []int{32<<10 - 1, 32 << 10, 100 << 10, 1 << 20, 300 << 10, 1<<20 - 7, 65 << 10, 700 << 10}
		concurrently(t, clients, len(sizes), func(c, i int) error {
			size := sizes[(i+c)%len(sizes)]
			up := body(size, c*1000+i)
			got, err := post("/echo", up)
			if err != nil {
				return fmt.Errorf("%d bytes: %v", size, err)
			}
			if got["sha256"] != sum(up) || got["length"] != float64(size) {
				return fmt.Errorf("%d bytes: the app read %v bytes, sha256 %v; want %s", size, got["length"], got["sha256"], sum(up))
			}
			return nil
		})
		// What stays mapped is bounded: berth keeps at most 64 idle
		// buffers, the worker maps at most 16.
		berth := sharedMaps(b.Cmd.Process.Pid)
		var worker int
		for _, pid := range e2e.ChildPIDs(b.Cmd.Process.Pid) {
			worker = max(worker, sharedMaps(pid))
		}
		t.Logf("shared body buffers mapped: berth %d, worker %d", berth, worker)
		if berth == 0 || berth > 64 || worker == 0 || worker > 16 {
			t.Errorf("shared body buffers mapped: berth %d, worker %d; want 1-64 and 1-16", berth, worker)
		}
	})
}

// sharedMaps counts the shared body buffers (memfds named berth-body) a
// process has mapped.
func sharedMaps(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "/memfd:berth-body")
}

// TestSharedResponses fetches response bodies of the sizes a worker
// leaves in its out ring (32 KiB up to 1 MiB), each a different slice of
// the pattern, from several clients at once — so that rings fill, wrap
// and fall back to the socket while berth still sends earlier bodies —
// and checks each arrives whole and as itself: by HTTP/1.1, as a HEAD,
// and short of its Content-Length (sent from the ring as a stream). Then
// that the worker's ring was used at all: its shared memory is resident.
func TestSharedResponses(t *testing.T) {
	t.Parallel()
	for _, cfg := range []string{"workers = 2", "workers = 1\n  threads = 3"} {
		t.Run(strings.ReplaceAll(cfg, "\n  ", ", "), func(t *testing.T) {
			b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", cfg, ""))
			client := &http.Client{Timeout: 30 * time.Second}
			sizes := []int{32<<10 - 1, 32 << 10, 100 << 10, 1 << 20, 300 << 10, 1<<20 + 1, 700 << 10, 256 << 10}
			const clients = 12
			concurrently(t, clients, 3*len(sizes), func(c, i int) error {
				size, seed := sizes[(i+c)%len(sizes)], c*100+i
				url := b.URL(fmt.Sprintf("/pattern?n=%d&seed=%d", size, seed))
				method := "GET"
				if i%7 == 3 {
					method = "HEAD"
				}
				req, _ := http.NewRequest(method, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					return fmt.Errorf("%s %d bytes: %v", method, size, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := make([]byte, size)
				(&pattern{off: seed}).Read(want)
				switch {
				case err != nil || resp.StatusCode != 200:
					return fmt.Errorf("%s %d bytes: status %d, %v", method, size, resp.StatusCode, err)
				case resp.ContentLength != int64(size):
					return fmt.Errorf("%s %d bytes: Content-Length %d", method, size, resp.ContentLength)
				case method == "HEAD" && len(got) != 0:
					return fmt.Errorf("HEAD %d bytes: a body of %d bytes", size, len(got))
				case method == "GET" && !bytes.Equal(got, want):
					return fmt.Errorf("GET %d bytes (seed %d): %d bytes came, not the ones sent", size, seed, len(got))
				}
				return nil
			})

			// A body short of its Content-Length goes out as a stream
			// (from the ring), and the connection is closed after it.
			raw := b.Raw("GET /pattern?n=200000&seed=7&short=1 HTTP/1.1\r\nHost: x\r\n\r\n", 10*time.Second)
			head, body, _ := strings.Cut(raw, "\r\n\r\n")
			want := make([]byte, 200000)
			(&pattern{off: 7}).Read(want)
			if cl := e2e.RegexpFind(head, `Content-Length: (\d+)`); cl != "200001" || body != string(want) {
				t.Errorf("short body: Content-Length %s, %d bytes (want 200001 and the 200000 sent)", cl, len(body))
			}

			var shmem int64
			for _, pid := range e2e.ChildPIDs(b.Cmd.Process.Pid) {
				st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
				var kb int64
				fmt.Sscanf(e2e.RegexpFind(string(st), `RssShmem:\s+(\d+) kB`), "%d", &kb)
				shmem = max(shmem, kb<<10)
			}
			t.Logf("worker shared memory resident: %d KiB", shmem>>10)
			if shmem < 1<<20 {
				t.Errorf("worker shared memory resident %d KiB; bodies of up to 1 MiB went through the out ring, so want at least 1 MiB", shmem>>10)
			}
		})
	}
}

// TestSlowClientRingBody: answers whose bodies were in the worker's out
// ring reach a client slow to read unchanged — written from the ring while
// its socket takes them at once (their places held until then), copied out
// once it does not (front's sendsAtOnce) — while the worker thread (the
// only one) goes on answering others through the ring. That a held body
// outlives its write is front's TestHeldBodyOutlivesWrite.
func TestSlowClientRingBody(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""))
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		// A small window from the start, so the body waits in berth's
		// write for the client.
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10)
		})
	}}
	slow, err := d.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// Six at once: the first answers fill the kernel's buffers (up to
	// 4 MiB on loopback), the next wait in berth's write.
	const n, pipelined = 1000000, 6
	var reqs strings.Builder
	for i := range pipelined {
		fmt.Fprintf(&reqs, "GET /pattern?n=%d&seed=%d HTTP/1.1\r\nHost: x\r\n\r\n", n, i+1)
	}
	if _, err := io.WriteString(slow, reqs.String()); err != nil {
		t.Fatal(err)
	}
	// The slow client reads nothing while others are answered; their
	// bodies take the ring's other places, or the socket. (Once its first
	// answer has left the worker, which is free again.)
	b.WaitStatus(10*time.Second, "the slow client's first answer out of the worker", func(st server.Status) bool { return st.Served >= 1 && st.Busy == 0 })
	client := &http.Client{Timeout: 30 * time.Second}
	concurrently(t, 3, 4, func(c, i int) error {
		size, seed := 700000, 10*c+i+20
		resp, err := client.Get(b.URL(fmt.Sprintf("/pattern?n=%d&seed=%d", size, seed)))
		if err != nil {
			return err
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := make([]byte, size)
		(&pattern{off: seed}).Read(want)
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("seed %d while a client is slow: %d bytes, %v, not the ones sent", seed, len(got), err)
		}
		return nil
	})
	slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(slow)
	for i := range pipelined {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		want := make([]byte, n)
		(&pattern{off: i + 1}).Read(want)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("the slow client's answer %d: %d bytes, %v; not the ones sent (its ring place was reused while berth wrote it)", i+1, len(got), err)
		}
	}
}

// TestSharedBodiesPerApp: two apps' uploads never share a buffer. A
// worker keeps mappings of the buffers it was sent, so a buffer that
// served one app and then another would let the first app's worker read
// the second's request bodies. The buffers each worker has mapped (by
// inode, from /proc/PID/maps) must be disjoint.
func TestSharedBodiesPerApp(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	app := func(name, mount string) string {
		return e2e.ProbeApp(name, py, fmt.Sprintf("mount = %q", mount))
	}
	b := e2e.StartBerth(t, "listener \"http\" {\n  address = \"127.0.0.1:0\"\n}\n"+app("one", "/")+app("two", "/two"))
	body := bytes.Repeat([]byte("u"), 100<<10)
	for i := range 20 {
		path := []string{"/echo", "/two/echo"}[i%2]
		resp, err := http.Post(b.URL(path), "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	inodes := func(path string) map[string]bool {
		t.Helper()
		_, out := b.Get(path)
		var got struct{ PID int }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: %q", path, out)
		}
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", got.PID))
		if err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, line := range strings.Split(string(maps), "\n") {
			if f := strings.Fields(line); len(f) >= 6 && strings.HasPrefix(f[5], "/memfd:berth-body") {
				set[f[4]] = true
			}
		}
		return set
	}
	one, two := inodes("/pid"), inodes("/two/pid")
	t.Logf("buffers mapped: app one %d, app two %d", len(one), len(two))
	if len(one) == 0 || len(two) == 0 {
		t.Fatalf("buffers mapped: app one %d, app two %d; want some each", len(one), len(two))
	}
	for ino := range one {
		if two[ino] {
			t.Errorf("buffer (inode %s) mapped by both apps' workers", ino)
		}
	}
}

// concurrently runs f(c, i) for i from 0 to rounds-1 in each of clients
// goroutines (c their number) and reports every error.
func concurrently(t *testing.T, clients, rounds int, f func(c, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if err := f(c, i); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSocketBodies sends bodies that berth, over TCP, leaves in the
// client's socket for the worker to read itself (128 KiB up to
// buffer_body_bytes): pipelined with other requests on a new connection,
// which serves on after them (also with a reader buffer as large as a
// body's start); trickled in pieces (on a connection that
// uploaded before); slowly, with pauses
// (read by berth then), the one worker free for others meanwhile; cut
// off, answered 408; read by a worker that then dies (a 502, and the
// connection, in step, serves on); refused before a worker saw it (a 503,
// and on), or by berth itself (its 400 comes); and one past what the kernel lets wait
// in a socket, which goes through shared memory instead. That the worker
// read them from the socket, its read count says (/proc/PID/io: a copy
// from shared memory is no read).
func TestSocketBodies(t *testing.T) {
	t.Parallel()
	// body_timeout is 4 s, three past the paused upload's 1 s pause: the
	// rest of that upload must arrive within it beside other tests too.
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app",
		"workers = 1\n  queue_timeout = \"500ms\"\n  buffer_body_bytes = \"64MiB\"\n  max_body_bytes = \"128MiB\"", `body_timeout = "4s"`))
	body := func(size, seed int) []byte {
		buf := make([]byte, size)
		(&pattern{off: seed}).Read(buf)
		return buf
	}
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	post := func(path string, b []byte) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", path, len(b), b)
	}
	const status = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}
	echoed := func(t *testing.T, br *bufio.Reader, want []byte) {
		t.Helper()
		resp, got := e2e.ReadResponse(t, br, "POST")
		var v struct {
			Length int
			SHA256 string
		}
		json.Unmarshal([]byte(got), &v)
		if resp.StatusCode != 200 || v.Length != len(want) || v.SHA256 != sum(want) {
			t.Errorf("echo of %d bytes: %d, the app read %d bytes, sha256 %s; want %s", len(want), resp.StatusCode, v.Length, v.SHA256, sum(want))
		}
	}
	teapot := func(t *testing.T, br *bufio.Reader) {
		t.Helper()
		if resp, _ := e2e.ReadResponse(t, br, "GET"); resp.StatusCode != 418 {
			t.Errorf("the request after a socket body: %d, want 418", resp.StatusCode)
		}
	}
	served := func(t *testing.T) {
		t.Helper()
		if code, _ := b.Get("/pid"); code != 200 {
			t.Errorf("GET /pid = %d", code)
		}
	}
	// socketReads is what the one worker has read with read(2) and its
	// kin (rchar).
	socketReads := func(t *testing.T) int64 {
		t.Helper()
		pids := e2e.ChildPIDs(b.Cmd.Process.Pid)
		if len(pids) != 1 {
			t.Fatalf("berth has %d workers, want 1", len(pids))
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pids[0]))
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		fmt.Sscan(e2e.RegexpFind(string(raw), `rchar: (\d+)`), &n)
		return n
	}
	// bySocket checks that the worker read most of n body bytes itself
	// since from: what berth read of each (with its head, and on a new
	// connection while its window grew) came in the frame.
	bySocket := func(t *testing.T, from, n int64) {
		t.Helper()
		if got := socketReads(t) - from; got < n/2 {
			t.Errorf("the worker read %d bytes with read(2) and its kin, want most of %d: the bodies did not come by socket", got, n)
		}
	}

	t.Run("pipelined", func(t *testing.T) {
		c, br := dial(t)
		from := socketReads(t)
		big, mid := body(1<<20, 1), body(300<<10, 2)
		go io.WriteString(c, post("/echo", big)+status+post("/echo", mid)+post("/echo", []byte("abc")))
		echoed(t, br, big)
		teapot(t, br)
		echoed(t, br, mid)
		echoed(t, br, []byte("abc"))
		go io.WriteString(c, post("/echo", big))
		echoed(t, br, big)
		bySocket(t, from, int64(2*len(big)+len(mid)))
	})

	t.Run("trickled", func(t *testing.T) {
		c, br := dial(t)
		// An upload first: trickled into a new connection, most of a body
		// would be read by berth while the window grows.
		warm := body(1<<20, 0)
		go io.WriteString(c, post("/echo", warm))
		echoed(t, br, warm)
		from := socketReads(t)
		up := post("/echo", body(512<<10, 3))
		for len(up) > 0 {
			n := min(len(up), 64<<10)
			io.WriteString(c, up[:n])
			up = up[n:]
			time.Sleep(20 * time.Millisecond)
		}
		echoed(t, br, body(512<<10, 3))
		bySocket(t, from, 512<<10)
	})

	t.Run("paused", func(t *testing.T) {
		c, br := dial(t)
		up := body(512<<10, 4)
		paused := time.Now()
		io.WriteString(c, post("/echo", up)[:300<<10])
		time.Sleep(300 * time.Millisecond) // the client pauses mid-upload
		served(t)                          // the one worker is not waiting for the upload
		// The pause is 1 s from the first write, however long the
		// request above took.
		time.Sleep(time.Until(paused.Add(time.Second)))
		io.WriteString(c, post("/echo", up)[300<<10:])
		echoed(t, br, up)
	})

	t.Run("cut off", func(t *testing.T) {
		c, _ := dial(t)
		io.WriteString(c, post("/echo", body(512<<10, 5))[:300<<10])
		served(t)
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("reading: %v (berth did not end the stalled upload)", err)
		}
		if code := e2e.StatusOf(string(got)); code != 408 {
			t.Errorf("an upload stalled past body_timeout: %q, want 408", got)
		}
		served(t)
	})

	t.Run("worker dies after reading", func(t *testing.T) {
		c, br := dial(t)
		up := body(256<<10, 6)
		go io.WriteString(c, post("/exit-after-read", up)+status)
		if resp, _ := e2e.ReadResponse(t, br, "POST"); resp.StatusCode != 502 || resp.Close {
			t.Errorf("a worker that died having read the body: %d, close %v; want 502 on a connection still in step", resp.StatusCode, resp.Close)
		}
		teapot(t, br)
		served(t)
	})

	t.Run("refused before a worker saw it", func(t *testing.T) {
		busy := make(chan int)
		// The worker sleeps long enough for the upload to reach the queue
		// and wait its queue_timeout (500 ms) there, even when other tests
		// slow the upload's reading (it took 850 ms once beside them).
		go func() { code, _ := b.Get("/sleep?3"); busy <- code }()
		b.WaitStatus(5*time.Second, "the one worker asleep", func(st server.Status) bool { return st.Busy == 1 })
		c, br := dial(t)
		go io.WriteString(c, post("/echo", body(256<<10, 8)))
		if resp, _ := e2e.ReadResponse(t, br, "POST"); resp.StatusCode != 503 || resp.Close {
			t.Errorf("an upload that waited past queue_timeout: %d, close %v; want 503 on a connection still in step", resp.StatusCode, resp.Close)
		}
		if code := <-busy; code != 200 {
			t.Errorf("GET /sleep = %d", code)
		}
		io.WriteString(c, status)
		teapot(t, br)
	})

	t.Run("refused by berth", func(t *testing.T) {
		c, br := dial(t)
		up := strings.Replace(post("/echo", body(256<<10, 9)), "Host: x", "Host: x\r\nX-Bad: a\x00b", 1)
		go io.WriteString(c, up)
		resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
		if err != nil {
			t.Fatalf("a request refused with its body unread: %v (want its 400, not a reset)", err)
		}
		if resp.StatusCode != 400 {
			t.Errorf("a NUL in a header: %d, want 400", resp.StatusCode)
		}
	})

	t.Run("pipelined, large header buffer", func(t *testing.T) {
		// fasthttp's reader, as large as max_header_bytes, takes more
		// of a body on each read berth makes while the window grows.
		// On a new connection, whose window grows meanwhile, with a
		// second upload right behind the first.
		b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", `max_header_bytes = "256KiB"`))
		first, second := body(1<<20, 10), body(1<<20, 11)
		for range 3 {
			c, err := net.Dial("tcp", b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			go io.WriteString(c, post("/echo", first)+post("/echo", second)+status)
			echoed(t, br, first)
			echoed(t, br, second)
			teapot(t, br)
			c.Close()
		}
	})

	t.Run("past the kernel's limit", func(t *testing.T) {
		raw, err := os.ReadFile("/proc/sys/net/ipv4/tcp_rmem")
		f := strings.Fields(string(raw))
		var most int
		if err == nil && len(f) == 3 {
			fmt.Sscan(f[2], &most)
		}
		size := most/2 + 1<<20
		if most == 0 || size > 64<<20 {
			t.Skipf("tcp_rmem %q: a body past half its largest buffer would not fit buffer_body_bytes (64 MiB)", raw)
		}
		c, br := dial(t)
		from := socketReads(t)
		up := body(size, 7)
		go io.WriteString(c, post("/echo", up))
		echoed(t, br, up)
		if got := socketReads(t) - from; got >= int64(size)/2 {
			t.Errorf("a %d-byte body past the socket's limit: the worker read %d bytes from a socket, want it through shared memory", size, got)
		}
	})
}
