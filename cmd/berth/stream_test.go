package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/server"
)

// TestStalledReaders: whatever way a response goes out — copied, written
// from the worker's frame, streamed with or without a length, close-
// delimited, sent from a file — a client that stops reading does not keep
// the worker: the only worker serves the next request at once (berth
// holds the rest of the answer), and the stalled connection is closed
// once it has taken nothing for write_timeout (1 s).
func TestStalledReaders(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "64m.bin")
	if err := os.WriteFile(file, bytes.Repeat([]byte("f"), 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  timeout = \"60s\"", `write_timeout = "1s"`))
	get := func(target, proto string) string {
		return fmt.Sprintf("GET %s %s\r\nHost: x\r\n\r\n", target, proto)
	}
	for _, tc := range []struct{ name, req string }{
		{"chunked stream", get("/big?1024", "HTTP/1.1")},
		{"stream with Content-Length", get("/bigcl?1024", "HTTP/1.1")},
		{"one frame too big to copy", get("/biglist?67108864", "HTTP/1.1")},
		{"file_wrapper", get("/sendfile?"+file, "HTTP/1.1")},
		{"close-delimited for HTTP/1.0", get("/big?1024", "HTTP/1.0")},
		// Copied responses fill the socket first: one of them, or the
		// stream's head, is what blocks. (The last request closes the
		// connection, for the check below when berth served them all
		// once the client read.)
		{"pipelined behind copied bodies", strings.Repeat(get("/biglist?1000000", "HTTP/1.1"), 12) +
			"GET /bigcl?1024 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// No small receive buffer: it would make reading what is in
			// flight below crawl. 64 MiB overflows the default ones.
			io.WriteString(c, tc.req)
			// The answer's first byte says the worker has the request; the
			// client then stops reading.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatalf("no answer began: %v", err)
			}
			start := time.Now()
			if code, _ := b.Get("/status"); code != 418 {
				t.Errorf("next request = %d", code)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the worker was held %s by a client that stopped reading", d)
			}
			// berth gives up on the connection after write_timeout:
			// reading it then ends, with the bytes that were in flight,
			// rather than blocking.
			time.Sleep(3500 * time.Millisecond) // a few write_timeouts: the receive buffer fills first
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
				t.Errorf("the stalled connection was not closed by berth: %v", err)
			}
		})
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestSlowReader: a client that reads slowly but steadily (about 650
// KB/s, well under what fills a socket buffer in write_timeout = 1 s) gets
// every byte of large bodies: write_timeout bounds each slice berth
// writes, not a whole part or file.
func TestSlowReader(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789abcdef"), (4<<20)/16)
	file := filepath.Join(t.TempDir(), "4m.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", `write_timeout = "1s"`))
	for _, tc := range []struct {
		name, target string
		want         [32]byte
		n            int
	}{
		{"file_wrapper", "/sendfile?" + file, sha256.Sum256(data), len(data)},
		{"one frame too big to copy", "/biglist?4194304", sha256.Sum256(bytes.Repeat([]byte("z"), 4<<20)), 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.(*net.TCPConn).SetReadBuffer(16384)
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tc.target)
			slow := &trickle{r: c, per: 32 << 10, every: 50 * time.Millisecond}
			resp, err := http.ReadResponse(bufio.NewReaderSize(slow, 4096), &http.Request{Method: "GET"})
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil || int(n) != tc.n || [32]byte(h.Sum(nil)) != tc.want {
				t.Errorf("read %d of %d bytes (%v), sha256 match %v", n, tc.n, err, [32]byte(h.Sum(nil)) == tc.want)
			}
		})
	}
}

// trickle reads at most per bytes every interval.
type trickle struct {
	r     io.Reader
	per   int
	every time.Duration
	left  int
	next  time.Time
}

func (t *trickle) Read(p []byte) (int, error) {
	if t.left == 0 {
		time.Sleep(time.Until(t.next))
		t.next = time.Now().Add(t.every)
		t.left = t.per
	}
	n, err := t.r.Read(p[:min(len(p), t.left)])
	t.left -= n
	return n, err
}

// TestBatchedLargeRequests: requests that queue behind a busy worker go to
// it together, but never more than its socket holds beyond the first: a
// worker answering a big body back while berth is still writing it the
// next big request would wait on each other until the timeout.
func TestBatchedLargeRequests(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  timeout = \"5s\"\n  queue = 64", ""))
	// Quick requests first, so berth knows the app is fast and batches.
	for range 30 {
		b.Get("/status")
	}
	// Hold the only worker with a stream nobody reads, while uploads
	// queue behind it.
	c, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /big?1024 HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := io.ReadFull(c, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("m"), 512<<10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := map[string]int{}
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e2e.HTTPClient.Post(b.URL("/mirror"), "application/octet-stream", bytes.NewReader(body))
			key := ""
			if err != nil {
				key = err.Error()
			} else {
				got, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case rerr != nil:
					key = rerr.Error()
				case resp.StatusCode != 200:
					key = resp.Status
				case !bytes.Equal(got, body):
					key = "wrong body"
				}
			}
			if key != "" {
				mu.Lock()
				failed[key]++
				mu.Unlock()
			}
		}()
	}
	b.WaitStatus(10*time.Second, "all six uploads queued", func(st server.Status) bool { return st.Queued == 6 })
	c.Close() // the worker is free: they go as a batch
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("6 uploads of 512 KiB queued together and mirrored back; failures: %v", failed)
	}
}
