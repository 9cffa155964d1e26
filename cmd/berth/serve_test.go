package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestHelloExample(t *testing.T) {
	py := systemPython(t)
	wd, _ := os.Getwd()
	cfg := fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "hello" {
  module = "hello:app"
  python = %q
  chdir  = %q
}
`, py, filepath.Join(wd, "../../examples/hello"))
	b := startBerth(t, cfg)
	resp, err := httpClient.Get(b.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello, World!\n" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("GET / = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if err := b.waitFor(`hello GET / listener=http proto=HTTP/1.1 status=200 bytes=14 duration_us=\d+ queue_us=\d+ remote=127.0.0.1 request_id=\w+ user_agent=\S+`, 5*time.Second); err != nil {
		t.Errorf("no access line: %v", err)
	}
}

func TestFlaskExample(t *testing.T) {
	py := systemPython(t)
	needFlask(t, py)
	wd, _ := os.Getwd()
	cfg := fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "shop" {
  module = "shop:app"
  python = %q
  chdir  = %q
}
`, py, filepath.Join(wd, "../../examples/flask"))
	b := startBerth(t, cfg)

	if code, body := b.get("/"); code != 200 || body != "Welcome to the shop\n" {
		t.Errorf("GET / = %d %q", code, body)
	}
	var items []map[string]any
	code, body := b.get("/items")
	if err := json.Unmarshal([]byte(body), &items); code != 200 || err != nil || len(items) != 2 || items[0]["name"] != "teapot" {
		t.Errorf("GET /items = %d %q (%v)", code, body, err)
	}
	if code, body := b.get("/items/9"); code != 404 || !strings.Contains(body, `"no such item"`) {
		t.Errorf("GET /items/9 = %d %q", code, body)
	}
	resp, err := httpClient.PostForm(b.url("/order"), url.Values{"name": {"cup"}, "qty": {"3"}})
	if err != nil {
		t.Fatal(err)
	}
	var order map[string]any
	json.NewDecoder(resp.Body).Decode(&order)
	resp.Body.Close()
	if resp.StatusCode != 201 || order["ordered"] != "cup" || order["qty"] != 3.0 {
		t.Errorf("POST /order = %d %v", resp.StatusCode, order)
	}
	resp, err = httpClient.Post(b.url("/echo"), "application/json", strings.NewReader(`{"a": [1, 2]}`))
	if err != nil {
		t.Fatal(err)
	}
	var echo map[string]any
	json.NewDecoder(resp.Body).Decode(&echo)
	resp.Body.Close()
	if fmt.Sprint(echo["json"]) != "map[a:[1 2]]" || echo["length"] != 13.0 {
		t.Errorf("POST /echo = %v", echo)
	}
}

// TestEnviron checks the PEP 3333 environ a worker builds.
func TestEnviron(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "", ""))
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
	raw := b.raw(strings.Replace(req, "POST /", "POST /env/", 1), 10*time.Second)
	resp, body := readResponse(t, bufio.NewReader(strings.NewReader(raw)), "POST")
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
		"SERVER_PORT":           portOf(b.addr), // where the request came in, not the Host's
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
		req, _ := http.NewRequest("GET", b.url("/env/"), nil)
		for k, v := range headers {
			req.Header.Add(k, v)
		}
		resp, err := httpClient.Do(req)
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
	b := startBerth(t, appConfig(systemPython(t), "probe:app", `max_body_bytes = "4MiB"`, ""))
	big := strings.Repeat("berth-body-", 300000) // 3.3 MB, several socket buffers
	sum := sha256.Sum256([]byte(big))

	t.Run("content-length", func(t *testing.T) {
		resp, err := httpClient.Post(b.url("/echo"), "application/octet-stream", strings.NewReader(big))
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
		resp, body := readResponse(t, bufio.NewReader(strings.NewReader(b.raw(req, 10*time.Second))), "POST")
		var got map[string]any
		json.Unmarshal([]byte(body), &got)
		if resp.StatusCode != 200 || got["head"] != "hello, world" || got["content_length"] != "12" {
			t.Errorf("chunked echo = %d %v", resp.StatusCode, got)
		}
	})
	t.Run("chunked large", func(t *testing.T) {
		// net/http sends a body of unknown length chunked.
		resp, err := httpClient.Post(b.url("/echo"), "application/octet-stream", io.MultiReader(strings.NewReader(big)))
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
		c, err := net.Dial("tcp", b.addr)
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
		resp, body := readResponse(t, br, "POST")
		if resp.StatusCode != 200 || !strings.Contains(body, `"head": "ping"`) {
			t.Errorf("after 100-continue: %d %s", resp.StatusCode, body)
		}
	})
}

