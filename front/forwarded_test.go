package front

import (
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/units"
	"github.com/berthd/berth/wire"
)

// environOf builds the environ of a GET with headers (name: value lines)
// from peer, its origin judged by trust, and returns it as a map.
func environOf(t *testing.T, peer net.Addr, trust units.Trust, headers ...string) map[string]string {
	t.Helper()
	var req fasthttp.Request
	req.SetRequestURI("/p")
	req.Header.SetHost("berth.internal")
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Add(name, value)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, peer, nil)
	e := new(environ)
	if status, _ := e.decodePath(&ctx.Request.Header); status != 0 {
		t.Fatal(status)
	}
	if status, msg := e.build(&ctx, "", 0, []byte("id"), trust); status != 0 {
		t.Fatal(status, msg)
	}
	frame := e.enc.Finish(0)
	pairs, _, ok := wire.DecodeRequest(frame[wire.HeaderSize:])
	if !ok {
		t.Fatal("environ does not decode")
	}
	env := map[string]string{}
	for _, p := range pairs {
		env[p[0]] = p[1]
	}
	return env
}

func trustOf(t *testing.T, entries ...string) units.Trust {
	var tr units.Trust
	for _, e := range entries {
		if err := units.ParseTrustEntry(&tr, e); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// TestForwarded checks what the app is told of the client, by the
// connection alone or, from a trusted peer, by its forwarding headers.
func TestForwarded(t *testing.T) {
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	far := &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 5555}
	unixPeer := &net.UnixAddr{Net: "unix"}
	lb := trustOf(t, "10.0.0.0/8", "127.0.0.1")
	def := units.DefaultTrust()
	// want: environ keys and values; "-" means the key must be absent.
	cases := []struct {
		name    string
		peer    net.Addr
		trust   units.Trust
		headers []string
		want    map[string]string
	}{
		{"no headers", loop, def, nil, map[string]string{
			"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "wsgi.url_scheme": "http", "HTTPS": "-",
			"HTTP_HOST": "berth.internal", "SERVER_NAME": "berth.internal", "SERVER_PORT": "80"}},
		{"nginx over TLS", loop, def, []string{"X-Forwarded-For: 198.51.100.7", "X-Forwarded-Proto: https"}, map[string]string{
			"REMOTE_ADDR": "198.51.100.7", "REMOTE_PORT": "-", "wsgi.url_scheme": "https", "HTTPS": "on",
			"SERVER_PORT": "443", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}},
		{"unix peer", unixPeer, def, []string{"X-Forwarded-For: 198.51.100.7", "X-Forwarded-Proto: HTTPS"}, map[string]string{
			"REMOTE_ADDR": "198.51.100.7", "wsgi.url_scheme": "https"}},
		{"unix peer, unix not trusted", unixPeer, trustOf(t, "127.0.0.1"), []string{"X-Forwarded-For: 198.51.100.7", "X-Forwarded-Proto: https"}, map[string]string{
			"REMOTE_ADDR": "", "wsgi.url_scheme": "http"}},
		{"untrusted peer", far, def, []string{"X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example", "Forwarded: for=1.2.3.4;proto=https"}, map[string]string{
			"REMOTE_ADDR": "203.0.113.9", "REMOTE_PORT": "5555", "wsgi.url_scheme": "http", "HTTPS": "-",
			"HTTP_HOST": "berth.internal", "HTTP_X_FORWARDED_PROTO": "https"}},
		{"trust nobody", loop, units.Trust{}, []string{"X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https"}, map[string]string{
			"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http"}},
		{"chain: right-most untrusted", loop, lb, []string{"X-Forwarded-For: 6.6.6.6, 198.51.100.7, 10.1.1.1", "X-Forwarded-Proto: https"}, map[string]string{
			"REMOTE_ADDR": "198.51.100.7"}},
		{"chain over two lines", loop, lb, []string{"X-Forwarded-For: 6.6.6.6, 198.51.100.7", "X-Forwarded-For: 10.1.1.1"}, map[string]string{
			"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 198.51.100.7, 10.1.1.1"}},
		{"all trusted: left-most", loop, lb, []string{"X-Forwarded-For: 10.9.9.9, 10.1.1.1"}, map[string]string{
			"REMOTE_ADDR": "10.9.9.9"}},
		{"malformed entry stops the walk", loop, lb, []string{"X-Forwarded-For: 198.51.100.7, bogus, 10.1.1.1"}, map[string]string{
			"REMOTE_ADDR": "10.1.1.1"}},
		{"malformed only", loop, def, []string{"X-Forwarded-For: not an address", "X-Forwarded-Proto: gopher", "X-Forwarded-Host: a b", "X-Forwarded-Port: 99999"}, map[string]string{
			"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "wsgi.url_scheme": "http", "HTTP_HOST": "berth.internal", "SERVER_PORT": "80"}},
		{"IPv6 and ports", loop, def, []string{"X-Forwarded-For: [2001:db8::1]:4711"}, map[string]string{
			"REMOTE_ADDR": "2001:db8::1"}},
		{"host and port", loop, def, []string{"X-Forwarded-Host: shop.example:8443", "X-Forwarded-Proto: https"}, map[string]string{
			"HTTP_HOST": "shop.example:8443", "SERVER_NAME": "shop.example", "SERVER_PORT": "8443"}},
		{"port alone", loop, def, []string{"X-Forwarded-Port: 8443", "X-Forwarded-Proto: https"}, map[string]string{
			"HTTP_HOST": "berth.internal", "SERVER_NAME": "berth.internal", "SERVER_PORT": "8443"}},
		{"right-most proto", loop, def, []string{"X-Forwarded-Proto: http, https"}, map[string]string{
			"wsgi.url_scheme": "https"}},
		{"Forwarded", loop, def, []string{`Forwarded: for="[2001:db8::7]:4711";proto=https;host=shop.example`}, map[string]string{
			"REMOTE_ADDR": "2001:db8::7", "REMOTE_PORT": "4711", "wsgi.url_scheme": "https", "HTTPS": "on",
			"HTTP_HOST": "shop.example", "SERVER_NAME": "shop.example", "SERVER_PORT": "443"}},
		{"Forwarded chain", loop, lb, []string{"Forwarded: for=6.6.6.6;proto=http, For=198.51.100.7;Proto=https, for=10.1.1.1;proto=http"}, map[string]string{
			"REMOTE_ADDR": "198.51.100.7", "wsgi.url_scheme": "https"}},
		{"Forwarded unknown", loop, def, []string{"Forwarded: for=unknown;proto=https"}, map[string]string{
			"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "https"}},
		{"Forwarded malformed", loop, def, []string{"Forwarded: for"}, map[string]string{
			"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http"}},
		{"X-Forwarded-* before Forwarded", loop, def, []string{"Forwarded: for=192.0.2.1;proto=http", "X-Forwarded-For: 198.51.100.7", "X-Forwarded-Proto: https"}, map[string]string{
			"REMOTE_ADDR": "198.51.100.7", "wsgi.url_scheme": "https"}},
		{"mapped peer", &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}, def, []string{"X-Forwarded-Proto: https"}, map[string]string{
			"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "https"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := environOf(t, tc.peer, tc.trust, tc.headers...)
			for k, want := range tc.want {
				got, ok := env[k]
				switch {
				case want == "-" && ok:
					t.Errorf("%s = %q, want it absent", k, got)
				case want != "-" && got != want:
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestRemoteAddrText checks REMOTE_ADDR is written as net.IP.String writes
// the peer's address (IPv4 dotted, also when mapped into IPv6).
func TestRemoteAddrText(t *testing.T) {
	for _, ip := range []net.IP{
		net.IPv4(127, 0, 0, 1), net.IP{10, 1, 2, 3}, net.ParseIP("::1"),
		net.ParseIP("2001:db8::8:1"), net.ParseIP("::ffff:1.2.3.4"),
	} {
		env := environOf(t, &net.TCPAddr{IP: ip, Port: 1}, units.Trust{})
		if got := env["REMOTE_ADDR"]; got != ip.String() {
			t.Errorf("REMOTE_ADDR of %v = %q, want %q", []byte(ip), got, ip.String())
		}
	}
}

func TestHeaderLength(t *testing.T) {
	v2 := append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"), make([]byte, 12)...)
	cases := []struct {
		in   string
		want int
		bad  bool
	}{
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n", 32, false},
		{"PROXY TCP4 1.2.3.4", 0, false},
		{"PRO", 0, false},
		{"\r\n\r\n", 0, false},
		{string(v2[:15]), 0, false},
		{string(v2[:20]), 0, false},
		{string(v2) + "GET", 28, false},
		{"GET / HTTP/1.1\r\n", 0, true},
		{"PROXY " + strings.Repeat("x", 120), 0, true},
		{"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", 0, true},
	}
	for _, tc := range cases {
		n, err := headerLength([]byte(tc.in))
		if n != tc.want || (err != nil) != tc.bad {
			t.Errorf("headerLength(%q) = %d, %v; want %d, bad %v", tc.in, n, err, tc.want, tc.bad)
		}
	}
}
