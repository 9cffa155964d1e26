package front

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/fakeworker"
	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/units"
)

// fakeFront starts a front on a loopback listener for one app of one
// fake worker (this test binary; see fakeworker), with the listener's
// and the app's extra attributes, and returns its address, the app, and
// the file in which the worker records each request it starts.
func fakeFront(t *testing.T, listener, app string) (string, *supervisor.App, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	starts := filepath.Join(t.TempDir(), "starts")
	var env []string
	for k, v := range fakeworker.Env(starts) {
		env = append(env, fmt.Sprintf("%s = %q", k, v))
	}
	sort.Strings(env)
	src := fmt.Sprintf(`listener "http" {
  address = "127.0.0.1:0"
  %s
}
app "fake" {
  module  = "fake"
  python  = %q
  workers = 1
  env     = { %s }
  %s
}
`, listener, exe, strings.Join(env, ", "), app)
	cfg, err := units.Parse(filepath.Join(t.TempDir(), "fake.hcl"), []byte(src))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := supervisor.NewApp(cfg.Apps[0], log, nil)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg.Listeners[0], []*supervisor.App{a}, log, false)
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		a.Stop(ctx)
	})
	return ln.Addr().String(), a, starts
}

// client is one connection to a front.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes raw and reads the response to it, body and all.
func (cl *client) send(raw string) (*http.Response, string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, raw); err != nil {
		cl.t.Fatal(err)
	}
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		cl.t.Fatalf("reading the answer to %.60q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		cl.t.Fatalf("reading the body of the answer to %.60q: %v", raw, err)
	}
	return resp, string(body)
}

// get is a GET of target on the connection.
func (cl *client) get(target string) (*http.Response, string) {
	cl.t.Helper()
	return cl.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")
}

// getAsync sends a GET of target on the connection and delivers the
// answer's status (0 if there is none) when it comes.
func (cl *client) getAsync(target string) <-chan int {
	ch := make(chan int, 1)
	go func() {
		_, err := io.WriteString(cl.c, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, rerr := http.ReadResponse(cl.br, nil)
		if err != nil || rerr != nil {
			ch <- 0
			return
		}
		ch <- resp.StatusCode
	}()
	return ch
}

// closed reports whether the front closed the connection, waiting a
// moment for it.
func (cl *client) closed() bool {
	_ = cl.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := cl.br.ReadByte()
	return err == io.EOF
}

// startedIDs returns the id= of each request the worker started, in
// order.
func startedIDs(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if _, target, ok := strings.Cut(line, " "); ok {
			_, query, _ := strings.Cut(target, "?")
			q, _ := url.ParseQuery(query)
			ids = append(ids, q.Get("id"))
		}
	}
	return ids
}

// waitBusy waits until the app's worker serves a request.
func waitBusy(t *testing.T, a *supervisor.App) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); a.Status().Busy == 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker was not busy within 5 s")
		}
	}
}

// frontCase is one of TestFakeFrontLimits's requests and what must
// become of it.
type frontCase struct {
	name          string
	listener, app string // the listener's and the app's extra attributes
	busy          string // a request that holds the worker meanwhile, from another connection
	req           string // sent after GET /?id=before on the same connection
	status        int
	body          string // in the answer
	closes        bool   // the connection closes after the answer
	started       bool   // the request reached the worker
	replaced      bool   // the next request is served by another worker
}

// TestFakeFrontLimits: the front's answers of its own, over a real
// loopback connection to a fake worker. A request past a limit is
// refused before any worker sees it (413, 431, 414) and its connection
// closed; one the pool cannot serve gets 503 (queue full, queue_timeout),
// 504 (timeout) or 502 (the worker crashed) and its connection serves
// the next request, from a replacement worker after a 504 or a 502.
func TestFakeFrontLimits(t *testing.T) {
	long := strings.Repeat("a", 2000)
	limits := `max_header_bytes = "4KiB"
  max_uri_bytes = "1KiB"`
	for _, tc := range []frontCase{
		{name: "body over max_body_bytes", app: `max_body_bytes = "1KiB"`,
			req:    "POST /?id=x HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + long,
			status: 413, body: "1024", closes: true},
		{name: "chunked body over max_body_bytes", app: `max_body_bytes = "1KiB"`,
			req:    "POST /?id=x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + long + "\r\n0\r\n\r\n",
			status: 413, body: "too large", closes: true},
		{name: "100-continue over max_body_bytes", app: `max_body_bytes = "1KiB"`,
			req:    "POST /?id=x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
			status: 413, body: "1024", closes: true},
		{name: "body at max_body_bytes", app: `max_body_bytes = "1KiB"`,
			req:    "POST /?id=x HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n" + long[:1024],
			status: 200, body: "\n1024\n", started: true},
		{name: "header block over max_header_bytes", listener: limits,
			req:    "GET /?id=x HTTP/1.1\r\nHost: x\r\nX-Big: " + long + long + long + "\r\n\r\n",
			status: 431, body: "too large", closes: true},
		{name: "target over max_uri_bytes", listener: limits,
			req:    "GET /?id=x&" + long + " HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 414, body: "too long", closes: true},
		{name: "queue full", app: "queue = 0", busy: "/sleep?ms=300&id=busy",
			req:    "GET /?id=x HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 503, body: "queue is full"},
		{name: "queue_timeout", app: `queue_timeout = "50ms"`, busy: "/sleep?ms=300&id=busy",
			req:    "GET /?id=x HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 503, body: "queue_timeout"},
		{name: "timeout", app: `timeout = "200ms"`,
			req:    "GET /hang?id=x HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 504, body: "gateway timeout", started: true, replaced: true},
		{name: "crash", req: "GET /crash?id=x HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 502, body: "bad gateway", started: true, replaced: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has a front and a worker of its own
			tc.run(t)
		})
	}
}

// run sends the case's request between two others on one connection
// (another after it when it closes) and checks the answers and the
// requests the worker started.
func (tc frontCase) run(t *testing.T) {
	addr, app, log := fakeFront(t, tc.listener, tc.app)
	cl := dial(t, addr)
	resp, _ := cl.get("/?id=before")
	before := resp.Header.Get("X-Pid")
	want := []string{"before"}
	var busy <-chan int
	if tc.busy != "" {
		busy = dial(t, addr).getAsync(tc.busy)
		waitBusy(t, app)
		want = append(want, "busy")
	}
	resp, body := cl.send(tc.req)
	if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
		t.Errorf("%d %.200q, want %d with %q", resp.StatusCode, body, tc.status, tc.body)
	}
	if resp.Close != tc.closes {
		t.Errorf("Connection: close %v, want %v", resp.Close, tc.closes)
	}
	if tc.started {
		want = append(want, "x")
	}
	if busy != nil {
		if code := <-busy; code != 200 {
			t.Errorf("the request holding the worker got %d", code)
		}
	}
	if tc.closes {
		if !cl.closed() {
			t.Error("the connection stays open after the refusal")
		}
		cl = dial(t, addr)
	}
	resp, body = cl.get("/?id=after")
	if resp.StatusCode != 200 {
		t.Errorf("the next request: %d %q", resp.StatusCode, body)
	}
	if after := resp.Header.Get("X-Pid"); (after != before) != tc.replaced {
		t.Errorf("the next request was served by worker %s, the first by %s; want a replacement: %v", after, before, tc.replaced)
	}
	if got := startedIDs(t, log); !slices.Equal(got, append(want, "after")) {
		t.Errorf("the worker started %v, want %v", got, append(want, "after"))
	}
}