// TestLimits sends one request past each limit and checks the status and
// that berth closes the connection cleanly (the read ends, no reset hang).
func TestLimits(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", `max_body_bytes = "1KiB"`,
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
			raw := b.raw(tc.req, 10*time.Second)
			if got := statusOf(raw); got != tc.want {
				t.Fatalf("status %d, want %d; response:\n%.300s", got, tc.want, raw)
			}
			if tc.want != 414 && !strings.Contains(strings.ToLower(raw), "connection: close") {
				t.Errorf("response lacks Connection: close:\n%.300s", raw)
			}
		})
	}
	// berth still serves normally afterwards.
	if code, _ := b.get("/pid"); code != 200 {
		t.Errorf("GET /pid after the bad requests = %d", code)
	}
}

func TestKeepAliveAndPipelining(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "", `idle_timeout = "1s"`))
	c, err := net.Dial("tcp", b.addr)
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
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != want {
			t.Errorf("pipelined response %d, want %d (%s)", resp.StatusCode, want, body)
		}
	}
	// The same connection serves again, then is closed after idle_timeout.
	io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 418 {
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
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "", `header_timeout = "1s"
  body_timeout   = "3s"`))
	t.Run("body slower than header_timeout, within body_timeout", func(t *testing.T) {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
		time.Sleep(1500 * time.Millisecond)
		io.WriteString(c, "cd")
		resp, body := readResponse(t, bufio.NewReader(c), "POST")
		if resp.StatusCode != 200 || !strings.Contains(body, `"head": "abcd"`) {
			t.Errorf("slow body: %d %s", resp.StatusCode, body)
		}
	})
	for _, tc := range []struct{ name, req string }{
		{"header never finished", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"body never finished", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.addr)
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
			if len(got) > 0 && statusOf(string(got)) != 408 {
				t.Errorf("stalled request answered %q, want 408 or a plain close", got)
			}
		})
	}
}

// TestUnixListener serves over a Unix socket.
func TestUnixListener(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "berth.sock")
	cfg := strings.Replace(appConfig(systemPython(t), "probe:app", "workers = 1", ""), `"127.0.0.1:0"`, fmt.Sprintf("%q", "unix:"+sock), 1)
	b := startBerth(t, cfg)
	if b.addr != sock {
		t.Fatalf("listening on %q, want %q", b.addr, sock)
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
	b.stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind after shutdown: %v", err)
	}
}

// pid asks the probe which worker answers.
func (i *instance) pid() int {
	i.t.Helper()
	var v struct{ PID int }
	code, body := i.get("/pid")
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		i.t.Fatalf("GET /pid = %d %q", code, body)
	}
	return v.PID
}

