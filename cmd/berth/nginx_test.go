package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// whereApp is a Flask app that says what it believes about the request:
// scheme, host, the client's address, and the URL it builds for itself.
const whereApp = `from flask import Flask, jsonify, request, url_for

app = Flask(__name__)


@app.route("/info")
def info():
    return jsonify(
        scheme=request.scheme,
        secure=request.is_secure,
        host=request.host,
        remote_addr=request.remote_addr,
        url=url_for("info", _external=True),
    )
`

// TestBehindNginx puts the real nginx, terminating TLS, in front of berth
// over a Unix socket, with exactly the configuration `berth nginx` prints;
// nginx's workers run as www-data, let in by the socket's group. A Django
// site that knows nothing of proxies (securesite: SECURE_SSL_REDIRECT)
// must see https and log its admin in, and a Flask app must see https,
// its client's address (127.0.0.2, not nginx's) and its host and port.
func TestBehindNginx(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	needDjango(t, py)
	e2e.NeedFlask(t, py)
	nginx := needNginx(t)
	dir := sharedTempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "where.py"), []byte(whereApp), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	env := fmt.Sprintf(`{ DJANGO_SETTINGS_MODULE = "securesite.settings", SECURESITE_DB = %q, PYTHONDONTWRITEBYTECODE = "1" }`, filepath.Join(dir, "db.sqlite3"))
	makeSecuresiteDB(t, py, filepath.Join(wd, "testdata"), filepath.Join(dir, "db.sqlite3"))
	b := e2e.StartBerth(t, fmt.Sprintf(`
listener "http" {
  address      = "unix:%s"
  socket_group = "www-data"
}
app "site" {
  module  = "securesite.wsgi:application"
  python  = %q
  chdir   = %q
  workers = 1
  env     = %s
}
app "where" {
  module  = "where:app"
  mount   = "/where"
  python  = %q
  chdir   = %q
  workers = 1
}
`, filepath.Join(dir, "berth.sock"), py, filepath.Join(wd, "testdata"), env, py, dir))

	checkSocketGroup(t, filepath.Join(dir, "berth.sock"), "www-data")
	cert, key, pool := selfSigned(t, dir)
	https, plain := e2e.FreePort(t), e2e.FreePort(t)
	startRenderedNginx(t, nginx, dir, "--tls-cert", cert, "--tls-key", key,
		"--listen", fmt.Sprintf("127.0.0.1:%d", https), "--redirect", fmt.Sprintf("127.0.0.1:%d", plain), b.Config)
	client := clientFrom(t, "127.0.0.2", pool)
	site := fmt.Sprintf("https://localhost:%d", https)

	t.Run("redirect", func(t *testing.T) {
		resp, _ := djangoDo(t, client, "GET", fmt.Sprintf("http://localhost:%d/admin/?a=1", plain), nil, "")
		if resp != nil && (resp.StatusCode != 301 || resp.Header.Get("Location") != site+"/admin/?a=1") {
			t.Errorf("plain http: %d to %q, want 301 to %s/admin/?a=1", resp.StatusCode, resp.Header.Get("Location"), site)
		}
	})
	t.Run("flask", func(t *testing.T) { checkWhere(t, client, site) })
	t.Run("django admin", func(t *testing.T) { adminLogin(t, client, site) })
	if t.Failed() {
		t.Logf("nginx's error log:\n%s", readFile(filepath.Join(dir, "error.log")))
	}
}

// checkWhere asks the Flask app what it sees, once plainly and once with
// forwarding headers of the client's own, which nginx must not pass on.
func checkWhere(t *testing.T, client *http.Client, site string) {
	host := strings.TrimPrefix(site, "https://")
	for _, tc := range []struct {
		name string
		hdr  http.Header
	}{
		{"plain", nil},
		{"client's forwarding headers", http.Header{
			"Forwarded":         {"for=6.6.6.6;proto=http;host=evil.example"},
			"X-Forwarded-Host":  {"evil.example"},
			"X-Forwarded-Port":  {"1"},
			"X-Forwarded-Proto": {"http"},
		}},
	} {
		resp, body := djangoDo(t, client, "GET", site+"/where/info", tc.hdr, "")
		if resp == nil {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); resp.StatusCode != 200 || err != nil {
			t.Errorf("%s: %d %q (%v)", tc.name, resp.StatusCode, body, err)
			continue
		}
		want := map[string]any{"scheme": "https", "secure": true, "host": host, "remote_addr": "127.0.0.2", "url": site + "/where/info"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: Flask's %s is %v, want %v", tc.name, k, got[k], v)
			}
		}
	}
}

