package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// TestNginxStatic runs Debian's nginx on what `berth nginx` renders for a
// site with a static block: nginx serves the directory itself, with
// berth's caching, its .gz siblings and no dotfiles, and passes the rest
// to berth's app.
func TestNginxStatic(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	nginx := needNginx(t)
	dir := sharedTempDir(t)
	s := newStaticSiteIn(t, dir)
	b := e2e.StartBerth(t, fmt.Sprintf(`
listener "http" {
  address      = "unix:%s"
  socket_group = "www-data"
}
app "site" {
  module  = "app:app"
  python  = %q
  chdir   = %q
  workers = 1
  env     = { SEEN = %q, PYTHONDONTWRITEBYTECODE = "1" }
  static "/static" {
    dir     = "static"
    max_age = "1h"
  }
}
`, filepath.Join(dir, "berth.sock"), py, dir, s.seen))
	cert, key, pool := selfSigned(t, dir)
	https := e2e.FreePort(t)
	startRenderedNginx(t, nginx, dir, "--tls-cert", cert, "--tls-key", key, "--listen", fmt.Sprintf("127.0.0.1:%d", https), "--redirect", "", b.Config)
	client := clientFrom(t, "127.0.0.1", pool)
	client.Transport.(*http.Transport).DisableCompression = true
	site := fmt.Sprintf("https://localhost:%d", https)
	for _, c := range []struct {
		path, accept string
		status       int
		body         []byte
		cache, coded string
	}{
		{"/static/css/app.css", "", 200, []byte("body { color: navy }\n"), "public, max-age=3600", ""},
		{"/static/css/app.css", "gzip", 200, []byte("GZIP-BYTES"), "public, max-age=3600", "gzip"},
		{"/static/app.5af66c1b1797.css", "", 200, []byte("hashed\n"), "public, max-age=31536000, immutable", ""},
		{"/static/big.bin", "", 200, s.big, "public, max-age=3600", ""},
		{"/static/.env", "", 404, nil, "", ""},
		{"/static/css/.hidden.css", "", 404, nil, "", ""},
		{"/hello", "", 200, []byte("app saw /hello"), "", ""},
	} {
		req, _ := http.NewRequest("GET", site+c.path, nil)
		if c.accept != "" {
			req.Header.Set("Accept-Encoding", c.accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || c.body != nil && !bytes.Equal(body, c.body) ||
			resp.Header.Get("Cache-Control") != c.cache || resp.Header.Get("Content-Encoding") != c.coded {
			t.Errorf("GET %s (Accept-Encoding %q) through nginx = %d, %d bytes, Cache-Control %q, Content-Encoding %q; want %d, %d bytes, %q, %q",
				c.path, c.accept, resp.StatusCode, len(body), resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Encoding"), c.status, len(c.body), c.cache, c.coded)
		}
	}
	if seen := strings.Join(s.seenLines(), " "); seen != "GET_/hello" {
		t.Errorf("requests that reached the app: %s; want GET /hello alone", seen)
	}
	if b.WaitFor(`GET /hello listener=http proto=HTTP/1.1 status=200`, 5*time.Second) != nil || strings.Contains(b.Logs.String(), "GET /static/") {
		t.Errorf("berth's access records: want GET /hello and no static file (nginx serves those):\n%s", b.Logs)
	}
	if t.Failed() {
		t.Logf("nginx's error log:\n%s", readFile(filepath.Join(dir, "error.log")))
	}
}
