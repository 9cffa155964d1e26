package main

import (
	"bufio"
	"context"
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
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// The HTTP chapter of the end-to-end tests: what a client sends and gets
// (environ, bodies, limits, keep-alive, timeouts, HEAD and HTTP/1.0,
// streams), through a real berth and real Python workers.

// TestEnviron checks the PEP 3333 environ a worker builds.
func TestEnviron(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "", ""))
	req := "POST /a%20b/%C3%A9%2F?x=1&y=%20 HTTP/1.1\r\n" +
		"Host: example.test:8080\r\n" +
		"Content-Type: text/plain\r\n" +
		"Content-Length: 5\r\n" +
		"X-Dup: one\r\n" +
		"X-Dup: two\r\n" +
		"Cookie: a=1\r\n" +
		"Cookie: b=2\r\n" +
		"X_Spoofed: yes\r\n" +
		"User-Agent: probe/1\r\n" +
		"Connection: close\r\n" +
		"\r\nhello"
	raw := b.Raw(strings.Replace(req, "POST /", "POST /env/", 1), 10*time.Second)
	resp, body := e2e.ReadResponse(t, bufio.NewReader(strings.NewReader(raw)), "POST")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	want := map[string]any{
		"REQUEST_METHOD":        "POST",
		"SCRIPT_NAME":           "",
		"PATH_INFO":             "/env/a b/\u00c3\u00a9/", // UTF-8 bytes read as latin-1
		"QUERY_STRING":          "x=1&y=%20",
		"REQUEST_URI":           "/env/a%20b/%C3%A9%2F?x=1&y=%20",
		"CONTENT_TYPE":          "text/plain",
		"CONTENT_LENGTH":        "5",
		"SERVER_NAME":           "example.test",
		"SERVER_PORT":           e2e.PortOf(b.Addr), // where the request came in, not the Host's
		"SERVER_PROTOCOL":       "HTTP/1.1",
		"REMOTE_ADDR":           "127.0.0.1",
		"HTTP_HOST":             "example.test:8080",
		"HTTP_X_DUP":            "one, two",
		"HTTP_COOKIE":           "a=1; b=2",
		"HTTP_USER_AGENT":       "probe/1",
		"wsgi.url_scheme":       "http",
		"wsgi.multithread":      false,
		"wsgi.multiprocess":     true,
		"wsgi.run_once":         false,
		"wsgi.input_terminated": true,
		"wsgi.input":            "BytesIO",
		"wsgi.errors":           true,
	}
	for k, v := range want {
		if fmt.Sprint(env[k]) != fmt.Sprint(v) {
			t.Errorf("environ[%q] = %#v, want %#v", k, env[k], v)
		}
	}
	if fmt.Sprint(env["wsgi.version"]) != "[1 0]" {
		t.Errorf("wsgi.version = %v", env["wsgi.version"])
	}
	for _, k := range []string{"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_X_SPOOFED"} {
		if _, ok := env[k]; ok {
			t.Errorf("environ has %s, which it must not", k)
		}
	}
	if _, ok := env["REMOTE_PORT"]; !ok {
		t.Errorf("environ lacks REMOTE_PORT")
	}
	if id := resp.Header.Get("X-Request-ID"); len(id) != 16 || env["REQUEST_ID"] != id {
		t.Errorf("X-Request-ID %q, REQUEST_ID %v: want the same 16 hex digits", id, env["REQUEST_ID"])
	}

	// berth reuses its environ buffers from request to request: one
	// request's headers must not show in the next one's environ.
	get := func(headers map[string]string) map[string]any {
		req, _ := http.NewRequest("GET", b.URL("/env/"), nil)
		for k, v := range headers {
			req.Header.Add(k, v)
		}
		resp, err := e2e.HTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		if env["REQUEST_ID"] != resp.Header.Get("X-Request-ID") {
			t.Errorf("REQUEST_ID %v, X-Request-ID %q", env["REQUEST_ID"], resp.Header.Get("X-Request-ID"))
		}
		return env
	}
	for i := 0; i < 20; i++ {
		get(map[string]string{"X-A": "1", "X-B": "2", "X-C": "3", "X-D": "4"})
		env := get(map[string]string{"X-B": "only", "X-Request-ID": "given-id.1"})
		if env["HTTP_X_B"] != "only" || env["HTTP_X_A"] != nil || env["HTTP_X_C"] != nil || env["REQUEST_ID"] != "given-id.1" {
			t.Fatalf("second request's environ: X_A %v, X_B %v, X_C %v, REQUEST_ID %v", env["HTTP_X_A"], env["HTTP_X_B"], env["HTTP_X_C"], env["REQUEST_ID"])
		}
	}
}

