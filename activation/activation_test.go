package activation

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	// A socket file whose server is gone: bound, then the fd closed
	// without unlinking.
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: stale}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)

	socks, err := Listen([]Spec{
		{Name: "v4", Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "v6", Network: "tcp", Address: "[::1]:0"},
		{Name: "unix", Network: "unix", Address: filepath.Join(dir, "a.sock")},
		{Name: "stale", Network: "unix", Address: stale},
	})
	if err != nil {
		if strings.Contains(err.Error(), "cannot assign requested address") {
			t.Skip("no IPv6 loopback on this machine")
		}
		t.Fatal(err)
	}
	for _, s := range socks {
		// A duplicate closed by its user leaves the socket accepting.
		dup, err := s.Listener()
		if err != nil {
			t.Fatal(err)
		}
		dup.Close()
		dup, _ = s.Listener()
		network := "tcp"
		if s.Spec.Network == "unix" {
			network = "unix"
		}
		c, err := net.Dial(network, s.Addr())
		if err != nil {
			t.Errorf("%s: dial %s: %v", s.Name, s.Addr(), err)
			continue
		}
		// A first byte, as an HTTP client sends: a TCP socket hands over
		// connections only once they have spoken (TestDeferAccept).
		if _, err := c.Write([]byte("x")); err != nil {
			t.Errorf("%s: write: %v", s.Name, err)
		}
		a, err := dup.Accept()
		if err != nil {
			t.Errorf("%s: accept on the duplicate: %v", s.Name, err)
		} else {
			a.Close()
		}
		c.Close()
		dup.Close()
		s.Close()
		if s.Spec.Network == "unix" {
			if _, err := os.Stat(s.Spec.Address); !os.IsNotExist(err) {
				t.Errorf("%s: socket file left after Close: %v", s.Name, err)
			}
		}
	}
}

func TestListenErrors(t *testing.T) {
	dir := t.TempDir()
	notSock := filepath.Join(dir, "file")
	os.WriteFile(notSock, nil, 0o644)
	busy, err := net.Listen("unix", filepath.Join(dir, "busy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	taken, _ := net.Listen("tcp", "127.0.0.1:0")
	defer taken.Close()

	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "a", Network: "unix", Address: notSock}, `listener "a": ` + notSock + " exists and is not a socket"},
		{Spec{Name: "b", Network: "unix", Address: filepath.Join(dir, "busy.sock")}, "is in use by another server"},
		{Spec{Name: "c", Network: "tcp", Address: taken.Addr().String()}, "address already in use"},
		{Spec{Name: "d", Network: "udp", Address: "x"}, `unknown network "udp"`},
	} {
		_, err := Listen([]Spec{{Name: "ok", Network: "tcp", Address: "127.0.0.1:0"}, tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Listen(%v) = %v, want error containing %q", tc.spec, err, tc.want)
		}
	}
}

// TestDeferAccept: a TCP socket berth binds hands over a connection only
// once its first bytes are in, and then with them; a Unix socket, which
// has no such option, accepts at once.
func TestDeferAccept(t *testing.T) {
	dir := t.TempDir()
	socks, err := Listen([]Spec{
		{Name: "tcp", Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "unix", Network: "unix", Address: filepath.Join(dir, "a.sock")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range socks {
		defer s.Close()
	}
	tcp, unix := socks[0], socks[1]
	// Through the listener's RawConn: File.Fd would set the shared
	// socket blocking.
	v := -1
	rc, err := tcp.ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		v, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT)
	})
	if err != nil || v <= 0 {
		t.Errorf("TCP_DEFER_ACCEPT on the bound socket = %d, %v; want > 0", v, err)
	}

	// accepting accepts one connection on s in the background; the
	// function it returns waits up to d for it (nil if none came).
	accepting := func(s *Socket) func(d time.Duration) net.Conn {
		ln, err := s.Listener()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		ch := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				ch <- c
			}
			close(ch)
		}()
		return func(d time.Duration) net.Conn {
			select {
			case a, ok := <-ch:
				if !ok {
					t.Fatalf("%s: accept failed", s.Name)
				}
				t.Cleanup(func() { a.Close() })
				return a
			case <-time.After(d):
				return nil
			}
		}
	}

	wait := accepting(tcp)
	c, err := net.Dial("tcp", tcp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if wait(500*time.Millisecond) != nil {
		t.Fatal("a silent TCP connection was accepted; want it held until its first bytes")
	}
	if _, err := c.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	a := wait(5 * time.Second)
	if a == nil {
		t.Fatal("the connection was not accepted after its first bytes came")
	}
	a.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 3)
	if n, err := a.Read(buf); err != nil || string(buf[:n]) != "GET" {
		t.Errorf("accepted connection read %q, %v; want the bytes sent", buf[:n], err)
	}

	uwait := accepting(unix)
	u, err := net.Dial("unix", unix.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if uwait(5*time.Second) == nil {
		t.Fatal("a silent Unix connection was not accepted")
	}
}
