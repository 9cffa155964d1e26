package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

func needDjango(t *testing.T, python string) {
	t.Helper()
	if err := exec.Command(python, "-c", "import django").Run(); err != nil {
		t.Skipf("%s cannot import django: Debian's python3-django is not installed: apt-get install python3-django", python)
	}
}

// TestDjangoExample serves examples/django, a Django project, and checks
// routing, JSON, the CSRF check of a form, uploads, a FileResponse and a
// StreamingHttpResponse through berth.
func TestDjangoExample(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	needDjango(t, py)
	wd, _ := os.Getwd()
	dir := filepath.Join(wd, "../../examples/django")

	// The example's own configuration is valid as shipped.
	if out, err := exec.Command(e2e.Bin, "check", filepath.Join(dir, "berth.hcl")).CombinedOutput(); err != nil {
		t.Errorf("berth check examples/django/berth.hcl: %v\n%s", err, out)
	}

	// As examples/django/berth.hcl, on a free port; no .pyc files in the source tree.
	b := e2e.StartBerth(t, fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "notes" {
  module  = "notes.wsgi:application"
  python  = %q
  chdir   = %q
  workers = 2
  env     = { DJANGO_SETTINGS_MODULE = "notes.settings", PYTHONDONTWRITEBYTECODE = "1" }
}
`, py, dir))

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client := &http.Client{Jar: jar, Timeout: 60 * time.Second, CheckRedirect: noRedirect}

	t.Run("routing", func(t *testing.T) {
		for _, tc := range []struct {
			path     string
			status   int
			ctype    string // exact, when set
			body     string // exact, when set
			contains string
			json     string // the body decodes to the same value as this, when set
			location string
		}{
			{path: "/", status: 200, ctype: "text/plain; charset=utf-8", contains: "a Django example served by berth"},
			{path: "/hello/berth/", status: 200, ctype: "text/plain; charset=utf-8", body: "Hello, berth!\n"},
			{path: "/hello/caf%C3%A9%20au%20lait/", status: 200, body: "Hello, café au lait!\n"},
			{path: "/notes/", status: 200, ctype: "application/json", json: `{"notes": [
				{"id": 1, "title": "Buy tea", "body": "Assam, loose leaf."},
				{"id": 2, "title": "Call Ada", "body": "About the analytical engine."}]}`},
			{path: "/notes/2/", status: 200, ctype: "application/json", json: `{"id": 2, "title": "Call Ada", "body": "About the analytical engine."}`},
			{path: "/notes/9/", status: 404, ctype: "application/json", json: `{"error": "no such note", "id": 9}`},
			{path: "/notes", status: 301, location: "/notes/"}, // CommonMiddleware's APPEND_SLASH
			{path: "/notes/abc/", status: 404, contains: "Not Found"},
			{path: "/no/such/page/", status: 404, contains: "Not Found"},
			{path: "/static/%2E%2E/settings.py", status: 404},
			{path: "/stream/100001/", status: 400, body: "at most 100000 lines\n"},
		} {
			resp, body := djangoDo(t, client, "GET", b.URL(tc.path), nil, "")
			if resp == nil {
				continue
			}
			if resp.StatusCode != tc.status {
				t.Errorf("GET %s: status %d, want %d; body %.300q", tc.path, resp.StatusCode, tc.status, body)
				continue
			}
			if ct := resp.Header.Get("Content-Type"); tc.ctype != "" && ct != tc.ctype {
				t.Errorf("GET %s: Content-Type %q, want %q", tc.path, ct, tc.ctype)
			}
			if tc.body != "" && string(body) != tc.body {
				t.Errorf("GET %s: body %q, want %q", tc.path, body, tc.body)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("GET %s: body %.300q does not contain %q", tc.path, body, tc.contains)
			}
			if tc.json != "" {
				var got, want any
				if err := json.Unmarshal([]byte(tc.json), &want); err != nil {
					t.Fatalf("bad test JSON %q: %v", tc.json, err)
				}
				if err := json.Unmarshal(body, &got); err != nil {
					t.Errorf("GET %s: body %q is not JSON: %v", tc.path, body, err)
				} else if !reflect.DeepEqual(got, want) {
					t.Errorf("GET %s: JSON %v, want %v", tc.path, got, want)
				}
			}
			if loc := resp.Header.Get("Location"); loc != tc.location {
				t.Errorf("GET %s: Location %q, want %q", tc.path, loc, tc.location)
			}
		}
	})

	t.Run("csrf", func(t *testing.T) {
		formURL := b.URL("/notes/new/")
		resp, body := djangoDo(t, client, "GET", formURL, nil, "")
		if resp == nil || resp.StatusCode != 200 {
			t.Fatalf("GET /notes/new/: %v %q", resp, body)
		}
		token := e2e.RegexpFind(string(body), `name="csrfmiddlewaretoken" value="([^"]+)"`)
		if token == "" {
			t.Fatalf("GET /notes/new/: no csrfmiddlewaretoken in the form:\n%s", body)
		}
		u, _ := url.Parse(formURL)
		var cookie string
		for _, c := range jar.Cookies(u) {
			if c.Name == "csrftoken" {
				cookie = c.Value
			}
		}
		if cookie == "" {
			t.Fatalf("GET /notes/new/ set no csrftoken cookie (Set-Cookie: %q)", resp.Header.Values("Set-Cookie"))
		}
		// A client that keeps no cookies: it has the form's token but not the cookie.
		noJar := &http.Client{Timeout: 60 * time.Second, CheckRedirect: noRedirect}

		for _, tc := range []struct {
			name     string
			client   *http.Client
			form     url.Values
			header   string // X-CSRFToken
			status   int
			contains string
		}{
			{"no token", client, url.Values{"title": {"tea"}}, "", 403, "CSRF verification failed"},
			{"wrong token", client, url.Values{"title": {"tea"}, "csrfmiddlewaretoken": {strings.Repeat("x", 64)}}, "", 403, "CSRF verification failed"},
			{"token without cookie", noJar, url.Values{"title": {"tea"}, "csrfmiddlewaretoken": {token}}, "", 403, "CSRF verification failed"},
			{"form token", client, url.Values{"title": {"<b>tea</b>"}, "body": {"green"}, "csrfmiddlewaretoken": {token}}, "", 200, "Saved note “&lt;b&gt;tea&lt;/b&gt;”."},
			{"header token", client, url.Values{"title": {"cups"}}, cookie, 200, "Saved note “cups”."},
			{"no title", client, url.Values{"csrfmiddlewaretoken": {token}}, "", 400, "A note needs a title."},
		} {
			hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			if tc.header != "" {
				hdr.Set("X-CSRFToken", tc.header)
			}
			resp, body := djangoDo(t, tc.client, "POST", formURL, hdr, tc.form.Encode())
			if resp == nil {
				continue
			}
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.contains) {
				t.Errorf("%s: POST /notes/new/ = %d %.500q; want %d containing %q", tc.name, resp.StatusCode, body, tc.status, tc.contains)
			}
		}
		// Django logs the refusals; unconfigured logging sends them to berth's log.
		if err := b.WaitFor(`Forbidden \(CSRF token missing or incorrect\.\): /notes/new/`, 5*time.Second); err != nil {
			t.Errorf("Django's CSRF warning did not reach berth's log: %v", err)
		}
	})

	t.Run("upload", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			size   int
			stored string // Django keeps uploads up to 2.5 MB in memory
		}{
			{"small.txt", 1000, "memory"},
			{"one-byte", 1, "memory"},
			{"big.bin", 3<<20 + 12345, "disk"},
		} {
			data := make([]byte, tc.size)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			var form bytes.Buffer
			mw := multipart.NewWriter(&form)
			mw.WriteField("comment", "from "+tc.name)
			fw, _ := mw.CreateFormFile("file", tc.name)
			fw.Write(data)
			mw.Close()
			resp, body := djangoDo(t, client, "POST", b.URL("/upload/"), http.Header{"Content-Type": {mw.FormDataContentType()}}, form.String())
			if resp == nil {
				continue
			}
			sum := sha256.Sum256(data)
			want := map[string]any{
				"name":          tc.name,
				"content_type":  "application/octet-stream",
				"size":          float64(tc.size),
				"reported_size": float64(tc.size),
				"sha256":        hex.EncodeToString(sum[:]),
				"stored":        tc.stored,
				"comment":       "from " + tc.name,
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); resp.StatusCode != 200 || err != nil {
				t.Errorf("POST /upload/ %s (%d bytes): %d %.300q (%v)", tc.name, tc.size, resp.StatusCode, body, err)
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("POST /upload/ %s (%d bytes):\n got %v\nwant %v", tc.name, tc.size, got, want)
			}
		}
		resp, body := djangoDo(t, client, "POST", b.URL("/upload/"), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "comment=nofile")
		if resp != nil && (resp.StatusCode != 400 || !strings.Contains(string(body), "no file field")) {
			t.Errorf("POST /upload/ without a file = %d %q, want 400", resp.StatusCode, body)
		}
	})

	t.Run("static", func(t *testing.T) {
		for _, tc := range []struct{ name, ctype string }{
			{"notes.css", "text/css"},
			{"logo.png", "image/png"}, // over FileResponse's 4 KiB block: several chunks
		} {
			want, err := os.ReadFile(filepath.Join(dir, "notes/static", tc.name))
			if err != nil {
				t.Fatal(err)
			}
			resp, body := djangoDo(t, client, "GET", b.URL("/static/"+tc.name), nil, "")
			if resp == nil {
				continue
			}
			if resp.StatusCode != 200 || !bytes.Equal(body, want) {
				t.Errorf("GET /static/%s = %d, %d bytes (sha256 %x); want 200 and the file's %d bytes (sha256 %x)",
					tc.name, resp.StatusCode, len(body), sha256.Sum256(body), len(want), sha256.Sum256(want))
			}
			if ct := resp.Header.Get("Content-Type"); ct != tc.ctype {
				t.Errorf("GET /static/%s: Content-Type %q, want %q", tc.name, ct, tc.ctype)
			}
			if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(want)) {
				t.Errorf("GET /static/%s: Content-Length %q, want %d", tc.name, cl, len(want))
			}
			if cd, wantCD := resp.Header.Get("Content-Disposition"), fmt.Sprintf("inline; filename=%q", tc.name); cd != wantCD {
				t.Errorf("GET /static/%s: Content-Disposition %q, want %q", tc.name, cd, wantCD)
			}
			// HEAD: the same headers, and not one byte of body.
			raw := b.Raw("HEAD /static/"+tc.name+" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 10*time.Second)
			head, rest, ok := strings.Cut(raw, "\r\n\r\n")
			if !ok || e2e.StatusOf(raw) != 200 || rest != "" {
				t.Errorf("HEAD /static/%s: want 200 and no body, got %.300q", tc.name, raw)
				continue
			}
			hresp, _ := e2e.ReadResponse(t, bufio.NewReader(strings.NewReader(head+"\r\n\r\n")), "HEAD")
			if cl, ct := hresp.Header.Get("Content-Length"), hresp.Header.Get("Content-Type"); cl != fmt.Sprint(len(want)) || ct != tc.ctype {
				t.Errorf("HEAD /static/%s: Content-Length %q, Content-Type %q; want %d, %q", tc.name, cl, ct, len(want), tc.ctype)
			}
		}
	})

	t.Run("stream", func(t *testing.T) {
		for _, count := range []int{0, 3, 3000} {
			var want strings.Builder
			for i := 0; i < count; i++ {
				fmt.Fprintf(&want, "line %06d %s\n", i, strings.Repeat(".", 1000))
			}
			want.WriteString("end\n")
			path := fmt.Sprintf("/stream/%d/", count)
			resp, body := djangoDo(t, client, "GET", b.URL(path), nil, "")
			if resp == nil {
				continue
			}
			if resp.StatusCode != 200 || string(body) != want.String() {
				got := strings.TrimSuffix(string(body), "\n")
				last := got[strings.LastIndexByte(got, '\n')+1:]
				t.Errorf("GET %s = %d, %d bytes in %d lines, the last %.80q; want 200 and %d bytes in %d lines, the last \"end\"",
					path, resp.StatusCode, len(body), strings.Count(string(body), "\n"), last, want.Len(), count+1)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", path, ct)
			}
		}
	})

	// No request above should have raised in the app.
	if m := regexp.MustCompile(`(?m)^.*Traceback \(most recent call last\).*$`).FindString(b.Logs.String()); m != "" {
		t.Errorf("a Python traceback in berth's log: %s", m)
	}
}

// djangoDo sends one request and reads the whole response. On a transport
// error it reports it and returns a nil response.
func djangoDo(t *testing.T, c *http.Client, method, u string, hdr http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, u, err)
		return nil, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: reading the body: %v", method, u, err)
		return nil, nil
	}
	return resp, b
}