// adminLogin logs securesite's superuser into Django's admin over https:
// the login page answers without redirecting (Django sees https), and the
// CSRF check passes (Django sees the host and port the browser used).
func adminLogin(t *testing.T, client *http.Client, site string) {
	resp, body := djangoDo(t, client, "GET", site+"/admin/login/?next=/admin/", nil, "")
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("GET /admin/login/: %s, want 200 (a redirect here loops: Django thinks the request came over http)", statusText(resp))
	}
	token := e2e.RegexpFind(string(body), `name="csrfmiddlewaretoken" value="([^"]+)"`)
	if token == "" {
		t.Fatalf("no CSRF token in the login form: %.500s", body)
	}
	form := url.Values{"username": {"ada"}, "password": {securesitePassword}, "csrfmiddlewaretoken": {token}, "next": {"/admin/"}}
	hdr := http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"},
		"Referer":      {site + "/admin/login/?next=/admin/"},
		"Origin":       {site},
	}
	resp, body = djangoDo(t, client, "POST", site+"/admin/login/", hdr, form.Encode())
	if resp == nil || resp.StatusCode != 302 || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("POST /admin/login/: %s, want 302 to /admin/; body %.500s", statusText(resp), body)
	}
	resp, body = djangoDo(t, client, "GET", site+"/admin/", nil, "")
	if resp == nil || resp.StatusCode != 200 || !strings.Contains(string(body), "<strong>ada</strong>") {
		t.Errorf("GET /admin/ after logging in: %s, want 200 welcoming ada; body %.500s", statusText(resp), body)
	}
}

const securesitePassword = "correct horse battery staple"

// makeSecuresiteDB creates securesite's database at db with Django's
// migrations and a superuser, ada.
func makeSecuresiteDB(t *testing.T, py, testdata, db string) {
	t.Helper()
	for _, args := range [][]string{
		{"migrate", "--noinput"},
		{"createsuperuser", "--noinput", "--username", "ada", "--email", "ada@example.com"},
	} {
		cmd := exec.Command(py, append([]string{"-m", "django"}, args...)...)
		cmd.Dir = testdata
		cmd.Env = append(os.Environ(), "DJANGO_SETTINGS_MODULE=securesite.settings", "SECURESITE_DB="+db,
			"PYTHONDONTWRITEBYTECODE=1", "DJANGO_SUPERUSER_PASSWORD="+securesitePassword)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("django %s: %v\n%s", args[0], err, out)
		}
	}
}

// TestUntrustedForwarding: a client that talks to berth directly on a
// listener that trusts no proxy changes nothing with forwarding headers:
// the app sees http, the client's own address and the Host it sent.
func TestUntrustedForwarding(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	b := e2e.StartBerth(t, e2e.AppConfig(py, "probe:app", "workers = 1", "trusted_proxies = []"))
	client := clientFrom(t, "127.0.0.3", nil)
	for _, tc := range []struct {
		name string
		hdr  http.Header
	}{
		{"X-Forwarded-*", http.Header{
			"X-Forwarded-Proto": {"https"}, "X-Forwarded-For": {"6.6.6.6"},
			"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Port": {"443"},
		}},
		{"Forwarded", http.Header{"Forwarded": {"for=6.6.6.6;proto=https;host=evil.example"}}},
	} {
		resp, body := djangoDo(t, client, "GET", b.URL("/env"), tc.hdr, "")
		if resp == nil {
			continue
		}
		var env map[string]any
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("%s: %v: %q", tc.name, err, body)
		}
		_, port, _ := net.SplitHostPort(b.Addr)
		want := map[string]any{"wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.3", "HTTP_HOST": b.Addr, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": port}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s is %v, want %v", tc.name, k, env[k], v)
			}
		}
		if h, ok := env["HTTPS"]; ok && h != "off" {
			t.Errorf("%s: HTTPS is %v", tc.name, h)
		}
	}
}

