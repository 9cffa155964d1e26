package units

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnits compares the rendered units of testdata/valid.hcl with
// testdata/units.golden (go test ./units -update rewrites it).
func TestUnits(t *testing.T) {
	cfg, err := Load("testdata/valid.hcl")
	if err != nil {
		t.Fatal(err)
	}
	files, err := cfg.Units(UnitOptions{Name: "shop", Berth: "/usr/bin/berth", Config: "/etc/berth/shop.hcl", User: "berth", Group: "berth"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range files {
		b.WriteString("### " + f.Name + "\n" + f.Content)
	}
	dir, _ := filepath.Abs("testdata")
	got := strings.ReplaceAll(b.String(), dir, "TESTDATA")
	// A checkout under /tmp (a CI clone) has its apps' chdir bound back
	// in (tmpBinds, TestTmpBinds); the golden file is of one elsewhere.
	got = strings.Replace(got, "# What the site reads from the private /tmp or /var/tmp (PrivateTmp=),\n# bound back in read-only.\nBindReadOnlyPaths=TESTDATA\n", "", 1)
	golden := "testdata/units.golden"
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("units differ from %s:\n%s", golden, got)
	}
	// The TCP socket (http) defers accepting to the request's first
	// bytes, as a socket berth binds does; the Unix one (admin) cannot.
	if n := strings.Count(got, "DeferAcceptSec=5s\n"); n != 1 {
		t.Errorf("units say DeferAcceptSec=5s %d times, want once (the TCP listener only)", n)
	}
	for _, w := range []string{"FileDescriptorName=http\n", "FileDescriptorName=admin\n", "SocketMode=0600\nSocketUser=www-data\nRemoveOnStop=yes\n", "Type=notify\n", "ExecReload=/usr/bin/berth reload /etc/berth/shop.hcl\n", "TimeoutStopSec=45s\n"} {
		if !strings.Contains(got, w) {
			t.Errorf("units lack %q", w)
		}
	}
}

func TestUnitsRefusePortZero(t *testing.T) {
	cfg, err := Parse("x.hcl", []byte("listener \"h\" {\n address = \"127.0.0.1:0\"\n}\napp \"a\" {\n module = \"a\"\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Units(UnitOptions{Name: "x"}); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("Units with port 0 = %v", err)
	}
}

// TestInstanceDropIn: the drop-in moving the template's Unix socket to a
// TCP address also defers accepting, and one to another Unix socket not.
func TestInstanceDropIn(t *testing.T) {
	for _, tc := range []struct {
		address, listen string
		deferred        bool
	}{
		{"127.0.0.1:8080", "ListenStream=127.0.0.1:8080\n", true},
		{":8080", "ListenStream=8080\n", true},
		{"unix:/run/site.sock", "ListenStream=/run/site.sock\n", false},
	} {
		cfg, err := Parse("x.hcl", []byte("listener \"http\" {\n address = \""+tc.address+"\"\n}\napp \"a\" {\n module = \"a\"\n}\n"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := cfg.InstanceDropIn("site")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(f.Content, "ListenStream=\n"+tc.listen) {
			t.Errorf("%s: drop-in %q lacks %q", tc.address, f.Content, tc.listen)
		}
		if got := strings.Contains(f.Content, "DeferAcceptSec=5s\n"); got != tc.deferred {
			t.Errorf("%s: DeferAcceptSec in the drop-in is %v, want %v:\n%s", tc.address, got, tc.deferred, f.Content)
		}
	}
}

// TestSocketOwnerUnits: a Unix listener's socket_mode, socket_user and
// socket_group become SocketMode=, SocketUser= and SocketGroup= both in
// the units `berth units` renders and in the template's instance drop-in;
// unset, the user and group lines are left out (the drop-in then keeps the
// template's) and the mode is the default 0660.
func TestSocketOwnerUnits(t *testing.T) {
	for _, tc := range []struct {
		attrs, want string
	}{
		{``, "SocketMode=0660\n"},
		{`socket_mode = "0600"`, "SocketMode=0600\n"},
		{`socket_group = "nginx"`, "SocketMode=0660\nSocketGroup=nginx\n"},
		{`socket_user = "www-data"`, "SocketMode=0660\nSocketUser=www-data\n"},
		{"socket_mode = \"0666\"\nsocket_user = \"berth\"\nsocket_group = \"33\"", "SocketMode=0666\nSocketUser=berth\nSocketGroup=33\n"},
	} {
		cfg, err := Parse("x.hcl", []byte("listener \"http\" {\n address = \"unix:/run/berth/site.sock\"\n"+tc.attrs+"\n}\napp \"a\" {\n module = \"a\"\n}\n"))
		if err != nil {
			t.Fatal(err)
		}
		files, err := cfg.Units(UnitOptions{Name: "site"})
		if err != nil {
			t.Fatal(err)
		}
		if got := files[0].Content; !strings.Contains(got, "FileDescriptorName=http\nService=site.service\n"+tc.want+"RemoveOnStop=yes\n") {
			t.Errorf("%q: site.socket lacks %q:\n%s", tc.attrs, tc.want, got)
		}
		drop, err := cfg.InstanceDropIn("site")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(drop.Content, "ListenStream=/run/berth/site.sock\n"+tc.want) {
			t.Errorf("%q: the drop-in does not end in %q:\n%s", tc.attrs, tc.want, drop.Content)
		}
	}
}

// TestTemplate: each package's template socket is berth's and the group
// of the distribution's nginx, mode 0660; the service is the same.
func TestTemplate(t *testing.T) {
	services := map[string]bool{}
	for pkg, group := range map[string]string{"deb": "www-data", "rpm": "nginx"} {
		if PackageSocketGroups[pkg] != group {
			t.Errorf("PackageSocketGroups[%q] = %q, want %q", pkg, PackageSocketGroups[pkg], group)
		}
		files := Template("/usr/bin/berth", PackageSocketGroups[pkg])
		if want := "SocketMode=0660\nSocketUser=berth\nSocketGroup=" + group + "\nRemoveOnStop=yes\n"; !strings.Contains(files[0].Content, want) {
			t.Errorf("%s: berth@.socket lacks %q:\n%s", pkg, want, files[0].Content)
		}
		services[files[1].Content] = true
	}
	if len(services) != 1 {
		t.Errorf("the packages' berth@.service differ")
	}
}
