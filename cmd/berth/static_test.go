package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// staticApp answers every request it gets with the path it saw, and notes
// the request in the file $SEEN: what reaches a worker.
const staticApp = `import os
def app(environ, start_response):
    with open(os.environ["SEEN"], "a") as f:
        f.write("%s %s%s\n" % (environ["REQUEST_METHOD"], environ["SCRIPT_NAME"], environ["PATH_INFO"]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("app saw " + environ["PATH_INFO"]).encode()]
`

// staticSecret is in a file outside the static directory, which no answer
// may ever carry.
const staticSecret = "TOPSECRET-4d1f"

// staticSite is a site's directory: the app, its static files under
// static/, and a secret beside them.
type staticSite struct {
	dir, static, seen string
	small, big        []byte // static/4k.bin, static/big.bin
}

// newStaticSite makes the site: in static/, css/app.css with br and gz
// siblings, a hashed name, files of 4 KiB and 3 MiB, dotfiles, a symlink
// inside (relative) and three that point out (relative, absolute, and
// absolute to a file inside), a FIFO and, as root, a device node.
func newStaticSite(t *testing.T) *staticSite {
	t.Helper()
	return newStaticSiteIn(t, t.TempDir())
}

// newStaticSiteIn makes the site in dir.
func newStaticSiteIn(t *testing.T, dir string) *staticSite {
	t.Helper()
	s := &staticSite{dir: dir, static: filepath.Join(dir, "static"), seen: filepath.Join(dir, "seen.log")}
	s.small, s.big = randomBytes(t, 4096), randomBytes(t, 3<<20)
	files := map[string][]byte{
		"app.py":                           []byte(staticApp),
		"outside/secret.txt":               []byte(staticSecret),
		"static/css/app.css":               []byte("body { color: navy }\n"),
		"static/css/app.css.br":            []byte("BROTLI-BYTES"),
		"static/css/app.css.gz":            []byte("GZIP-BYTES"),
		"static/css/.hidden.css":           []byte(staticSecret),
		"static/app.5af66c1b1797.css":      []byte("hashed\n"),
		"static/4k.bin":                    s.small,
		"static/big.bin":                   s.big,
		"static/.env":                      []byte(staticSecret),
		"static/.git/config":               []byte(staticSecret),
		"static/dir/index.html":            []byte("an index berth must not serve for dir/\n"),
		"static/%2e%2e/outside/secret.txt": []byte("a file named %2e%2e, not a parent\n"),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"static/inside.css":   "css/app.css",
		"static/escape.txt":   "../outside/secret.txt",
		"static/abs-out.txt":  filepath.Join(dir, "outside/secret.txt"),
		"static/abs-in.css":   filepath.Join(dir, "static/css/app.css"),
		"static/outside-dir":  "../outside",
		"static/css/loop.css": "loop.css",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(s.static, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// /dev/null's numbers: opening it would succeed, reading it
		// would give nothing; berth must not treat it as a file.
		if err := syscall.Mknod(filepath.Join(s.static, "null"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// config is a berth configuration serving the site, with extra inside
// the app block.
func (s *staticSite) config(python, extra string) string {
	return fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "site" {
  module  = "app:app"
  python  = %q
  chdir   = %q
  workers = 1
  env     = { SEEN = %q, PYTHONDONTWRITEBYTECODE = "1" }
%s
}
`, python, s.dir, s.seen, extra)
}

// seenLines are the requests that reached the app.
func (s *staticSite) seenLines() []string {
	b, _ := os.ReadFile(s.seen)
	return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
}

// rawClient does requests exactly as written, and never decompresses.
var rawClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// do sends a request with headers and returns the response with its body.
func do(t *testing.T, method, url string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, b
}

// TestStatic serves a static directory through the real berth binary and
// checks, with a real HTTP client, what nginx does for files: types,
// validators, 304 and 412, ranges, HEAD, precompressed siblings and
// caching; that nothing outside the directory, no dotfile, directory or
// special file is served; that no request for a file reaches the app; and
// that each static answer has its access record.
func TestStatic(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	s := newStaticSite(t)
	b := e2e.StartBerth(t, s.config(py, `
  static "/static" {
    dir     = "static"
    max_age = "1h"
  }`))
	head, _ := do(t, "HEAD", b.URL("/static/4k.bin"), nil)
	etag, lastMod := head.Header.Get("ETag"), head.Header.Get("Last-Modified")
	if !strings.HasPrefix(etag, `"`) || lastMod == "" {
		t.Fatalf("no strong ETag and Last-Modified: %q %q", etag, lastMod)
	}
	fi, _ := os.Stat(filepath.Join(s.static, "4k.bin"))
	if want := fi.ModTime().UTC().Format(http.TimeFormat); lastMod != want {
		t.Errorf("Last-Modified %q, want the file's mtime %q", lastMod, want)
	}
	before := fi.ModTime().Add(-time.Hour).UTC().Format(http.TimeFormat)
	css := "body { color: navy }\n"
	type hdrs = map[string]string
	for _, c := range []struct {
		name, method, path string
		req                hdrs
		status             int
		body               []byte // exact, when not nil
		want               hdrs   // exact values; "" for absent
	}{
		{"a stylesheet", "GET", "/static/css/app.css", nil, 200, []byte(css),
			hdrs{"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=3600", "Accept-Ranges": "bytes", "Vary": "", "Content-Encoding": ""}},
		{"brotli when accepted", "GET", "/static/css/app.css", hdrs{"Accept-Encoding": "gzip, deflate, br"}, 200, []byte("BROTLI-BYTES"),
			hdrs{"Content-Encoding": "br", "Vary": "Accept-Encoding", "Content-Type": "text/css; charset=utf-8"}},
		{"gzip when accepted", "GET", "/static/css/app.css", hdrs{"Accept-Encoding": "gzip"}, 200, []byte("GZIP-BYTES"),
			hdrs{"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}},
		{"gzip when br is refused", "GET", "/static/css/app.css", hdrs{"Accept-Encoding": "br;q=0, gzip"}, 200, []byte("GZIP-BYTES"),
			hdrs{"Content-Encoding": "gzip"}},
		{"plain when neither is accepted", "GET", "/static/css/app.css", hdrs{"Accept-Encoding": "identity"}, 200, []byte(css),
			hdrs{"Content-Encoding": ""}},
		{"plain when there is no sibling", "GET", "/static/4k.bin", hdrs{"Accept-Encoding": "br, gzip"}, 200, s.small,
			hdrs{"Content-Encoding": "", "Vary": "Accept-Encoding", "Content-Type": "application/octet-stream"}},
		{"a hashed name is immutable", "GET", "/static/app.5af66c1b1797.css", nil, 200, []byte("hashed\n"),
			hdrs{"Cache-Control": "public, max-age=31536000, immutable"}},
		{"a symlink inside", "GET", "/static/inside.css", nil, 200, []byte(css), nil},
		{"a file named %2e%2e", "GET", "/static/%252e%252e/outside/secret.txt", nil, 200, []byte("a file named %2e%2e, not a parent\n"), nil},
		{"HEAD", "HEAD", "/static/4k.bin", nil, 200, []byte{}, hdrs{"Content-Length": "4096", "ETag": etag}},
		{"HEAD of a large file", "HEAD", "/static/big.bin", nil, 200, []byte{}, hdrs{"Content-Length": fmt.Sprint(3 << 20)}},
		{"a large file (sendfile)", "GET", "/static/big.bin", nil, 200, s.big, hdrs{"Content-Length": fmt.Sprint(3 << 20)}},
		{"a range", "GET", "/static/4k.bin", hdrs{"Range": "bytes=10-19"}, 206, s.small[10:20], hdrs{"Content-Range": "bytes 10-19/4096"}},
		{"a suffix range", "GET", "/static/4k.bin", hdrs{"Range": "bytes=-5"}, 206, s.small[4091:], hdrs{"Content-Range": "bytes 4091-4095/4096"}},
		{"a range of a large file", "GET", "/static/big.bin", hdrs{"Range": "bytes=100000-2199999"}, 206, s.big[100000:2200000], hdrs{"Content-Range": fmt.Sprintf("bytes 100000-2199999/%d", 3<<20)}},
		{"a range past the end", "GET", "/static/4k.bin", hdrs{"Range": "bytes=5000-"}, 416, nil, hdrs{"Content-Range": "bytes */4096"}},
		{"several ranges: the whole file", "GET", "/static/4k.bin", hdrs{"Range": "bytes=0-1,5-6"}, 200, s.small, hdrs{"Content-Range": ""}},
		{"If-Range with the ETag", "GET", "/static/4k.bin", hdrs{"Range": "bytes=0-9", "If-Range": etag}, 206, s.small[:10], nil},
		{"If-Range with the date", "GET", "/static/4k.bin", hdrs{"Range": "bytes=0-9", "If-Range": lastMod}, 206, s.small[:10], nil},
		{"If-Range with another ETag", "GET", "/static/4k.bin", hdrs{"Range": "bytes=0-9", "If-Range": `"other"`}, 200, s.small, nil},
		{"If-Range with an older date", "GET", "/static/4k.bin", hdrs{"Range": "bytes=0-9", "If-Range": before}, 200, s.small, nil},
		{"If-None-Match: 304", "GET", "/static/4k.bin", hdrs{"If-None-Match": etag}, 304, []byte{}, hdrs{"ETag": etag, "Cache-Control": "public, max-age=3600"}},
		{"If-None-Match, weak: 304", "GET", "/static/4k.bin", hdrs{"If-None-Match": `"x", W/` + etag}, 304, []byte{}, nil},
		{"If-None-Match, HEAD: 304", "HEAD", "/static/4k.bin", hdrs{"If-None-Match": etag}, 304, []byte{}, nil},
		{"If-None-Match, another: 200", "GET", "/static/4k.bin", hdrs{"If-None-Match": `"other"`}, 200, s.small, nil},
		{"If-Modified-Since: 304", "GET", "/static/4k.bin", hdrs{"If-Modified-Since": lastMod}, 304, []byte{}, hdrs{"ETag": etag}},
		{"If-Modified-Since, older: 200", "GET", "/static/4k.bin", hdrs{"If-Modified-Since": before}, 200, s.small, nil},
		{"If-None-Match wins over If-Modified-Since", "GET", "/static/4k.bin", hdrs{"If-None-Match": `"other"`, "If-Modified-Since": lastMod}, 200, s.small, nil},
		{"If-Match, another: 412", "GET", "/static/4k.bin", hdrs{"If-Match": `"other"`}, 412, nil, nil},
		{"If-Match, weak: 412", "GET", "/static/4k.bin", hdrs{"If-Match": "W/" + etag}, 412, nil, nil},
		{"If-Match: 200", "GET", "/static/4k.bin", hdrs{"If-Match": etag}, 200, s.small, nil},
		{"If-Unmodified-Since, older: 412", "GET", "/static/4k.bin", hdrs{"If-Unmodified-Since": before}, 412, nil, nil},
		{"POST", "POST", "/static/4k.bin", nil, 405, nil, hdrs{"Allow": "GET, HEAD"}},
	} {
		resp, body := do(t, c.method, b.URL(c.path), c.req)
		if resp.StatusCode != c.status || (c.body != nil && !bytes.Equal(body, c.body)) {
			t.Errorf("%s: %s %s %v = %d, %d bytes %.40q; want %d, %d bytes %.40q", c.name, c.method, c.path, c.req, resp.StatusCode, len(body), body, c.status, len(c.body), c.body)
		}
		for k, v := range c.want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", c.name, k, got, v)
			}
		}
	}
	t.Run("refused", func(t *testing.T) { staticRefused(t, b, s) })
	t.Run("pipelined", func(t *testing.T) { staticPipelined(t, b, s) })

	// The app is there, and saw none of the above but what left /static.
	if code, body := b.Get("/hello"); code != 200 || body != "app saw /hello" {
		t.Fatalf("the app: %d %q", code, body)
	}
	for _, l := range s.seenLines() {
		if strings.HasPrefix(l, "GET_/static") || strings.HasPrefix(l, "HEAD_/static") || strings.HasPrefix(l, "POST_/static") {
			t.Errorf("a request for a static file reached the app: %s", l)
		}
	}
	if err := b.WaitFor(`GET /static/css/app\.css listener=http proto=HTTP/1.1 status=200 bytes=21 .*remote=127\.0\.0\.1`, 5*time.Second); err != nil {
		t.Errorf("no access record for a static file: %v", err)
	}
	if err := b.WaitFor(fmt.Sprintf(`GET /static/big\.bin listener=http proto=HTTP/1.1 status=200 bytes=%d `, 3<<20), 5*time.Second); err != nil {
		t.Errorf("no access record for a large static file: %v", err)
	}
}

// staticRefused: paths that leave the directory, however encoded, dotfiles,
// directories and special files are never served; refused outright
// (400), or 403 or 404, or, where the path, once decoded and its dot
// segments removed, is no longer under /static, routed to the app as any
// such path is. The secret never shows.
func staticRefused(t *testing.T, b *e2e.Instance, s *staticSite) {
	paths := []string{
		"/static/../outside/secret.txt",
		"/static/../../outside/secret.txt",
		"/static/%2e%2e/outside/secret.txt",
		"/static/%2E%2E/%2E%2E/outside/secret.txt",
		"/static/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
		"/static/..%2F..%2Foutside/secret.txt",
		"/static/css/..%2f..%2f..%2foutside/secret.txt",
		"/static/.%2e/.%2e/outside/secret.txt",
		"/static/%252e%252e/%252e%252e/outside/secret.txt",
		"/static/%c0%ae%c0%ae/outside/secret.txt",
		"/static/%c0ae/outside/secret.txt",
		"/static/..%5c..%5coutside%5csecret.txt",
		"/static/..\\..\\outside\\secret.txt",
		"/static//" + strings.TrimPrefix(s.dir, "/") + "/outside/secret.txt",
		"/static/" + s.dir + "/outside/secret.txt",
		"/static/escape.txt",
		"/static/abs-out.txt",
		"/static/abs-in.css", // absolute: refused, wherever it points
		"/static/outside-dir/secret.txt",
		"/static/css/loop.css",
		"/static/.env",
		"/static/%2eenv",
		"/static/.git/config",
		"/static/css/.hidden.css",
		"/static/css/./.hidden.css",
		"/static/css/",
		"/static/css",
		"/static/dir/",
		"/static/",
		"/static",
		"/static/css/app.css/",
		"/static/css/app.css%00.png",
		"/static/fifo",
		"/static/null",
		"http://localhost/static/../outside/secret.txt",
	}
	for _, p := range paths {
		done := make(chan string, 1)
		go func() {
			done <- b.Raw("GET "+p+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 10*time.Second)
		}()
		var resp string
		select {
		case resp = <-done:
		case <-time.After(15 * time.Second):
			t.Fatalf("GET %s: no answer in 15 s", p)
		}
		code := e2e.StatusOf(resp)
		toApp := strings.Contains(resp, "\r\n\r\napp saw /") && !strings.Contains(resp, "app saw /static")
		if strings.Contains(resp, staticSecret) || !(slices.Contains([]int{400, 403, 404}, code) || code == 200 && toApp) {
			t.Errorf("GET %s = %.200q, want 400, 403 or 404 (or the app's 200 for a path outside /static), and never the secret", p, resp)
		}
	}
}

// staticPipelined: answers of each kind one after the other on one
// connection, written in one go, arrive whole and in order.
func staticPipelined(t *testing.T, b *e2e.Instance, s *staticSite) {
	c, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	reqs := []struct{ method, path, extra string }{
		{"GET", "/static/big.bin", ""},
		{"HEAD", "/static/big.bin", ""},
		{"GET", "/static/4k.bin", "Range: bytes=1-2\r\n"},
		{"GET", "/static/nope", ""},
		{"GET", "/static/big.bin", "Range: bytes=-1048577\r\n"},
		{"GET", "/static/4k.bin", "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"},
		{"GET", "/static/css/app.css", ""},
	}
	var all strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&all, "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", r.method, r.path, r.extra)
	}
	if _, err := io.WriteString(c, all.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	want := []struct {
		status int
		body   []byte
	}{{200, s.big}, {200, nil}, {206, s.small[1:3]}, {404, []byte("not found\n")}, {206, s.big[len(s.big)-1048577:]}, {304, nil}, {200, []byte("body { color: navy }\n")}}
	for i, r := range reqs {
		resp, body := e2e.ReadResponse(t, br, r.method)
		if resp.StatusCode != want[i].status || !bytes.Equal([]byte(body), want[i].body) && want[i].body != nil {
			t.Errorf("pipelined %s %s %q = %d, %d bytes; want %d, %d bytes", r.method, r.path, r.extra, resp.StatusCode, len(body), want[i].status, len(want[i].body))
		}
	}
}

// TestStaticBigFile sends a 1 GiB file (sparse, with a marker every 64
// MiB) and checks every byte arrives in place while berth's resident
// memory stays flat: the file goes from the page cache to the socket.
func TestStaticBigFile(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("sends 1 GiB through loopback; skipped with -short")
	}
	const size, step = 1 << 30, 64 << 20
	s := newStaticSite(t)
	f, err := os.Create(filepath.Join(s.static, "1g.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += step {
		if _, err := f.WriteAt([]byte(fmt.Sprintf("@%d@", off)), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	b := e2e.StartBerth(t, s.config(e2e.SystemPython(t), `
  static "/static" {
    dir = "static"
  }`))
	do(t, "GET", b.URL("/static/big.bin"), nil) // warm up: buffers berth keeps anyway
	base := rssOf(b.Cmd.Process.Pid)
	peak := watchRSS(b.Cmd.Process.Pid)
	resp, err := rawClient.Get(b.URL("/static/1g.bin"))
	if err != nil {
		peak.finish()
		t.Fatal(err)
	}
	n, bad := int64(0), 0
	buf := make([]byte, 1<<20)
	for {
		m, err := io.ReadFull(resp.Body, buf)
		for off := n - n%step; off < n+int64(m); off += step {
			if off >= n {
				marker := []byte(fmt.Sprintf("@%d@", off))
				if !bytes.HasPrefix(buf[off-n:m], marker) {
					bad++
				}
			}
		}
		n += int64(m)
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	top, _ := peak.finish()
	t.Logf("1 GiB sent: berth's RSS %d MiB before, at most %d MiB during", base>>20, top>>20)
	if n != size || bad > 0 {
		t.Errorf("got %d bytes, %d markers out of place; want %d bytes", n, bad, size)
	}
	if top-base > 16<<20 {
		t.Errorf("berth's RSS grew by %d MiB while sending 1 GiB; want under 16 MiB", (top-base)>>20)
	}
}

// TestStaticChanging: a file truncated while berth sends it ends the
// response short and the connection with it (the client sees fewer bytes
// than Content-Length), and berth serves on; a file removed while being
// sent is sent whole.
func TestStaticChanging(t *testing.T) {
	t.Parallel()
	s := newStaticSite(t)
	const size = 256 << 20
	for _, name := range []string{"shrinks.bin", "vanishes.bin"} {
		f, err := os.Create(filepath.Join(s.static, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil { // sparse: nothing to write
			t.Fatal(err)
		}
		f.Close()
	}
	b := e2e.StartBerth(t, s.config(e2e.SystemPython(t), `
  static "/static" {
    dir = "static"
  }`))
	get := func(name string, change func()) (declared, got int64, err error) {
		resp, err := rawClient.Get(b.URL("/static/" + name))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first, _ := io.CopyN(io.Discard, resp.Body, 1<<20)
		change()
		done := make(chan struct{})
		var rest int64
		go func() {
			rest, err = io.Copy(io.Discard, resp.Body)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the response neither ended nor closed within 20 s of the change", name)
		}
		return resp.ContentLength, first + rest, err
	}
	declared, got, err := get("shrinks.bin", func() {
		if err := os.Truncate(filepath.Join(s.static, "shrinks.bin"), 2<<20); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("truncated to 2 MiB after the client read 1 MiB: got %d of %d bytes, then %v", got, declared, err)
	if declared != size || got >= size || err == nil {
		t.Errorf("a file truncated during a send: Content-Length %d, got %d bytes and %v; want fewer bytes than declared and an unexpected EOF", declared, got, err)
	}
	declared, got, err = get("vanishes.bin", func() {
		if err := os.Remove(filepath.Join(s.static, "vanishes.bin")); err != nil {
			t.Fatal(err)
		}
	})
	if declared != size || got != size || err != nil {
		t.Errorf("a file removed during a send: Content-Length %d, got %d bytes and %v; want it whole", declared, got, err)
	}
	if resp, body := do(t, "GET", b.URL("/static/4k.bin"), nil); resp.StatusCode != 200 || !bytes.Equal(body, s.small) {
		t.Errorf("after a file changed during a send: %d, %d bytes", resp.StatusCode, len(body))
	}
	if strings.Contains(b.Logs.String(), "panic") {
		t.Errorf("berth panicked:\n%s", b.Logs)
	}
}

// TestStaticConfig: `berth check` names a static directory that does not
// exist at its file:line; a static block at the app's root with
// fallthrough serves what it holds and passes the rest to the app; a
// reload adds, changes and removes static mounts, and one naming a
// missing directory changes nothing.
func TestStaticConfig(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	s := newStaticSite(t)
	for name, body := range map[string]string{"public/robots.txt": "User-agent: *\n", "media/a.txt": "media a\n", "files/b.txt": "files b\n"} {
		os.MkdirAll(filepath.Join(s.dir, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	missing := s.config(py, "  static \"/static\" {\n    dir = \"no-such-dir\"\n  }")
	path := filepath.Join(t.TempDir(), "berth.hcl")
	os.WriteFile(path, []byte(missing), 0o644)
	var out, errb strings.Builder
	if code := run([]string{"check", path}, &out, &errb); code != 1 || !strings.Contains(errb.String()+out.String(), "berth.hcl:12:11: error: Static directory not found") {
		t.Errorf("berth check with a missing static dir = %d:\n%s%s", code, out.String(), errb.String())
	}

	b := e2e.StartBerth(t, s.config(py, `
  static "/" {
    dir         = "public"
    fallthrough = true
  }
  static "/media" {
    dir = "media"
  }`))
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/robots.txt", "User-agent: *\n"},
		{"GET", "/missing", "app saw /missing"},
		{"GET", "/.env", "app saw /.env"},
		{"POST", "/robots.txt", "app saw /robots.txt"},
		{"GET", "/media/a.txt", "media a\n"},
		{"GET", "/media/missing", "not found\n"}, // no fallthrough there
	} {
		if _, body := do(t, c.method, b.URL(c.path), nil); string(body) != c.want {
			t.Errorf("%s %s = %q, want %q", c.method, c.path, body, c.want)
		}
	}

	os.WriteFile(b.Config, []byte(s.config(py, `
  static "/files" {
    dir     = "files"
    max_age = "2h"
  }`)), 0o644)
	if code, out := b.Reload(); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	for _, c := range []struct{ path, want, cache string }{
		{"/files/b.txt", "files b\n", "public, max-age=7200"},
		{"/media/a.txt", "app saw /media/a.txt", ""},
		{"/robots.txt", "app saw /robots.txt", ""},
	} {
		if resp, body := do(t, "GET", b.URL(c.path), nil); string(body) != c.want || resp.Header.Get("Cache-Control") != c.cache {
			t.Errorf("after the reload, GET %s = %q (Cache-Control %q), want %q (%q)", c.path, body, resp.Header.Get("Cache-Control"), c.want, c.cache)
		}
	}
	os.WriteFile(b.Config, []byte(missing), 0o644)
	if code, out := b.Reload(); code != 1 || !strings.Contains(out, "berth.hcl:12:11: app \"site\": static directory") {
		t.Errorf("reload with a missing static dir = %d %s; want 1 and the diagnostic", code, out)
	}
	if _, body := do(t, "GET", b.URL("/files/b.txt"), nil); string(body) != "files b\n" {
		t.Errorf("after a failed reload, GET /files/b.txt = %q", body)
	}
}