func TestAppErrors(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1", ""))
	pid := b.pid()
	if code, body := b.get("/raise"); code != 500 || body != "Internal Server Error\n" {
		t.Errorf("GET /raise = %d %q", code, body)
	}
	if err := b.waitFor(`(?s)ERROR probe\[\d+\] Exception in the app while serving GET /raise \(request [0-9a-f]+\)\n\s+Traceback.*ValueError: probe asked to raise`, 5*time.Second); err != nil {
		t.Errorf("traceback not logged as one record: %v", err)
	}
	if code, _ := b.get("/bad-header"); code != 500 {
		t.Errorf("GET /bad-header = %d, want 500", code)
	}
	if err := b.waitFor(`app sent an invalid response.*X-Evil`, 5*time.Second); err != nil {
		t.Errorf("bad header not logged: %v", err)
	}
	if code, body := b.get("/print"); code != 200 || body != "printed\n" {
		t.Errorf("GET /print = %d %q", code, body)
	}
	if err := b.waitFor(`INFO  probe\[\d+\] probe says hello on stdout`, 5*time.Second); err != nil {
		t.Errorf("stdout not logged: %v", err)
	}
	if err := b.waitFor(`WARN  probe\[\d+\] probe says hello on stderr`, 5*time.Second); err != nil {
		t.Errorf("stderr not logged: %v", err)
	}
	if code, _ := b.get("/str-chunk"); code != 500 {
		t.Errorf("GET /str-chunk (a generator yielding str) = %d, want 500", code)
	}
	if err := b.waitFor(`response body chunks must be bytes, got str`, 5*time.Second); err != nil {
		t.Error(err)
	}
	// A 2 MiB line on stdout is logged in pieces and does not break the
	// worker's output.
	if code, _ := b.get("/long-print"); code != 200 {
		t.Errorf("GET /long-print = %d", code)
	}
	if code, _ := b.get("/print"); code != 200 {
		t.Errorf("GET /print after a long line = %d", code)
	}
	// The one worker survived all of it.
	if after := b.pid(); after != pid {
		t.Errorf("worker %d was replaced by %d: app errors must not cost the worker", pid, after)
	}
}

func TestHeadAndHTTP10(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1", ""))
	resp, err := httpClient.Head(b.url("/status"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 418 || resp.ContentLength != 7 {
		t.Errorf("HEAD /status = %d, Content-Length %d; want 418 and the GET's length 7", resp.StatusCode, resp.ContentLength)
	}
	raw := b.raw("HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10*time.Second)
	if statusOf(raw) != 200 || !strings.HasSuffix(raw, "\r\n\r\n") {
		t.Errorf("HEAD of a streamed response sent a body:\n%q", raw)
	}
	// HTTP/1.0: a streamed body of unknown length is not chunked (an
	// HTTP/1.0 client cannot read chunks): it ends when the connection
	// does (RFC 9112 section 6.3), which b.raw reads to.
	raw = b.raw("GET /stream?3 HTTP/1.0\r\n\r\n", 10*time.Second)
	resp, body := readResponse(t, bufio.NewReader(strings.NewReader(raw)), "GET")
	if resp.StatusCode != 200 || body != "chunk 0\nchunk 1\nchunk 2\n" || len(resp.TransferEncoding) > 0 || resp.ContentLength != -1 ||
		!resp.Close || strings.Contains(raw, "Content-Length") {
		t.Errorf("HTTP/1.0 stream: %d %q te=%v cl=%d close=%v\n%s", resp.StatusCode, body, resp.TransferEncoding, resp.ContentLength, resp.Close, raw)
	}
}

// TestAbandonedStreams: a client that leaves mid-stream, or stops
// reading, frees its worker within seconds; when it leaves, the worker is
// told, calls the iterable's close() and stays.
func TestAbandonedStreams(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1\n  timeout = \"60s\"", `write_timeout = "1s"`))
	t.Run("client disconnects", func(t *testing.T) {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, before := b.get("/pid")
		io.WriteString(c, "GET /infinite HTTP/1.1\r\nHost: x\r\nX-Request-ID: left-early\r\n\r\n")
		buf := make([]byte, 4096)
		if _, err := io.ReadAtLeast(c, buf, 100); err != nil {
			t.Fatal(err)
		}
		c.Close()
		start := time.Now()
		if code, _ := b.get("/status"); code != 418 {
			t.Errorf("next request = %d", code)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the worker was held %s after its client left", d)
		}
		var got struct {
			Closed []string
			PID    int
		}
		_, after := b.get("/closed")
		json.Unmarshal([]byte(after), &got)
		if len(got.Closed) != 1 || got.Closed[0] != "left-early" {
			t.Errorf("close() of the abandoned response's iterable: %v, want [left-early]", got.Closed)
		}
		if !strings.Contains(before, fmt.Sprintf(`"pid": %d`, got.PID)) {
			t.Errorf("the worker was replaced after its client left: pid before %s, after %d", before, got.PID)
		}
	})
	t.Run("client stops reading", func(t *testing.T) {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4096)
		io.WriteString(c, "GET /big?2000 HTTP/1.1\r\nHost: x\r\n\r\n") // 128 MiB, never read
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		if code, _ := b.get("/status"); code != 418 {
			t.Errorf("next request = %d", code)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the worker was held %s by a client that stopped reading", d)
		}
	})
}

