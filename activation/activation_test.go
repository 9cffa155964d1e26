package activation

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
		{Spec{"a", "unix", notSock}, `listener "a": ` + notSock + " exists and is not a socket"},
		{Spec{"b", "unix", filepath.Join(dir, "busy.sock")}, "is in use by another server"},
		{Spec{"c", "tcp", taken.Addr().String()}, "address already in use"},
		{Spec{"d", "udp", "x"}, `unknown network "udp"`},
	} {
		_, err := Listen([]Spec{{"ok", "tcp", "127.0.0.1:0"}, tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Listen(%v) = %v, want error containing %q", tc.spec, err, tc.want)
		}
	}
}
