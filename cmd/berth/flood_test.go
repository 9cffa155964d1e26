package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/server"
)

// TestEarlyRefusalSeen: an upload refused before its body is read (413
// for a declared body past max_body_bytes) reaches the client whole
// although the client is still sending: berth lingers, reading and
// dropping the rest, instead of closing into a reset that destroys its
// answer. curl without Expect: 100-continue, 20 times; then a raw client
// that goes on sending.
func TestEarlyRefusalSeen(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl: apt-get install curl")
	}
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", `workers = 1
  max_body_bytes = "1MiB"`, ""))
	big := filepath.Join(t.TempDir(), "64m")
	if err := os.WriteFile(big, make([]byte, 64<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		out, _ := exec.Command(curl, "-sS", "-H", "Expect:", "--data-binary", "@"+big, "-w", "\n%{http_code}", b.URL("/echo")).CombinedOutput()
		if !strings.HasSuffix(string(out), "\n413") || !strings.Contains(string(out), "max_body_bytes") {
			t.Fatalf("upload %d: curl saw %q, want the 413 and its body", i+1, out)
		}
	}

	c, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	// It sends 32 MiB of a declared 256 MiB and reads only then: no reset
	// may interrupt its sending (curl reports that as "connection reset"
	// instead of the answer), and berth's answer must be waiting.
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 256<<20)
	sent := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for range 512 {
			if _, err := c.Write(chunk); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	if err := <-sent; err != nil {
		t.Errorf("sending the refused body failed: %v (berth closed into a reset instead of lingering)", err)
	}
	// Time for a reset, if berth sent one, to arrive and discard the
	// answer waiting in the socket: reading at once could beat it.
	time.Sleep(300 * time.Millisecond)
	resp, body := e2e.ReadResponse(t, bufio.NewReader(c), "POST")
	if resp.StatusCode != 413 || !strings.Contains(body, "max_body_bytes") {
		t.Errorf("a client that goes on sending got %d %q, want 413 naming the limit", resp.StatusCode, body)
	}
}

// openPartial opens n connections that each send the start of a request
// line and wait, as a flood would; it returns them, or fewer if dialing
// fails.
func openPartial(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break
		}
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\n")) // past TCP_DEFER_ACCEPT
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// TestDescriptorFlood: berth at its file limit (RLIMIT_NOFILE 128, set
// with prlimit) with more connections than descriptors goes on running,
// says once that it cannot accept, and serves new requests once the flood
// closes. (fasthttp's Serve returns on EMFILE, which used to take the
// whole instance down.)
func TestDescriptorFlood(t *testing.T) {
	// Serial: beside other tests, the flood's connections close slowly
	// enough that berth, accepting the ones still queued as descriptors
	// free, runs out again and recovers several times (each reported once),
	// where the test wants the one episode.
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("no prlimit (util-linux)")
	}
	b := e2e.StartBerthUnder(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", `max_connections = 100000
  header_timeout = "30s"`), prlimit, "--nofile=128:128")
	flood := openPartial(t, b.Addr, 200)
	if err := b.WaitFor(`cannot accept connections: out of file descriptors`, 5*time.Second); err != nil {
		t.Fatalf("%d connections open, berth did not run out: %v", len(flood), err)
	}
	time.Sleep(500 * time.Millisecond) // berth must live through this half second at its limit
	select {
	case <-b.Done:
		t.Fatalf("berth exited during the flood: %v", b.Err)
	default:
	}
	for _, c := range flood {
		c.Close()
	}
	if code, _ := b.Get("/pid"); code != 200 {
		t.Errorf("after the flood: GET /pid %d", code)
	}
	if err := b.WaitFor(`accepting connections again`, 5*time.Second); err != nil {
		t.Error(err)
	}
	if n := strings.Count(b.Logs.String(), "cannot accept connections"); n != 1 {
		t.Errorf("the flood was reported %d times, want once", n)
	}
}

// TestConnectionCaps: past max_connections_per_ip a peer's new
// connection is closed at once (a trusted proxy is not capped), and past
// max_connections (the default: three quarters of the file limit) a new
// connection gets 503; berth serves again as they close.
func TestConnectionCaps(t *testing.T) {
	t.Parallel()
	python := e2e.SystemPython(t)
	perIP := e2e.StartBerth(t, e2e.AppConfig(python, "probe:app", "workers = 1", `max_connections_per_ip = 5
  trusted_proxies = []`))
	held := openPartial(t, perIP.Addr, 5)
	extra := openPartial(t, perIP.Addr, 1)[0]
	_ = extra.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("a sixth connection from one address was kept (read %d, %v)", n, err)
	}
	held[0].Close()
	perIP.WaitStatus(5*time.Second, "berth sees the closed connection", func(st server.Status) bool {
		return metrics.Total(st.Metrics, "berth_connections_open", nil) < 5
	})
	if code, _ := perIP.Get("/pid"); code != 200 {
		t.Errorf("with a place free again: GET /pid %d", code)
	}

	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("no prlimit (util-linux)")
	}
	capped := e2e.StartBerthUnder(t, e2e.AppConfig(python, "probe:app", "workers = 1", `header_timeout = "30s"`), prlimit, "--nofile=128:128")
	conns := openPartial(t, capped.Addr, 110) // the default cap: 96
	// Each connection is read at once (its own 2 s): fasthttp pauses
	// 100 ms after each connection it refuses, so the refusals arrive in
	// turn, over a second and more.
	var refused atomic.Int64
	var reading sync.WaitGroup
	for _, c := range conns {
		reading.Add(1)
		go func() {
			defer reading.Done()
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if b, _ := bufio.NewReader(c).Peek(12); strings.HasPrefix(string(b), "HTTP/1.1 503") {
				refused.Add(1)
			}
		}()
	}
	reading.Wait()
	if refused.Load() == 0 {
		t.Errorf("110 connections against a cap of 96: none refused")
	}
	if strings.Contains(capped.Logs.String(), "cannot accept connections") {
		t.Errorf("berth ran out of descriptors under its own cap")
	}
	for _, c := range conns {
		c.Close()
	}
	capped.WaitStatus(5*time.Second, "berth sees the connections closed", func(st server.Status) bool {
		return metrics.Total(st.Metrics, "berth_connections_open", nil) == 0
	})
	if code, _ := capped.Get("/pid"); code != 200 {
		t.Errorf("after the connections closed: GET /pid %d", code)
	}
}