func TestStreamingResponse(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1", ""))
	resp, err := httpClient.Get(b.url("/stream?1000"))
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
	resp, err = httpClient.Get(b.url("/stream-fail"))
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Errorf("a response the app aborted mid-stream read as complete")
	}
	if code, _ := b.get("/status"); code != 418 {
		t.Errorf("GET /status after the aborted stream = %d", code)
	}
}

// TestWorkerKilled: a worker SIGKILLed mid-request costs that request a
// 502 and nothing else.
func TestWorkerKilled(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 2", ""))
	var pid struct{ PID int }
	_, body := b.get("/pid")
	json.Unmarshal([]byte(body), &pid)

	type result struct {
		code int
		body string
	}
	slow := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() {
			resp, err := httpClient.Get(b.url("/sleep?3"))
			if err != nil {
				slow <- result{0, err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			slow <- result{resp.StatusCode, string(b)}
		}()
	}
	// Both workers are now sleeping; kill one of them.
	time.Sleep(500 * time.Millisecond)
	workers := childPIDs(b.cmd.Process.Pid)
	if len(workers) != 2 {
		t.Fatalf("berth has %d worker processes, want 2", len(workers))
	}
	if err := syscall.Kill(workers[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for i := 0; i < 2; i++ {
		r := <-slow
		codes[r.code]++
	}
	if codes[502] != 1 || codes[200] != 1 {
		t.Errorf("after killing one of two busy workers: statuses %v, want one 502 and one 200", codes)
	}
	if err := b.waitFor(`worker died while serving a request; replacing it.* status="signal: killed"`, 5*time.Second); err != nil {
		t.Error(err)
	}
	for i := 0; i < 4; i++ {
		if code, _ := b.get("/pid"); code != 200 {
			t.Errorf("request %d after the kill = %d", i, code)
		}
	}
	if n := len(childPIDs(b.cmd.Process.Pid)); n != 2 {
		t.Errorf("%d workers after the replacement, want 2", n)
	}
}

func TestImportErrorAtStartup(t *testing.T) {
	inst := launch(t, appConfig(systemPython(t), "broken:app", "workers = 2", ""))
	select {
	case <-inst.done:
	case <-time.After(30 * time.Second):
		t.Fatal("berth did not exit on an app that fails to import")
	}
	ee, ok := inst.err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", inst.err)
	}
	logs := inst.logs.String()
	for _, want := range []string{`app "probe" failed to boot`, "Traceback (most recent call last)", "broken.py", "json.decoder.JSONDecodeError"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Count(logs, "failed to boot") != 1 {
		t.Errorf("boot failure reported %d times, want once (no crash loop)", strings.Count(logs, "failed to boot"))
	}
}

func TestQueueLimits(t *testing.T) {
	t.Run("queue full", func(t *testing.T) {
		b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1\n  queue = 0", ""))
		busy := make(chan int)
		go func() {
			code, _ := b.get("/sleep?2")
			busy <- code
		}()
		time.Sleep(500 * time.Millisecond)
		code, body := b.get("/status")
		if code != 503 || !strings.Contains(body, "queue is full") {
			t.Errorf("second request with queue = 0: %d %q, want 503", code, body)
		}
		if c := <-busy; c != 200 {
			t.Errorf("the request holding the worker got %d", c)
		}
	})
	t.Run("queue timeout", func(t *testing.T) {
		b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1\n  queue_timeout = \"300ms\"", ""))
		busy := make(chan int)
		go func() {
			code, _ := b.get("/sleep?2")
			busy <- code
		}()
		time.Sleep(500 * time.Millisecond)
		code, body := b.get("/status")
		if code != 503 || !strings.Contains(body, "queue_timeout") {
			t.Errorf("request waiting past queue_timeout: %d %q, want 503", code, body)
		}
		if c := <-busy; c != 200 {
			t.Errorf("the request holding the worker got %d", c)
		}
		// The abandoned request must not reach the worker later.
		if code, _ := b.get("/status"); code != 418 {
			t.Errorf("next request = %d", code)
		}
	})
}

func TestRequestTimeout(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1\n  timeout = \"1s\"", ""))
	code, body := b.get("/sleep?5")
	if code != 504 {
		t.Errorf("GET /sleep?5 with timeout 1s = %d %q, want 504", code, body)
	}
	// faulthandler's dump names the line the worker was stuck on.
	if err := b.waitFor(`(?s)request timed out.*probe\.py", line \d+ in app`, 5*time.Second); err != nil {
		t.Errorf("no stack dump: %v", err)
	}
	if code, _ := b.get("/status"); code != 418 {
		t.Errorf("request after the timeout = %d", code)
	}
}

