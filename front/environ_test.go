package front

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/units"
)

func TestSplitTarget(t *testing.T) {
	for _, tc := range []struct{ in, path, query string }{
		{"/", "/", ""},
		{"/a/b?x=1&y", "/a/b", "x=1&y"},
		{"/a?", "/a", ""},
		{"/a?b?c", "/a", "b?c"},
		{"*", "*", ""},
		{"http://example.com/p?q=1", "/p", "q=1"},
		{"http://example.com?q", "", "q"},
		{"http://example.com", "", ""},
	} {
		p, q := splitTarget([]byte(tc.in))
		if string(p) != tc.path || string(q) != tc.query {
			t.Errorf("splitTarget(%q) = %q, %q; want %q, %q", tc.in, p, q, tc.path, tc.query)
		}
	}
}

func TestPercentDecode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/plain", "/plain"},
		{"/a%20b", "/a b"},
		{"/caf%C3%A9", "/caf\xc3\xa9"},
		{"/%2F%2f", "///"},
		{"/bad%zz", "/bad%zz"},
		{"/end%2", "/end%2"},
		{"/end%", "/end%"},
		{"/a+b", "/a+b"},
		{"%41%42", "AB"},
	} {
		if got := string(percentDecode(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("percentDecode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitHostPort(t *testing.T) {
	for _, tc := range []struct{ in, name, port string }{
		{"example.com", "example.com", ""},
		{"example.com:8080", "example.com", "8080"},
		{"[::1]:8000", "::1", "8000"},
		{"[::1]", "::1", ""},
		{"127.0.0.1:80", "127.0.0.1", "80"},
	} {
		n, p := splitHostPort([]byte(tc.in))
		if string(n) != tc.name || string(p) != tc.port {
			t.Errorf("splitHostPort(%q) = %q, %q; want %q, %q", tc.in, n, p, tc.name, tc.port)
		}
	}
}

func TestCheckFields(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want int
	}{
		{"Host: x\r\n", 0},
		{"Host: x\r\nContent-Length: 3\r\n", 0},
		{"Host: x\r\nTransfer-Encoding: chunked\r\n", 0},
		{"Host: x\r\nTransfer-Encoding: CHUNKED\r\n", 0},
		{"Transfer-Encoding: chunked\r\ncontent-LENGTH : 3\r\n", 400},
		{"Content-Length: 0\r\nTransfer-Encoding: identity\r\n", 400},
		{"Transfer-Encoding: gzip, chunked\r\n", 501},
		{"Transfer-Encoding: identity\r\n", 501},
		{"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501},
		{"X-Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 0},
		{"Content-Type: a/b\r\nContent-Type: c/d\r\n", 400},
		{"Content-Type: a/b\r\nX-Content-Type: c/d\r\n", 0},
	} {
		if got, _ := new(environ).checkFields([]byte(tc.raw)); got != tc.want {
			t.Errorf("checkFields(%q) = %d, want %d", tc.raw, got, tc.want)
		}
	}
}

func TestRemoveDots(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/a/b", "/a/b", true},
		{"/a/./b", "/a/b", true},
		{"/a/.", "/a/", true},
		{"/.", "/", true},
		{"/a/b/..", "/a/", true},
		{"/a/..", "/", true},
		{"/api/../admin", "/admin", true},
		{"/api/x/../../admin/", "/admin/", true},
		{"/a/.hidden/..x", "/a/.hidden/..x", true},
		{"/a//./b", "/a//b", true},
		{"/..", "", false},
		{"/a/../..", "", false},
		{"/../a", "", false},
		{"*", "*", true},
		{"", "", true},
	} {
		got, ok := removeDots([]byte(tc.in))
		if ok != tc.ok || (ok && string(got) != tc.want) {
			t.Errorf("removeDots(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// BenchmarkBuild measures the environ of a plain GET. -benchmem shows
// what it allocates per request: nothing, since header entries are reused
// and REMOTE_ADDR is appended rather than formatted into a new string.
func BenchmarkBuild(b *testing.B) {
	var req fasthttp.Request
	req.SetRequestURI("/hello?name=x")
	req.Header.SetHost("example.com:8080")
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	e := new(environ)
	id := []byte("0123456789abcdef")
	trust := units.DefaultTrust()
	b.ReportAllocs()
	for b.Loop() {
		if status, _ := e.decodePath(&ctx.Request.Header); status != 0 {
			b.Fatal(status)
		}
		if status, _ := e.build(&ctx, "", 0, id, trust); status != 0 {
			b.Fatal(status)
		}
		e.enc.Finish(0)
	}
}