func TestRequestBodies(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", `max_body_bytes = "4MiB"`, ""))
	big := strings.Repeat("berth-body-", 300000) // 3.3 MB, several socket buffers
	sum := sha256.Sum256([]byte(big))

	t.Run("content-length", func(t *testing.T) {
		resp, err := e2e.HTTPClient.Post(b.URL("/echo"), "application/octet-stream", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got["length"] != float64(len(big)) || got["sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("echo = %v", got)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		req := "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
		resp, body := e2e.ReadResponse(t, bufio.NewReader(strings.NewReader(b.Raw(req, 10*time.Second))), "POST")
		var got map[string]any
		json.Unmarshal([]byte(body), &got)
		if resp.StatusCode != 200 || got["head"] != "hello, world" || got["content_length"] != "12" {
			t.Errorf("chunked echo = %d %v", resp.StatusCode, got)
		}
	})
	t.Run("chunked large", func(t *testing.T) {
		// net/http sends a body of unknown length chunked.
		resp, err := e2e.HTTPClient.Post(b.URL("/echo"), "application/octet-stream", io.MultiReader(strings.NewReader(big)))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got["length"] != float64(len(big)) || got["sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("echo = %v", got)
		}
	})
	t.Run("expect 100-continue", func(t *testing.T) {
		c, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 100 Continue") {
			t.Fatalf("first line %q, want 100 Continue before the body is sent", line)
		}
		br.ReadString('\n') // blank line after the 100
		io.WriteString(c, "ping")
		resp, body := e2e.ReadResponse(t, br, "POST")
		if resp.StatusCode != 200 || !strings.Contains(body, `"head": "ping"`) {
			t.Errorf("after 100-continue: %d %s", resp.StatusCode, body)
		}
	})
}

// TestLimits sends one request past each limit and checks the status and
// that berth closes the connection cleanly (the read ends, no reset hang).
func TestLimits(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", `max_body_bytes = "1KiB"`,
		`max_header_bytes = "4KiB"
  max_uri_bytes    = "1KiB"`))
	long := strings.Repeat("a", 2000)
	for _, tc := range []struct {
		name string
		req  string
		want int
	}{
		{"uri too long", "GET /" + long + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat(long, 3) + "\r\n\r\n", 431},
		{"request line beyond the header buffer", "GET /" + strings.Repeat(long, 3) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431},
		{"body too large", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + long, 413},
		{"chunked body too large", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + long + "\r\n0\r\n\r\n", 413},
		{"100-continue too large", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n", 413},
		{"garbage", "HELLO\r\n\r\n", 400},
		{"bad content-length", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
		{"content-length and chunked", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
		{"content-length and empty chunked body", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"content-length and identity", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"unknown transfer coding", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501}, // RFC 9112 6.1
		{"bad chunk size", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
		{"NUL in path", "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bare LF in header", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\rX-B: 2\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := b.Raw(tc.req, 10*time.Second)
			if got := e2e.StatusOf(raw); got != tc.want {
				t.Fatalf("status %d, want %d; response:\n%.300s", got, tc.want, raw)
			}
			if tc.want != 414 && !strings.Contains(strings.ToLower(raw), "connection: close") {
				t.Errorf("response lacks Connection: close:\n%.300s", raw)
			}
		})
	}
	// berth still serves normally afterwards.
	if code, _ := b.Get("/pid"); code != 200 {
		t.Errorf("GET /pid after the bad requests = %d", code)
	}
}

func TestKeepAliveAndPipelining(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "", `idle_timeout = "1s"`))
	c, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Three requests in one write; answers must come back in order.
	io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []int{418, 200, 404} {
		resp, body := e2e.ReadResponse(t, br, "GET")
		if resp.StatusCode != want {
			t.Errorf("pipelined response %d, want %d (%s)", resp.StatusCode, want, body)
		}
	}
	// The same connection serves again, then is closed after idle_timeout.
	io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := e2e.ReadResponse(t, br, "GET"); resp.StatusCode != 418 {
		t.Errorf("keep-alive reuse: %d", resp.StatusCode)
	}
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: read returned %v, want EOF after idle_timeout", err)
	}
	if waited := time.Since(start); waited > 8*time.Second {
		t.Errorf("idle connection closed after %s, idle_timeout is 1s", waited)
	}
}