// TestThreads: threads = 4 gives one worker four dispatch slots, the app
// sees wsgi.multithread, and a thread past the timeout gets its 504 and
// a stack dump of every thread.
func TestThreads(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1\n  threads = 4\n  timeout = \"2s\"", ""))
	_, body := b.get("/env")
	if !strings.Contains(body, `"wsgi.multithread": true`) {
		t.Errorf("environ of a threaded worker: %s", body)
	}
	start := time.Now()
	var wg sync.WaitGroup
	pids := make(chan string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := b.get("/sleep?1")
			if code != 200 {
				t.Errorf("GET /sleep?1 = %d", code)
			}
			pids <- regexpFind(body, `"pid": (\d+)`)
		}()
	}
	wg.Wait()
	close(pids)
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("4 requests sleeping 1 s on 4 threads took %s: they did not run at once", d)
	}
	seen := map[string]bool{}
	for p := range pids {
		seen[p] = true
	}
	if len(seen) != 1 {
		t.Errorf("threads of one worker answered from %d processes", len(seen))
	}
	if st := b.status(); st.Apps[0].Workers[0].Threads != 4 {
		t.Errorf("status: %+v", st.Apps[0].Workers[0])
	}
	if code, _ := b.get("/sleep?10"); code != 504 {
		t.Errorf("a thread past its timeout: %d, want 504", code)
	}
	if err := b.waitFor(`(?s)request timed out.*Thread 0x[0-9a-f]+.*probe\.py", line \d+ in app`, 5*time.Second); err != nil {
		t.Errorf("no stack dump of the threads: %v", err)
	}
	if code, _ := b.get("/status"); code != 418 {
		t.Errorf("after the timeout: %d", code)
	}
}

// TestShutdown: SIGTERM lets in-flight requests finish, stops the workers
// and exits 0.
func TestShutdown(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 2", ""))
	workers := childPIDs(b.cmd.Process.Pid)
	if len(workers) != 2 {
		t.Fatalf("%d workers, want 2", len(workers))
	}
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := httpClient.Get(b.url("/sleep?1"))
			if err != nil {
				codes <- 0
				return
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	time.Sleep(300 * time.Millisecond)
	b.cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("in-flight request during shutdown got %d, want 200", c)
		}
	}
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		t.Fatal("berth did not exit after SIGTERM")
	}
	if b.err != nil {
		t.Errorf("berth exit: %v, want 0", b.err)
	}
	for _, pid := range workers {
		if pidAlive(pid) {
			t.Errorf("worker %d still running after berth exited", pid)
		}
	}
	if _, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
		t.Errorf("listener still accepting after exit")
	}
}

