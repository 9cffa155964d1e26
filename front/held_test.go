package front

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
)

// closerFunc is an io.Closer.
type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

// TestHeldBodyOutlivesWrite checks what the front relies on to write a
// body from a worker's out ring (handle, supervisor.Exchange.Hold): with
// the front's own fasthttp settings, a body set with SetBodyRaw is written
// before fasthttp closes the request's user values, however long the
// client takes to read it, and the values are closed too when the client
// goes away mid-body. The closer here wipes the body, as the worker would
// overwrite a place given back: a client that read any of it after the
// closer ran would see zeros.
func TestHeldBodyOutlivesWrite(t *testing.T) {
	s := New(units.Listener{
		Name: "test", HeaderTimeout: 5 * time.Second, BodyTimeout: 5 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second,
		MaxHeaderBytes: 8 << 10, MaxURIBytes: 4 << 10,
	}, nil, journal.New(io.Discard, slog.LevelInfo), false)
	const n = 8 << 20 // past what loopback's send buffer takes (4 MiB)
	closed := make(chan int, 4)
	s.srv.Handler = func(ctx *fasthttp.RequestCtx) {
		seed := len(ctx.Path())
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(seed + i%251)
		}
		ctx.Response.SetBodyRaw(body)
		ctx.SetUserValue(heldBodyKey{}, closerFunc(func() {
			clear(body)
			closed <- seed
		}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.srv.Shutdown()

	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10)
		})
	}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Two at once, told apart by their paths' lengths.
	if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bb HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the first body waits in the write
	select {
	case seed := <-closed:
		t.Fatalf("the held body of /%d was let go while the client had read none of it", seed)
	default:
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for _, seed := range []int{2, 3} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(seed + i%251)
		}
		if err != nil || !bytes.Equal(got, want) {
			i := 0
			for i < min(len(got), n) && got[i] == want[i] {
				i++
			}
			t.Fatalf("answer for a path of %d bytes: %d bytes, %v, differing from byte %d", seed, len(got), err, i)
		}
		select {
		case s := <-closed:
			if s != seed {
				t.Errorf("after answer %d, the held body of answer %d was let go", seed, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the held body of answer %d was not let go after it was written", seed)
		}
	}

	// A client that goes away mid-body: the body is let go all the same.
	c2, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c2, "GET /cccc HTTP/1.1\r\nHost: x\r\n\r\n")
	io.ReadFull(c2, make([]byte, 1<<20))
	c2.Close()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("the held body of an answer whose client went away was never let go")
	}
}

// TestSendsAtOnce: a body is written from the ring only while the
// client's socket can take it without waiting.
func TestSendsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close() // and never reads
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if !sendsAtOnce(server, 1<<20) {
		t.Error("1 MiB does not go at once on an idle loopback connection")
	}
	// Fill the send buffer: the client reads nothing.
	server.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := server.Write(make([]byte, 16<<20)); !os.IsTimeout(err) {
		t.Fatalf("writing 16 MiB to a client that reads nothing: %v, want a timeout", err)
	}
	if sendsAtOnce(server, 1<<20) {
		t.Error("1 MiB would go at once with the send buffer full")
	}
	if sendsAtOnce(fakeConn{}, 1) {
		t.Error("a connection with no descriptor would take a body at once")
	}
}

// fakeConn is a net.Conn with no file descriptor.
type fakeConn struct{ net.Conn }
