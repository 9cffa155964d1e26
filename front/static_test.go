package front

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berthd/berth/units"
)

// TestStaticOpen opens names in a real directory, with openat2 and with
// the os.Root that kernels before 5.6 get instead: both confine names to
// the directory alike.
func TestStaticOpen(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "static")
	for name, body := range map[string]string{
		"static/a.css": "a", "static/a.css.br": "br", "static/a.css.gz": "gz", "static/sub/b.js": "b",
		"static/.env": "x", "static/sub/.git/HEAD": "x", "secret.txt": "x", "static/locked.txt": "x",
	} {
		os.MkdirAll(filepath.Join(top, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(top, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"in.css": "a.css", "sub/up.css": "../a.css", "out.txt": "../secret.txt", "abs.css": filepath.Join(dir, "a.css"),
		"outdir": "..", "dangling": "nowhere",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "locked.txt"), 0)
	locked := os.Geteuid() != 0 // root reads it anyway
	cases := []struct {
		rel, accept string
		status      int
		coding      string
	}{
		{"/a.css", "", 0, ""},
		{"/a.css", "br", 0, "br"},
		{"/a.css", "gzip", 0, "gzip"},
		{"/a.css", "gzip, br", 0, "br"},
		{"/sub/b.js", "br", 0, ""},
		{"/in.css", "", 0, ""},
		{"/sub/up.css", "", 0, ""},
		{"/out.txt", "", 404, ""},
		{"/abs.css", "", 404, ""},
		{"/outdir/secret.txt", "", 404, ""},
		{"/dangling", "", 404, ""},
		{"/.env", "", 404, ""},
		{"/sub/.git/HEAD", "", 404, ""},
		{"/sub", "", 404, ""},
		{"/sub/", "", 404, ""},
		{"/", "", 404, ""},
		{"", "", 404, ""},
		{"/fifo", "", 404, ""},
		{"/missing", "br", 404, ""},
		{"//etc/passwd", "", 404, ""},
		{"/a.css/x", "", 404, ""},
	}
	if locked {
		cases = append(cases, struct {
			rel, accept string
			status      int
			coding      string
		}{"/locked.txt", "", 403, ""})
	}
	defer openat2Missing.Store(false)
	for _, missing := range []bool{false, true} {
		openat2Missing.Store(missing)
		m := newStaticMount(units.Static{Dir: dir}, nil)
		if m.err != nil {
			t.Fatal(m.err)
		}
		for _, c := range cases {
			f, status := m.open([]byte(c.rel), []byte(c.accept))
			if status == 0 {
				unix.Close(f.fd)
			}
			if status != c.status || f.coding != c.coding {
				t.Errorf("os.Root %v: open(%q, Accept-Encoding %q) = %d, coding %q; want %d, %q", missing, c.rel, c.accept, status, f.coding, c.status, c.coding)
			}
		}
	}
}

// TestStaticRouteOrder: a static mount wins over its app's mount at the
// same path (a block at the app's root, with fallthrough), and the longest
// path wins between static mounts and other apps' mounts.
func TestStaticRouteOrder(t *testing.T) {
	m := &staticMount{}
	app, root, static, deeper := &route{mount: ""}, &route{mount: "", static: m}, &route{mount: "/static", static: m}, &route{mount: "/static/app"}
	for _, order := range [][]*route{{app, root, static, deeper}, {deeper, static, root, app}} {
		list := append([]*route(nil), order...)
		sortRoutes(list)
		rs := &routes{list: list}
		name := map[*route]string{app: "app", root: "root static", static: "/static", deeper: "app at /static/app", nil: "none"}
		for path, want := range map[string]string{"/x": "root static", "/static/a.css": "/static", "/static/app/x": "app at /static/app", "/staticx": "root static"} {
			if got := name[rs.match([]byte("h"), []byte(path))]; got != want {
				t.Errorf("%s -> %s, want %s", path, got, want)
			}
		}
	}
}
