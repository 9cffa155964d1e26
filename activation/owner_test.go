package activation

import (
	"context"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fileOwner is the mode and numeric owner of the file at path.
func fileOwner(t *testing.T, path string) (os.FileMode, int, int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode().Perm(), int(st.Uid), int(st.Gid)
}

// TestSocketOwner: a Unix socket berth binds gets the mode and owner its
// spec asks for, by name or by number, and still accepts.
func TestSocketOwner(t *testing.T) {
	root := os.Geteuid() == 0
	wwwData := -1
	if g, err := user.LookupGroup("www-data"); err == nil {
		wwwData, _ = strconv.Atoi(g.Gid)
	}
	for _, tc := range []struct {
		name       string
		owner      Owner
		mode       os.FileMode
		uid, gid   int // -1: berth's own
		needRoot   bool
		needWWWGrp bool
	}{
		{"mode only", Owner{Mode: 0o600}, 0o600, -1, -1, false, false},
		{"group by name", Owner{Mode: 0o660, Group: "www-data"}, 0o660, -1, wwwData, true, true},
		{"user and group by number", Owner{Mode: 0o640, User: "65534", Group: "65534"}, 0o640, 65534, 65534, true, false},
		{"own group by number", Owner{Mode: 0o666, Group: strconv.Itoa(os.Getgid())}, 0o666, -1, os.Getgid(), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needRoot && !root {
				t.Skip("giving a socket to another user or group needs root")
			}
			if tc.needWWWGrp && wwwData < 0 {
				t.Skip("no group www-data on this machine (Debian's base-passwd makes it)")
			}
			path := filepath.Join(t.TempDir(), "s.sock")
			socks, err := Listen([]Spec{{Name: "http", Network: "unix", Address: path, Owner: tc.owner}})
			if err != nil {
				t.Fatal(err)
			}
			defer socks[0].Close()
			uid, gid := tc.uid, tc.gid
			if uid < 0 {
				uid = os.Geteuid()
			}
			if gid < 0 {
				gid = os.Getegid()
			}
			if m, u, g := fileOwner(t, path); m != tc.mode || u != uid || g != gid {
				t.Errorf("socket file is %04o %d:%d, want %04o %d:%d", m, u, g, tc.mode, uid, gid)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Close()
		})
	}
}

// TestSocketOwnerErrors: a user or group that does not exist fails the
// listener by name, before any file is made.
func TestSocketOwnerErrors(t *testing.T) {
	for _, tc := range []struct {
		owner Owner
		want  string
	}{
		{Owner{Mode: 0o660, Group: "no-such-group-berth"}, `listener "http": socket group "no-such-group-berth": no such name on this system`},
		{Owner{Mode: 0o660, User: "no-such-user-berth"}, `listener "http": socket user "no-such-user-berth": no such name on this system`},
	} {
		path := filepath.Join(t.TempDir(), "s.sock")
		_, err := Listen([]Spec{{Name: "http", Network: "unix", Address: path, Owner: tc.owner}})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Listen with %+v = %v, want %q", tc.owner, err, tc.want)
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("%+v: a socket file was left at %s", tc.owner, path)
		}
	}
	if os.Geteuid() != 0 {
		// Without root, another user is refused by the kernel: say so.
		path := filepath.Join(t.TempDir(), "s.sock")
		_, err := Listen([]Spec{{Name: "http", Network: "unix", Address: path, Owner: Owner{Mode: 0o660, User: "0"}}})
		if err == nil || !strings.Contains(err.Error(), "operation not permitted") {
			t.Errorf("giving the socket to root without root = %v", err)
		}
	}
}

// TestSocketModeFromBind: the file bind(2) makes is never more open than
// asked, whatever the umask, before its exact mode is set.
func TestSocketModeFromBind(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "s.sock")
	lc := net.ListenConfig{Control: restrict(0o600)}
	ln, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if m, _, _ := fileOwner(t, path); m != 0o600 {
		t.Errorf("bind under umask 0 made the file %04o, want 0600", m)
	}
}

// TestSetOwner: a bound socket takes a new mode in place and keeps
// accepting; a socket systemd passed is left as it is.
func TestSetOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	socks, err := Listen([]Spec{{Name: "http", Network: "unix", Address: path, Owner: Owner{Mode: 0o600}}})
	if err != nil {
		t.Fatal(err)
	}
	s := socks[0]
	defer s.Close()
	if err := s.SetOwner(Owner{Mode: 0o660, Group: strconv.Itoa(os.Getgid())}); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := fileOwner(t, path); m != 0o660 {
		t.Errorf("after SetOwner the file is %04o, want 0660", m)
	}
	if err := s.SetOwner(Owner{Mode: 0o660, Group: "no-such-group-berth"}); err == nil || !strings.Contains(err.Error(), `listener "http": socket group "no-such-group-berth"`) {
		t.Errorf("SetOwner with an unknown group = %v", err)
	}
	if s.Spec.Owner.Mode != 0o660 || s.Spec.Owner.Group == "no-such-group-berth" {
		t.Errorf("a failed SetOwner changed the spec: %+v", s.Spec.Owner)
	}
	ln, err := s.Listener()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial after SetOwner: %v", err)
	}
	c.Close()

	passed := &Socket{Name: "p", Passed: true, Spec: Spec{Name: "p", Network: "unix", Address: path}}
	if err := passed.SetOwner(Owner{Mode: 0o666}); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := fileOwner(t, path); m != 0o660 {
		t.Errorf("SetOwner on a passed socket changed its file to %04o", m)
	}
}
