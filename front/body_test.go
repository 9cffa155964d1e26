package front

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/units"
	"github.com/berthd/berth/wire"
)

// kindNames names the request-body routes in the tests' messages.
var kindNames = map[bodyKind]string{bodyInFrame: "frame", bodyShared: "shared", bodyFile: "file", bodySocket: "socket"}

// routeFront serves network ("tcp" or "unix") with a front whose handler
// reads each request's body with readBody for rt and answers with the
// route it took and the body's length, then lets the body go as handle
// does when no worker read it. It returns the address to dial.
func routeFront(t *testing.T, network string, rt *route) string {
	t.Helper()
	cfg, err := units.Parse(filepath.Join(t.TempDir(), "b.hcl"), []byte(`listener "http" {
  address = "127.0.0.1:0"
}
app "unused" {
  module = "unused"
}
`))
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg.Listeners[0], nil, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	// fasthttp reads ahead up to the largest buffer_body_bytes.
	s.routes.Store(&routes{list: []*route{rt}, maxBuffer: rt.bufferBody})
	s.srv.Handler = func(ctx *fasthttp.RequestCtx) {
		var slots bodySlots
		body, status, msg := readBody(ctx, rt, nil, &slots)
		if status != 0 {
			ctx.Error(msg, status)
			return
		}
		kind, n := body.kind(), body.length()
		if !body.settle(ctx.RequestBodyStream()) {
			ctx.SetConnectionClose()
		}
		body.release(false)
		fmt.Fprintf(ctx, "%s %d", kindNames[kind], n)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.srv.Shutdown() })
	return ln.Addr().String()
}

// TestBodyRoute: which way a request body goes to the worker, by its
// size, its framing, the connection's kind, the app's buffer_body_bytes
// and whether shared memory is at hand; and that the connection serves
// the next request after each.
func TestBodyRoute(t *testing.T) {
	const KiB = 1 << 10
	for _, c := range []struct {
		name    string
		network string
		size    int
		chunked bool
		pause   bool  // the client stops for 200 ms halfway through the body
		buffer  int64 // buffer_body_bytes
		noMemfd bool  // no shared memory pool
		want    string
	}{
		{name: "none", network: "tcp", size: 0, buffer: 1 << 20, want: "frame"},
		{name: "small", network: "tcp", size: 1 * KiB, buffer: 1 << 20, want: "frame"},
		{name: "under sharedFrom", network: "tcp", size: 32*KiB - 1, buffer: 1 << 20, want: "frame"},
		{name: "sharedFrom", network: "tcp", size: 32 * KiB, buffer: 1 << 20, want: "shared"},
		{name: "no memfd", network: "tcp", size: 64 * KiB, buffer: 1 << 20, noMemfd: true, want: "frame"},
		{name: "under socketFrom", network: "tcp", size: 128*KiB - 1, buffer: 1 << 20, want: "shared"},
		{name: "socketFrom", network: "tcp", size: 128 * KiB, buffer: 1 << 20, want: "socket"},
		{name: "socketFrom over unix", network: "unix", size: 128 * KiB, buffer: 1 << 20, want: "shared"},
		{name: "paused client", network: "tcp", size: 160 * KiB, pause: true, buffer: 1 << 20, want: "shared"},
		{name: "at buffer_body_bytes", network: "tcp", size: 64 * KiB, buffer: 64 * KiB, want: "shared"},
		{name: "past buffer_body_bytes", network: "tcp", size: 64*KiB + 1, buffer: 64 * KiB, want: "file"},
		{name: "past buffer_body_bytes over unix", network: "unix", size: 2 << 20, buffer: 1 << 20, want: "file"},
		{name: "chunked", network: "tcp", size: 10 * KiB, chunked: true, buffer: 1 << 20, want: "frame"},
		{name: "chunked up to buffer_body_bytes", network: "tcp", size: 200 * KiB, chunked: true, buffer: 1 << 20, want: "frame"},
		{name: "chunked past buffer_body_bytes", network: "tcp", size: 200 * KiB, chunked: true, buffer: 64 * KiB, want: "file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt := &route{maxBody: 16 << 20, bufferBody: c.buffer, tooLarge: "too large"}
			if !c.noMemfd {
				rt.shared = &sharedPool{}
				defer rt.shared.drain()
			}
			addr := routeFront(t, c.network, rt)
			conn, err := net.Dial(c.network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			got := postBody(t, conn, br, c.size, c.chunked, c.pause)
			if want := c.want + " " + strconv.Itoa(c.size); got != want {
				t.Errorf("a body of %d bytes went by %q, want %q", c.size, got, want)
			}
			// The connection is in step: the next request is served.
			if got := postBody(t, conn, br, 10, false, false); got != "frame 10" {
				t.Errorf("the next request on the connection got %q, want \"frame 10\"", got)
			}
		})
	}
}

// postBody sends a POST with a body of size bytes and returns the
// answer's body.
func postBody(t *testing.T, conn net.Conn, br *bufio.Reader, size int, chunked, pause bool) string {
	t.Helper()
	body := strings.Repeat("b", size)
	head := "POST / HTTP/1.1\r\nHost: x\r\n"
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
		body = fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", size, body)
	} else {
		head += "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	}
	msg := head + body
	if pause {
		cut := len(head) + size/2
		if _, err := io.WriteString(conn, msg[:cut]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		msg = msg[cut:]
	}
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %d %q (%v)", resp.StatusCode, b, err)
	}
	return string(b)
}

// TestInFrameBodyAllocs: a body in the frame, the common case, costs no
// allocation on its way to the pool's request and back, with or without
// bytes.
func TestInFrameBodyAllocs(t *testing.T) {
	rt := &route{maxBody: 1 << 20, bufferBody: 1 << 20}
	for _, body := range []string{"", "hello"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetBodyString(body)
		ctx.Request.Header.SetContentLength(len(body))
		var enc wire.RequestEncoder
		enc.Reset()
		buf := make([]byte, 0, 64)
		var slots bodySlots
		allocs := testing.AllocsPerRun(100, func() {
			b, status, _ := readBody(&ctx, rt, buf, &slots)
			req := b.request(&enc)
			if status != 0 || b.kind() != bodyInFrame || string(req.Body) != body {
				t.Fatalf("a body of %q: status %d, route %s, %q in the frame", body, status, kindNames[b.kind()], req.Body)
			}
			b.release(true)
		})
		if allocs != 0 {
			t.Errorf("a body of %q in the frame: %v allocations, want none", body, allocs)
		}
	}
}
