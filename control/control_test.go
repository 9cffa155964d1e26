package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// handler answers as a running berth would: status works, reload is
// refused (ran, did not succeed), "broken" cannot run, "chan" has a result
// JSON cannot carry.
func handler(_ context.Context, command string) (any, bool, error) {
	switch command {
	case "status":
		return map[string]int{"workers": 2}, true, nil
	case "reload":
		return map[string]string{"message": "app failed to boot"}, false, nil
	case "chan":
		return make(chan int), true, nil
	}
	return nil, false, errors.New("unknown command " + command)
}

// TestCall: each kind of answer, from a socket served by Listen, as Call
// returns it.
func TestCall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl", "site.sock")
	srv, err := Listen(path, handler, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cases := []struct {
		command string
		ok      bool
		result  string
		err     string
	}{
		{"status", true, `{"workers":2}`, ""},
		{"reload", false, `{"message":"app failed to boot"}`, ""},
		{"nonsense", false, "", "unknown command nonsense"},
		{"chan", false, "", "encoding result: json: unsupported type: chan int"},
	}
	for _, tc := range cases {
		t.Run(tc.command, func(t *testing.T) {
			resp, err := Call(path, tc.command, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if resp.OK != tc.ok || string(resp.Result) != tc.result || resp.Error != tc.err {
				t.Errorf("Call(%q) = ok %v, result %s, error %q; want ok %v, result %s, error %q", tc.command, resp.OK, resp.Result, resp.Error, tc.ok, tc.result, tc.err)
			}
		})
	}
}

// TestBadRequest: a line that is not a request gets an error answer, not
// a closed connection, and the handler is not called.
func TestBadRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "site.sock")
	called := false
	srv, err := Listen(path, func(context.Context, string) (any, bool, error) { called = true; return nil, true, nil }, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "reload please\n")
	line, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(line), `{"ok":false,"error":"bad request: invalid character`) || called {
		t.Errorf("answer %q (handler called: %v)", line, called)
	}
}

// TestCallNobody: without a berth, Call says so in words, whether the
// socket file is missing or left behind by a berth that died.
func TestCallNobody(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	leaveStaleSocket(t, stale)
	for _, path := range []string{filepath.Join(dir, "missing.sock"), stale} {
		_, err := Call(path, "status", time.Second)
		if err == nil || !strings.Contains(err.Error(), "no berth is running for this configuration") {
			t.Errorf("Call on %s: %v", filepath.Base(path), err)
		}
	}
}

// leaveStaleSocket makes path a socket file nobody listens on, as a
// berth killed with SIGKILL leaves it.
func leaveStaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

// TestListen: the socket is private, a stale one is replaced, one in use
// and a directory others may write to are refused.
func TestListen(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, path string)
		err     string // "" when Listen must succeed
	}{
		{"fresh directory", func(*testing.T, string) {}, ""},
		{"stale socket", leaveStaleSocket, ""},
		{"socket in use", func(t *testing.T, path string) {
			srv, err := Listen(path, handler, quiet)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
		}, "is in use: is another berth serving this configuration?"},
		{"directory writable by others", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o700)
			os.Chmod(filepath.Dir(path), 0o777)
		}, "must belong to uid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run", "site.sock")
			os.MkdirAll(filepath.Dir(path), 0o700)
			tc.prepare(t, path)
			srv, err := Listen(path, handler, quiet)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Listen: %v, want an error saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
				t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
			}
			if resp, err := Call(path, "status", 5*time.Second); err != nil || !resp.OK {
				t.Errorf("Call: %+v %v", resp, err)
			}
		})
	}
}

// TestListenCreatesPrivateDir: the runtime directory Listen creates is
// the user's alone.
func TestListenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	srv, err := Listen(filepath.Join(dir, "site.sock"), handler, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 || int(fi.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
		t.Errorf("directory %v, uid %d; want 0700 and uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
	}
}

// TestSocketPath: one configuration file, however named, meets one
// socket; two files never share one.
func TestSocketPath(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", "/run/berth-test:/run/other")
	dir := t.TempDir()
	t.Chdir(dir)
	abs := filepath.Join(dir, "site.hcl")
	a, _ := SocketPath("site.hcl")
	b, _ := SocketPath(abs)
	c, _ := SocketPath(filepath.Join(dir, "sub", "..", "site.hcl"))
	other, _ := SocketPath(filepath.Join(dir, "sub", "site.hcl"))
	if a != b || a != c {
		t.Errorf("one file, three sockets: %s %s %s", a, b, c)
	}
	if a == other {
		t.Errorf("two files share %s", a)
	}
	if filepath.Dir(a) != "/run/berth-test" || !strings.HasPrefix(filepath.Base(a), "site-") || !strings.HasSuffix(a, ".sock") {
		t.Errorf("socket %s: want /run/berth-test/site-HASH.sock", a)
	}
}

// TestRuntimeDir: where the control sockets go, by environment.
func TestRuntimeDir(t *testing.T) {
	cases := []struct {
		name, runtimeDirectory, xdg string
		want                        string
	}{
		{"systemd's RuntimeDirectory=, its first", "/run/site:/run/more", "/run/user/1000", "/run/site"},
		{"systemd's, alone", "/run/site", "", "/run/site"},
		{"no RuntimeDirectory=", "", "/run/user/1000", ""}, // by uid, below
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("RUNTIME_DIRECTORY", tc.runtimeDirectory)
			t.Setenv("XDG_RUNTIME_DIR", tc.xdg)
			want := tc.want
			if want == "" {
				want = "/run/berth"
				if os.Geteuid() != 0 {
					want = "/run/user/1000/berth"
				}
			}
			if got := RuntimeDir(); got != want {
				t.Errorf("RuntimeDir() = %s, want %s", got, want)
			}
		})
	}
}