// TestNginxCommand: berth nginx's flags reach the rendering, warnings go
// to stderr beside a configuration that still prints, and refusals fail.
func TestNginxCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"untrusted", []string{"../../units/testdata/nginx_tcp.hcl"}, 0,
			[]string{"upstream nginx_tcp_http {\n    server 127.0.0.1:8000;", "# WARNING: listener \"http\" does not trust 127.0.0.1"},
			"berth nginx: warning: listener \"http\" does not trust 127.0.0.1"},
		{"listen and names", []string{"--listen", "127.0.0.1:8080", "--listen", "[::1]:8080", "--server-name", "a.example,b.example", "--name", "web", "../../units/testdata/mounts.hcl"}, 0,
			[]string{"    listen 127.0.0.1:8080;\n    listen [::1]:8080;\n    server_name a.example b.example;\n", "proxy_pass http://web_http;"}, ""},
		{"half of TLS", []string{"--tls-cert", "/etc/ssl/a.pem", "../../units/testdata/mounts.hcl"}, 1, nil, "berth nginx: TLS needs both a certificate and its key"},
		{"no config", nil, 2, nil, "usage: berth nginx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(append([]string{"nginx"}, tc.args...), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr.String())
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tc.stderr) || (tc.stderr == "") != (stderr.Len() == 0) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
		})
	}
}

// needNginx returns the nginx binary, or skips: the test needs it, root
// (nginx's master switches its workers to www-data) and the user www-data.
func needNginx(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("no nginx on this machine: apt-get install nginx")
	}
	if os.Geteuid() != 0 {
		t.Skip("nginx's workers run as www-data, which needs nginx started as root")
	}
	if _, err := user.Lookup("www-data"); err != nil {
		t.Skip("no user www-data for nginx's workers")
	}
	return bin
}

// checkSocketGroup fails the test unless the socket at path belongs to
// group and lets it write, as socket_group asks: else nginx's workers
// get "Permission denied" and every request a 502.
func checkSocketGroup(t *testing.T, path, group string) {
	t.Helper()
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fmt.Sprint(st.Gid) != g.Gid || fi.Mode().Perm()&0o020 == 0 {
		t.Fatalf("berth's socket %s has mode %v and gid %d: socket_group = %q was not applied (group %s is gid %s)", path, fi.Mode().Perm(), st.Gid, group, group, g.Gid)
	}
}

// sharedTempDir is a temporary directory that nginx's workers (www-data)
// can enter, as they must to reach berth's socket in it.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startRenderedNginx runs nginx in dir on what `berth nginx ARGS` prints,
// inside a minimal main configuration, until the test ends; it returns
// once nginx accepts connections on the first listen address. The
// rendering must not warn: berth trusts nginx here, and nginx's workers
// can open the socket.
func startRenderedNginx(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command(e2e.Bin, append([]string{"nginx"}, args...)...)
	cmd.Stderr = &stderr
	site, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("berth nginx: %v\n%s", err, stderr.String())
	}
	main := fmt.Sprintf(`user www-data;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events {}
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir)
	for name, text := range map[string][]byte{"nginx.conf": []byte(main), "site.conf": site} {
		if err := os.WriteFile(filepath.Join(dir, name), text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ngx := exec.Command(bin, "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	if err := ngx.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { ngx.Wait(); close(done) }()
	t.Cleanup(func() { stopProcess(ngx, done) })
	listen := e2e.RegexpFind(string(site), `listen (\S+) ssl;`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("nginx exited: %s", readFile(filepath.Join(dir, "error.log")))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not accept on %s: %s", listen, readFile(filepath.Join(dir, "error.log")))
		}
	}
}

// stopProcess stops a process this test started (nginx's master, which
// stops its workers) by its PID: SIGTERM, then SIGKILL after 10 s.
func stopProcess(cmd *exec.Cmd, done chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address from and all go to 127.0.0.1 (at the port asked for), trusting
// the certificates in pool; it keeps cookies and follows no redirect.
func clientFrom(t *testing.T, from string, pool *x509.CertPool) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	return &http.Client{
		Jar:     jar,
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				return dialer.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
			},
			TLSClientConfig: &tls.Config{RootCAs: pool},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// selfSigned writes a self-signed certificate for localhost and 127.0.0.1,
// valid for a day, and its key into dir; pool trusts it.
func selfSigned(t *testing.T, dir string) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	return cert, key, pool
}

// statusText is a response's status and where it redirects, or "no
// response".
func statusText(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return fmt.Sprintf("%s to %q", resp.Status, loc)
	}
	return resp.Status
}

// readFile is a file's text, or what went wrong reading it.
func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