// TestNoOrphansOnSIGKILL: workers notice berth is gone and exit.
func TestNoOrphansOnSIGKILL(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 2", ""))
	workers := childPIDs(b.cmd.Process.Pid)
	if len(workers) != 2 {
		t.Fatalf("%d workers, want 2", len(workers))
	}
	b.cmd.Process.Kill()
	<-b.done
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range workers {
		for pidAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if pidAlive(pid) {
			t.Errorf("worker %d outlived a SIGKILLed berth", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func TestCheckCommand(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"check", "../../examples/hello/berth.hcl"}, 0, "ok: 1 listener(s), 1 app(s): hello (hello:app, 2 workers, on http)", ""},
		{[]string{"check", "../../units/testdata/bad_duration.hcl"}, 1, "", "bad_duration.hcl:8:13: error: Invalid duration"},
		{[]string{"check", "nope.hcl"}, 1, "", "no such file"},
		{[]string{"check"}, 2, "", "usage: berth check CONFIG"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"version"}, 0, "berth ", ""},
		{[]string{"help"}, 0, "berth serve", ""},
	} {
		var out, errb strings.Builder
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("berth %v = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
	}
}

// TestJSONLog: log { format = "json" } writes one JSON object per line,
// the access record's fields included.
func TestJSONLog(t *testing.T) {
	cfg := appConfig(systemPython(t), "probe:app", "workers = 1", "") + "\nlog {\n  format = \"json\"\n}\n"
	inst := launch(t, cfg)
	if err := inst.waitFor(`"msg":"listening"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	inst.addr = regexpFind(inst.logs.String(), `"addr":"([^"]+)"`)
	if code, _ := inst.get("/status"); code != 418 {
		t.Fatalf("GET /status = %d", code)
	}
	if err := inst.waitFor(`"msg":"GET /status"`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(inst.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		if rec["msg"] == "GET /status" {
			found = true
			if rec["status"] != 418.0 || rec["app"] != "probe" || rec["method"] != "GET" || rec["level"] != "INFO" || rec["request_id"] == "" {
				t.Errorf("access record: %v", rec)
			}
		}
	}
	if !found {
		t.Error("no access record")
	}
}

// TestBadConfigServe: serve refuses a bad config with its diagnostics.
func TestBadConfigServe(t *testing.T) {
	inst := launch(t, "listener \"http\" {\n  address = \"127.0.0.1:0\"\n}\napp \"x\" {\n  module = \"x:app\"\n  timeout = \"soon\"\n}\n")
	<-inst.done
	if ee, ok := inst.err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want 1", inst.err)
	}
	if !strings.Contains(inst.logs.String(), "berth.hcl:6:13: error: Invalid duration") {
		t.Errorf("logs:\n%s", inst.logs)
	}
}

// TestLargeListBody: a one-frame body too big to copy is written from the
// worker's frame, with its length, for HTTP/1.1 and HTTP/1.0 alike.
func TestLargeListBody(t *testing.T) {
	b := startBerth(t, appConfig(systemPython(t), "probe:app", "workers = 1", ""))
	const n = 3 << 20
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		raw := b.raw(fmt.Sprintf("GET /biglist?%d %s\r\nHost: x\r\nConnection: close\r\n\r\n", n, proto), 10*time.Second)
		resp, body := readResponse(t, bufio.NewReader(strings.NewReader(raw)), "GET")
		if resp.StatusCode != 200 || resp.ContentLength != n || len(body) != n || strings.Trim(body, "z") != "" {
			t.Errorf("%s: %d, Content-Length %d, %d bytes", proto, resp.StatusCode, resp.ContentLength, len(body))
		}
	}
	if code, _ := b.get("/status"); code != 418 {
		t.Errorf("next request = %d", code)
	}
}

// TestWorkerScheduling checks that workers run under SCHED_BATCH by
// default, every thread of a threaded worker too, and as berth itself
// with scheduling = "normal" — the policy as the kernel reports it.
func TestWorkerScheduling(t *testing.T) {
	// policies reads the scheduling policy (field 41 of stat) of every
	// thread of pid.
	policies := func(pid int) []string {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of worker %d: %v", pid, err)
		}
		var out []string
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				t.Fatal(err)
			}
			// Fields after the command (in parentheses), from field 3 on.
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			out = append(out, f[41-3])
		}
		return out
	}
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"default", "workers = 1\n  threads = 3", "3"}, // SCHED_BATCH
		{"normal", "workers = 1\n  scheduling = \"normal\"", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBerth(t, appConfig(systemPython(t), "probe:app", tc.extra, ""))
			got := policies(b.pid())
			for _, p := range got {
				if p != tc.want {
					t.Errorf("worker threads' policies %v, want all %s", got, tc.want)
					break
				}
			}
		})
	}
}
