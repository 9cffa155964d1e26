package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNginx compares the nginx configuration rendered for each case with
// testdata/nginx_CASE.golden (go test ./units -update rewrites them), checks
// its warnings, and has nginx itself check it (nginx -t).
func TestNginx(t *testing.T) {
	dir, _ := filepath.Abs("testdata")
	cert, key := filepath.Join(dir, "nginx_tls.pem"), filepath.Join(dir, "nginx_tls.key")
	for _, tc := range []struct {
		name, config string
		opt          NginxOptions
		warnings     []string // one substring per warning, in order
	}{
		{"unix", "nginx_unix.hcl", NginxOptions{Name: "shop"}, nil},
		{"tcp", "nginx_tcp.hcl", NginxOptions{Name: "shop", ServerNames: []string{"shop.example.com", "www.shop.example.com"}},
			[]string{`listener "http" does not trust 127.0.0.1`}},
		// Two apps mounted apart beside one for a host; the locations
		// follow berth's longest prefix.
		{"mounts", "mounts.hcl", NginxOptions{Name: "mounts"}, nil},
		// A host's server holds its apps and the apps for any host that
		// its own do not cover ("admin" under the blog's /blog is not in
		// the blog's server: berth routes /blog/admin there to "blog").
		{"hosts", "nginx_hosts.hcl", NginxOptions{Name: "site", Listen: []string{"8080"}},
			[]string{"does not trust 127.0.0.1"}},
		{"tls", "nginx_unix.hcl", NginxOptions{Name: "shop", TLSCert: cert, TLSKey: key, Listen: []string{"443", "[::]:443"}, ServerNames: []string{"shop.example.com"}, Redirect: "80"}, nil},
		{"tls_port", "mounts.hcl", NginxOptions{Name: "mounts", TLSCert: cert, TLSKey: key, Listen: []string{"127.0.0.1:8443"}, Redirect: "127.0.0.1:8080"}, nil},
		{"listener", "valid.hcl", NginxOptions{Name: "shop", Listener: "admin"}, []string{`cannot connect to TESTDATA/admin.sock: set socket_group = "www-data"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tc.config))
			if err != nil {
				t.Fatal(err)
			}
			text, warnings, err := cfg.Nginx(tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != len(tc.warnings) {
				t.Errorf("warnings %q, want %d", warnings, len(tc.warnings))
			}
			for i, w := range warnings {
				if i < len(tc.warnings) && !strings.Contains(strings.ReplaceAll(w, dir, "TESTDATA"), tc.warnings[i]) {
					t.Errorf("warning %q lacks %q", w, tc.warnings[i])
				}
				if !strings.Contains(text, "# WARNING: "+w) {
					t.Errorf("the configuration does not carry warning %q", w)
				}
			}
			compareGolden(t, "testdata/nginx_"+tc.name+".golden", strings.ReplaceAll(text, dir, "TESTDATA"))
			nginxCheck(t, text)
		})
	}
}

// compareGolden compares got with the golden file, which -update rewrites.
func compareGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run go test ./units -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n%s", golden, got)
	}
}

// nginxCheck has nginx test site (nginx -t) inside a minimal main
// configuration in a temporary prefix; a warning fails as an error does
// (nginx warns, and then ignores, a server name given twice).
func nginxCheck(t *testing.T, site string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("no nginx on this machine to check the configuration with: apt-get install nginx")
	}
	prefix := t.TempDir()
	main := `pid nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path body;
    proxy_temp_path proxy;
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;
    include site.conf;
}
`
	for name, text := range map[string]string{"nginx.conf": main, "site.conf": site} {
		if err := os.WriteFile(filepath.Join(prefix, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bin, "-t", "-q", "-e", "stderr", "-p", prefix+"/", "-c", filepath.Join(prefix, "nginx.conf")).CombinedOutput()
	if err != nil || strings.Contains(string(out), "[warn]") {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
}

// TestNginxRefuses: what nginx could not be made to do is an error.
func TestNginxRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		opt          NginxOptions
		want         string
	}{
		{"two listeners for any host", "valid.hcl", NginxOptions{}, `listeners "http" and "admin" both have apps for any host`},
		{"no such listener", "valid.hcl", NginxOptions{Listener: "web"}, `no listener "web"`},
		{"a server name that is a host", "mounts.hcl", NginxOptions{ServerNames: []string{"blog.example.com"}}, `server name "blog.example.com" is a host apps of listener "http" are limited to`},
		{"a certificate without its key", "mounts.hcl", NginxOptions{TLSCert: "/etc/ssl/site.pem"}, "both a certificate and its key"},
		{"a directive in a name", "mounts.hcl", NginxOptions{ServerNames: []string{"a; include /etc/x"}}, "not an address, name or path"},
		{"a host on two listeners", "nginx_twohosts.hcl", NginxOptions{}, `host "example.com" has apps on listeners "a" and "b"`},
		{"port 0", "nginx_port0.hcl", NginxOptions{}, "port 0"},
		{"PROXY protocol", "nginx_proxyprotocol.hcl", NginxOptions{}, "expects the PROXY protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tc.config))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := cfg.Nginx(tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Nginx = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestNginxWarnings: a warning exactly where berth will not believe
// nginx, or nginx's workers cannot connect.
func TestNginxWarnings(t *testing.T) {
	for _, tc := range []struct {
		listener string // the listener block's body
		want     []string
	}{
		{`address = "unix:/run/s.sock"`, []string{"cannot connect to /run/s.sock"}},
		{`address = "unix:/run/s.sock"` + "\n socket_mode = \"0666\"", nil},
		{`address = "unix:/run/s.sock"` + "\n socket_group = \"www-data\"", nil},
		{`address = "unix:/run/s.sock"` + "\n socket_group = \"www-data\"\n socket_mode = \"0600\"", []string{"cannot connect"}},
		{`address = "unix:/run/s.sock"` + "\n socket_group = \"www-data\"\n trusted_proxies = [\"127.0.0.1\"]", []string{`does not trust Unix-socket peers: add "unix"`}},
		{`address = "127.0.0.1:8000"`, nil},
		{`address = "[::]:8000"`, nil},
		{`address = "127.0.0.2:8000"` + "\n trusted_proxies = [\"127.0.0.1\"]", []string{`does not trust 127.0.0.2`}},
		{`address = "10.0.0.5:8000"`, []string{`add "10.0.0.5" to its trusted_proxies`}},
		{`address = "10.0.0.5:8000"` + "\n trusted_proxies = [\"10.0.0.0/8\"]", nil},
	} {
		cfg, err := Parse("x.hcl", []byte("listener \"http\" {\n "+tc.listener+"\n}\napp \"a\" {\n module = \"a:app\"\n}\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, warnings, err := cfg.Nginx(NginxOptions{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if len(warnings) != len(tc.want) {
			t.Errorf("%s: warnings %q, want %q", tc.listener, warnings, tc.want)
			continue
		}
		for i, w := range warnings {
			if !strings.Contains(w, tc.want[i]) {
				t.Errorf("%s: warning %q lacks %q", tc.listener, w, tc.want[i])
			}
		}
	}
}