func TestReadTimeouts(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "", `header_timeout = "1s"
  body_timeout   = "3s"`))
	t.Run("body slower than header_timeout, within body_timeout", func(t *testing.T) {
		c, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
		time.Sleep(1500 * time.Millisecond) // the client's pause mid-body
		io.WriteString(c, "cd")
		resp, body := e2e.ReadResponse(t, bufio.NewReader(c), "POST")
		if resp.StatusCode != 200 || !strings.Contains(body, `"head": "abcd"`) {
			t.Errorf("slow body: %d %s", resp.StatusCode, body)
		}
	})
	for _, tc := range []struct{ name, req string }{
		{"header never finished", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"body never finished", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, tc.req)
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("reading: %v (berth did not close the stalled connection)", err)
			}
			if len(got) > 0 && e2e.StatusOf(string(got)) != 408 {
				t.Errorf("stalled request answered %q, want 408 or a plain close", got)
			}
		})
	}
}

// TestUnixListener serves over a Unix socket.
func TestUnixListener(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "berth.sock")
	cfg := strings.Replace(e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""), `"127.0.0.1:0"`, fmt.Sprintf("%q", "unix:"+sock), 1)
	b := e2e.StartBerth(t, cfg)
	if b.Addr != sock {
		t.Fatalf("listening on %q, want %q", b.Addr, sock)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://berth/env")
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	if resp.StatusCode != 200 || env["REMOTE_ADDR"] != "" || env["SERVER_NAME"] != "berth" {
		t.Errorf("over a Unix socket: %d %v", resp.StatusCode, env)
	}
	b.Stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind after shutdown: %v", err)
	}
}

func TestAppErrors(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""))
	pid := b.PID()
	if code, body := b.Get("/raise"); code != 500 || body != "Internal Server Error\n" {
		t.Errorf("GET /raise = %d %q", code, body)
	}
	if err := b.WaitFor(`(?s)ERROR probe\[\d+\] Exception in the app while serving GET /raise \(request [0-9a-f]+\)\n\s+Traceback.*ValueError: probe asked to raise`, 5*time.Second); err != nil {
		t.Errorf("traceback not logged as one record: %v", err)
	}
	if code, _ := b.Get("/bad-header"); code != 500 {
		t.Errorf("GET /bad-header = %d, want 500", code)
	}
	if err := b.WaitFor(`app sent an invalid response.*X-Evil`, 5*time.Second); err != nil {
		t.Errorf("bad header not logged: %v", err)
	}
	if code, body := b.Get("/print"); code != 200 || body != "printed\n" {
		t.Errorf("GET /print = %d %q", code, body)
	}
	if err := b.WaitFor(`INFO  probe\[\d+\] probe says hello on stdout`, 5*time.Second); err != nil {
		t.Errorf("stdout not logged: %v", err)
	}
	if err := b.WaitFor(`WARN  probe\[\d+\] probe says hello on stderr`, 5*time.Second); err != nil {
		t.Errorf("stderr not logged: %v", err)
	}
	if code, _ := b.Get("/str-chunk"); code != 500 {
		t.Errorf("GET /str-chunk (a generator yielding str) = %d, want 500", code)
	}
	if err := b.WaitFor(`response body chunks must be bytes, got str`, 5*time.Second); err != nil {
		t.Error(err)
	}
	// A 2 MiB line on stdout is logged in pieces and does not break the
	// worker's output.
	if code, _ := b.Get("/long-print"); code != 200 {
		t.Errorf("GET /long-print = %d", code)
	}
	if code, _ := b.Get("/print"); code != 200 {
		t.Errorf("GET /print after a long line = %d", code)
	}
	// The one worker survived all of it.
	if after := b.PID(); after != pid {
		t.Errorf("worker %d was replaced by %d: app errors must not cost the worker", pid, after)
	}
}

