package units

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestDiagnostics checks the exact text `berth check` prints for each bad
// configuration in testdata against its .golden file.
func TestDiagnostics(t *testing.T) {
	cases := []struct {
		file string
		want []string // headlines that must be present
	}{
		{"unknown_attr.hcl", []string{"unknown_attr.hcl:7:3: error: Unsupported argument"}},
		{"wrong_type.hcl", []string{"wrong_type.hcl:7:14: error: Unsuitable value type"}},
		{"bad_duration.hcl", []string{
			"bad_duration.hcl:3:20: error: Invalid duration",
			"bad_duration.hcl:8:13: error: Invalid duration",
		}},
		{"unknown_listener.hcl", []string{"unknown_listener.hcl:6:14: error: Unknown listener"}},
		{"duplicate.hcl", []string{
			"duplicate.hcl:5:10: error: Duplicate listener name",
			"duplicate.hcl:13:5: error: Duplicate app name",
		}},
		{"bad_values.hcl", []string{
			"bad_values.hcl:2:13: error: Invalid address",
			"bad_values.hcl:6:20: error: Invalid module",
			"bad_values.hcl:7:20: error: Value out of range",
			"bad_values.hcl:8:20: error: Invalid size",
		}},
		{"syntax.hcl", []string{"syntax.hcl:1:17: error: Unclosed configuration block"}},
		{"bad_proxies.hcl", []string{
			"bad_proxies.hcl:3:21: error: Invalid trusted_proxies",
			"bad_proxies.hcl:4:21: error: Not a Unix socket",
			"bad_proxies.hcl:9:21: error: Invalid socket_mode",
			"bad_proxies.hcl:11:21: error: No trusted proxies",
			"bad_proxies.hcl:16:17: error: Invalid duration",
		}},
		{"missing.hcl", []string{
			"missing.hcl:1:17: error: Missing required argument",
			"missing.hcl:8:1: error: Missing module",
			"missing.hcl:12:1: error: Unsupported block type",
		}},
		{"shared_listener.hcl", []string{"shared_listener.hcl:9:1: error: Mount already taken"}},
		{"bad_mounts.hcl", []string{
			"bad_mounts.hcl:7:12: error: Invalid mount",
			"bad_mounts.hcl:8:12: error: Invalid host",
		}},
		{"dup_mounts.hcl", []string{
			"dup_mounts.hcl:12:12: error: Mount already taken",
			"dup_mounts.hcl:20:1: error: Mount already taken",
		}},
		{"workers_twice.hcl", []string{
			"workers_twice.hcl:8:3: error: Duplicate workers",
			"workers_twice.hcl:18:11: error: Value out of range: max (2) is below min (4).",
			"workers_twice.hcl:19:20: error: Invalid duration",
			"workers_twice.hcl:21:18: error: Invalid duration: Want a positive duration",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			_, err := Load(path)
			var de *DiagError
			if !errors.As(err, &de) {
				t.Fatalf("Load(%s) = %v, want a *DiagError", path, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("diagnostics lack %q; got:\n%s", w, err)
				}
			}
			var buf bytes.Buffer
			de.Format(&buf)
			golden := strings.TrimSuffix(path, ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./units -update to create it): %v", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("diagnostics differ from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestValid(t *testing.T) {
	cfg, err := Load("testdata/valid.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("testdata")
	if cfg.Log != (Log{Format: "json", Level: "warn", Access: false, AccessFormat: "fields"}) {
		t.Errorf("log = %+v", cfg.Log)
	}
	if len(cfg.Listeners) != 2 || len(cfg.Apps) != 2 {
		t.Fatalf("got %d listeners, %d apps; want 2, 2", len(cfg.Listeners), len(cfg.Apps))
	}
	admin := cfg.Listeners[1]
	if admin.Network != "unix" || admin.Address != filepath.Join(dir, "admin.sock") ||
		admin.HeaderTimeout != 5*time.Second || admin.MaxHeaderBytes != 32<<10 ||
		admin.MaxURIBytes != DefaultMaxURIBytes || admin.IdleTimeout != DefaultIdleTimeout {
		t.Errorf("admin listener = %+v", admin)
	}
	shop := cfg.Apps[0]
	wantShop := App{
		Name: "shop", Listener: "http", Module: "shop.wsgi:application",
		Python: filepath.Join(dir, "venv/bin/python"), Chdir: filepath.Join(dir, "src"),
		PythonPath: []string{filepath.Join(dir, "src/lib"), "/opt/extra"},
		Env:        map[string]string{"DJANGO_SETTINGS_MODULE": "shop.settings"},
		Workers:    3, Timeout: 45 * time.Second, BootTimeout: DefaultBootTimeout,
		QueueSize: 64, QueueTimeout: 2 * time.Second, MaxBodyBytes: 1 << 20,
		Scheduling: SchedNormal,
	}
	if !equalApp(shop, wantShop) {
		t.Errorf("shop = %+v\nwant  %+v", shop, wantShop)
	}
	tools := cfg.Apps[1]
	if tools.Python != DefaultPython || tools.Chdir != dir || tools.Workers != DefaultWorkers() ||
		tools.Timeout != DefaultTimeout || tools.MaxBodyBytes != DefaultMaxBodyBytes || tools.Scheduling != SchedBatch {
		t.Errorf("tools defaults = %+v", tools)
	}
	if s := cfg.Summary(); !strings.Contains(s, "2 listener(s), 2 app(s)") || !strings.Contains(s, "shop (shop.wsgi:application, 3 workers, on http)") {
		t.Errorf("Summary() = %q", s)
	}
}

func TestScaling(t *testing.T) {
	cfg, err := Load("testdata/scaling.hcl")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps[0]
	if a.Workers != 2 || a.MinWorkers != 2 || a.MaxWorkers != 16 || a.SpawnAfter != 50*time.Millisecond ||
		a.IdleTimeout != 30*time.Second || a.MaxRequests != 1000 || a.MaxRequestsJitter != 50 ||
		a.MaxLifetime != time.Hour || a.MaxRSS != 512<<20 || a.GracefulTimeout != 10*time.Second {
		t.Errorf("scaling app = %+v", a)
	}
	fixed, err := Parse("x.hcl", []byte("listener \"h\" {\n address = \":0\"\n}\napp \"a\" {\n module = \"a\"\n workers = 3\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f := fixed.Apps[0]; f.Workers != 3 || f.MinWorkers != 3 || f.MaxWorkers != 3 || f.MaxRequests != 0 || f.MaxLifetime != 0 || f.GracefulTimeout != DefaultGraceful {
		t.Errorf("fixed app = %+v", f)
	}
}

// TestOnlyListenerIsDefault: with one listener, an app need not name it.
func TestOnlyListenerIsDefault(t *testing.T) {
	cfg, err := Parse("x.hcl", []byte("listener \"web\" {\n address = \"[::1]:0\"\n}\napp \"a\" {\n module = \"a\"\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log != (Log{Format: "auto", Level: "info", Access: true, AccessFormat: "fields"}) {
		t.Errorf("default log = %+v", cfg.Log)
	}
	if cfg.Apps[0].Listener != "web" || cfg.Listeners[0].Network != "tcp" {
		t.Errorf("got %+v %+v", cfg.Apps[0], cfg.Listeners[0])
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512", 512, true}, {"64KiB", 64 << 10, true}, {"16 MiB", 16 << 20, true},
		{"1GiB", 1 << 30, true}, {"10MB", 10e6, true}, {"3B", 3, true},
		{"", 0, false}, {"-1", 0, false}, {"1.5MiB", 0, false}, {"lots", 0, false},
		{"99999999999GiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func equalApp(a, b App) bool {
	if len(a.PythonPath) != len(b.PythonPath) || len(a.Env) != len(b.Env) {
		return false
	}
	for i := range a.PythonPath {
		if a.PythonPath[i] != b.PythonPath[i] {
			return false
		}
	}
	for k, v := range a.Env {
		if b.Env[k] != v {
			return false
		}
	}
	a.PythonPath, b.PythonPath, a.Env, b.Env = nil, nil, nil, nil
	return a.Name == b.Name && a.Listener == b.Listener && a.Module == b.Module && a.Python == b.Python &&
		a.Chdir == b.Chdir && a.Workers == b.Workers && a.Timeout == b.Timeout && a.BootTimeout == b.BootTimeout &&
		a.QueueSize == b.QueueSize && a.QueueTimeout == b.QueueTimeout && a.MaxBodyBytes == b.MaxBodyBytes &&
		a.Scheduling == b.Scheduling
}

// TestMounts: apps share a listener by mount and host; a trailing slash
// is dropped, host names are lower-cased.
func TestMounts(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "mounts.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		mount string
		hosts []string
	}{
		"site":   {"", nil},
		"api":    {"/api", nil},
		"api-v2": {"/api/v2", nil},
		"blog":   {"", []string{"blog.example.com", "[2001:db8::1]"}},
	}
	for _, a := range cfg.Apps {
		w := want[a.Name]
		if a.Listener != "http" || a.Mount != w.mount || fmt.Sprint(a.Hosts) != fmt.Sprint(w.hosts) {
			t.Errorf("app %s: listener %q mount %q hosts %q; want http, %q, %q", a.Name, a.Listener, a.Mount, a.Hosts, w.mount, w.hosts)
		}
	}
	for _, tc := range []struct {
		mount string
		ok    bool
	}{
		{"/", true}, {"/api", true}, {"/.well-known", true}, {"/a/b/", true}, {"/v1.2", true},
		{"", false}, {"api", false}, {"//api", false}, {"/a//b", false}, {"/a/../b", false}, {"/.", false},
		{"/a%2Fb", false}, {"/a?b", false}, {"/a#b", false}, {"/a b", false},
	} {
		src := fmt.Sprintf("listener \"http\" {\n  address = \"127.0.0.1:8000\"\n}\napp \"a\" {\n  module = \"a:app\"\n  mount = %q\n}\n", tc.mount)
		path := filepath.Join(t.TempDir(), "m.hcl")
		os.WriteFile(path, []byte(src), 0o644)
		_, err := Load(path)
		if (err == nil) != tc.ok {
			t.Errorf("mount %q: err = %v, want ok %v", tc.mount, err, tc.ok)
		}
	}
}

// TestProxySettings checks what trusted_proxies, proxy_protocol, the
// socket attributes and the admin block decode to, defaults included.
func TestProxySettings(t *testing.T) {
	cases := []struct {
		name, listener, admin string
		check                 func(t *testing.T, c *Config)
	}{
		{"defaults", `address = "127.0.0.1:0"`, "", func(t *testing.T, c *Config) {
			l := c.Listeners[0]
			if !reflect.DeepEqual(l.Trusted, DefaultTrust()) || l.ProxyProtocol || c.Admin != nil {
				t.Errorf("trusted %v, proxy %v, admin %v", l.Trusted, l.ProxyProtocol, c.Admin)
			}
			if !l.Trusted.Contains(netip.MustParseAddr("127.0.0.2")) || !l.Trusted.Contains(netip.MustParseAddr("::ffff:127.0.0.1")) || l.Trusted.Contains(netip.MustParseAddr("10.0.0.1")) {
				t.Errorf("default trust %v matches wrongly", l.Trusted)
			}
		}},
		{"nobody", `address = "127.0.0.1:0"
trusted_proxies = []`, "", func(t *testing.T, c *Config) {
			if l := c.Listeners[0]; !l.Trusted.Empty() || l.Trusted.Contains(netip.MustParseAddr("127.0.0.1")) {
				t.Errorf("trusted %v, want nobody", l.Trusted)
			}
		}},
		{"lb", `address = "[::]:0"
trusted_proxies = ["10.1.2.3", "192.168.0.0/16", "fd00::/8"]
proxy_protocol = true`, "", func(t *testing.T, c *Config) {
			l := c.Listeners[0]
			if got := l.Trusted.String(); got != "10.1.2.3, 192.168.0.0/16, fd00::/8" || !l.ProxyProtocol {
				t.Errorf("trusted %q, proxy %v", got, l.ProxyProtocol)
			}
			if !l.Trusted.Contains(netip.MustParseAddr("192.168.9.9")) || l.Trusted.Contains(netip.MustParseAddr("10.1.2.4")) {
				t.Errorf("trust %v matches wrongly", l.Trusted)
			}
		}},
		{"unix", `address = "unix:/run/x.sock"
socket_mode = "0666"
socket_group = "www-data"`, `admin {
  address = "unix:admin.sock"
  drain_delay = "3s"
}`, func(t *testing.T, c *Config) {
			want := SocketOwner{Mode: 0o666, Group: "www-data"}
			if l := c.Listeners[0]; l.Socket != want {
				t.Errorf("socket %+v, want %+v", l.Socket, want)
			}
			a := c.Admin
			if a == nil || a.Network != "unix" || !filepath.IsAbs(a.Address) || a.DrainDelay != 3*time.Second || a.Socket.Mode != DefaultSocketMode {
				t.Errorf("admin %+v", a)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf("listener \"http\" {\n%s\n}\n%s\napp \"a\" {\n  module = \"a:app\"\n}\n", tc.listener, tc.admin)
			c, err := Parse("/etc/berth/x.hcl", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