func TestHeadAndHTTP10(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""))
	resp, err := e2e.HTTPClient.Head(b.URL("/status"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 418 || resp.ContentLength != 7 {
		t.Errorf("HEAD /status = %d, Content-Length %d; want 418 and the GET's length 7", resp.StatusCode, resp.ContentLength)
	}
	raw := b.Raw("HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10*time.Second)
	if e2e.StatusOf(raw) != 200 || !strings.HasSuffix(raw, "\r\n\r\n") {
		t.Errorf("HEAD of a streamed response sent a body:\n%q", raw)
	}
	// HTTP/1.0: a streamed body of unknown length is not chunked (an
	// HTTP/1.0 client cannot read chunks): it ends when the connection
	// does (RFC 9112 section 6.3), which b.raw reads to.
	raw = b.Raw("GET /stream?3 HTTP/1.0\r\n\r\n", 10*time.Second)
	resp, body := e2e.ReadResponse(t, bufio.NewReader(strings.NewReader(raw)), "GET")
	if resp.StatusCode != 200 || body != "chunk 0\nchunk 1\nchunk 2\n" || len(resp.TransferEncoding) > 0 || resp.ContentLength != -1 ||
		!resp.Close || strings.Contains(raw, "Content-Length") {
		t.Errorf("HTTP/1.0 stream: %d %q te=%v cl=%d close=%v\n%s", resp.StatusCode, body, resp.TransferEncoding, resp.ContentLength, resp.Close, raw)
	}
}

// TestAbandonedStreams: a client that leaves mid-stream, or stops
// reading, frees its worker within seconds; when it leaves, the worker is
// told, calls the iterable's close() and stays.
func TestAbandonedStreams(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  timeout = \"60s\"", `write_timeout = "1s"`))
	t.Run("client disconnects", func(t *testing.T) {
		c, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_, before := b.Get("/pid")
		io.WriteString(c, "GET /infinite HTTP/1.1\r\nHost: x\r\nX-Request-ID: left-early\r\n\r\n")
		buf := make([]byte, 4096)
		if _, err := io.ReadAtLeast(c, buf, 100); err != nil {
			t.Fatal(err)
		}
		c.Close()
		start := time.Now()
		if code, _ := b.Get("/status"); code != 418 {
			t.Errorf("next request = %d", code)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the worker was held %s after its client left", d)
		}
		var got struct {
			Closed []string
			PID    int
		}
		_, after := b.Get("/closed")
		json.Unmarshal([]byte(after), &got)
		if len(got.Closed) != 1 || got.Closed[0] != "left-early" {
			t.Errorf("close() of the abandoned response's iterable: %v, want [left-early]", got.Closed)
		}
		if !strings.Contains(before, fmt.Sprintf(`"pid": %d`, got.PID)) {
			t.Errorf("the worker was replaced after its client left: pid before %s, after %d", before, got.PID)
		}
	})
	t.Run("client stops reading", func(t *testing.T) {
		c, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4096)
		io.WriteString(c, "GET /big?2000 HTTP/1.1\r\nHost: x\r\n\r\n") // 128 MiB, never read past its first byte
		// The answer's first byte says the worker has the request.
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
	})
}

func TestStreamingResponse(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""))
	resp, err := e2e.HTTPClient.Get(b.URL("/stream?1000"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("stream: %v, transfer-encoding %v", err, resp.TransferEncoding)
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) != 1000 || lines[999] != "chunk 999" {
		t.Errorf("stream body has %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	// An app failing mid-stream: the client sees a cut response, not a
	// complete one, and the worker goes on serving.
	resp, err = e2e.HTTPClient.Get(b.URL("/stream-fail"))
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Errorf("a response the app aborted mid-stream read as complete")
	}
	if code, _ := b.Get("/status"); code != 418 {
		t.Errorf("GET /status after the aborted stream = %d", code)
	}
}

// TestLargeListBody: a one-frame body too big to copy is written from the
// worker's frame, with its length, for HTTP/1.1 and HTTP/1.0 alike.
func TestLargeListBody(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""))
	const n = 3 << 20
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		raw := b.Raw(fmt.Sprintf("GET /biglist?%d %s\r\nHost: x\r\nConnection: close\r\n\r\n", n, proto), 10*time.Second)
		resp, body := e2e.ReadResponse(t, bufio.NewReader(strings.NewReader(raw)), "GET")
		if resp.StatusCode != 200 || resp.ContentLength != n || len(body) != n || strings.Trim(body, "z") != "" {
			t.Errorf("%s: %d, Content-Length %d, %d bytes", proto, resp.StatusCode, resp.ContentLength, len(body))
		}
	}
	if code, _ := b.Get("/status"); code != 418 {
		t.Errorf("next request = %d", code)
	}
}
