package front

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"

	"github.com/berthd/berth/units"
)

// origin is who sent a request and how it reached the first proxy, as the
// app is told in REMOTE_ADDR, REMOTE_PORT, wsgi.url_scheme, HTTPS,
// HTTP_HOST, SERVER_NAME and SERVER_PORT. It is the connection's own peer
// unless that peer is trusted (trusted_proxies: by default loopback and
// Unix-socket peers, as Gunicorn trusts loopback), whose X-Forwarded-For,
// -Proto, -Host and -Port, or RFC 7239 Forwarded, then say. From anyone
// else those headers reach the app as sent and change nothing. A value
// that does not parse is ignored, never an error: a proxy's mistake must
// not fail the request.
type origin struct {
	addr  netip.Addr
	port  int    // the client's port, or -1 when not known
	https bool   // wsgi.url_scheme is "https"
	host  []byte // the forwarded Host, or nil (the request's own)
	sport []byte // the forwarded SERVER_PORT, or nil
	// proxied: a trusted proxy forwarded the request, so the listener's
	// port is not the one the client used.
	proxied bool
}

// fwd are a request's forwarding headers, each a list of its header
// lines' values (as environ.headers keeps them), nil when absent.
type fwd struct {
	forFor, proto, host, port, forwarded [][]byte
}

// any reports whether the request has any forwarding header.
func (f *fwd) any() bool {
	return f.forFor != nil || f.proto != nil || f.host != nil || f.port != nil || f.forwarded != nil
}

// resolve sets o from the connection's peer and, when the peer is
// trusted, from f.
func (o *origin) resolve(peer net.Addr, trust units.Trust, f *fwd) {
	*o = origin{port: -1}
	trusted := false
	switch a := peer.(type) {
	case *net.TCPAddr:
		o.addr, _ = netip.AddrFromSlice(a.IP)
		o.addr, o.port = o.addr.Unmap(), a.Port
		trusted = o.addr.IsValid() && trust.Contains(o.addr)
	case *net.UnixAddr:
		trusted = trust.Unix
	}
	if !trusted || !f.any() {
		return
	}
	o.proxied = true
	var el element // the Forwarded element that describes the client
	if f.forwarded != nil {
		el = forwardedClient(f.forwarded, trust)
	}
	switch {
	case f.forFor != nil:
		if a, ok := forwardedFor(f.forFor, trust); ok {
			o.addr, o.port = a, -1
		}
	case el.addr.IsValid():
		o.addr, o.port = el.addr, el.port
	}
	proto := el.proto
	if f.proto != nil {
		proto = last(f.proto)
	}
	o.https = equalFold(proto, "https")
	host := el.host
	if f.host != nil {
		host = last(f.host)
	}
	if validHost(host) {
		o.host = host
	}
	if p := last(f.port); validPort(p) {
		o.sport = p
	}
}

// forwardedFor walks X-Forwarded-For from the right, past the trusted
// proxies that appended to it: the client is the right-most address not
// trusted (or the left-most one, when all are). The walk stops at an
// entry that is not an address, keeping what it found before it.
func forwardedFor(lines [][]byte, trust units.Trust) (netip.Addr, bool) {
	var client netip.Addr
	for v := range rightToLeft(lines) {
		a, _, ok := parseNode(v)
		if !ok {
			break
		}
		client = a
		if !trust.Contains(a) {
			break
		}
	}
	return client, client.IsValid()
}

// element is one element of a Forwarded header: the hop it describes.
type element struct {
	addr        netip.Addr
	port        int
	proto, host []byte
}

// maxElements bounds the Forwarded elements berth walks; a longer chain
// is cut at its left end (the hops farthest from berth).
const maxElements = 16

// forwardedClient walks Forwarded (RFC 7239) from the right, as
// forwardedFor walks X-Forwarded-For, and returns the element whose for=
// is the client: its proto= and host= are what the client used.
func forwardedClient(lines [][]byte, trust units.Trust) element {
	var els [maxElements]element
	n := 0
	for v := range rightToLeft(lines) {
		if n == maxElements {
			break
		}
		el, ok := parseElement(v)
		if !ok {
			break
		}
		els[n] = el
		n++
		if !el.addr.IsValid() || !trust.Contains(el.addr) {
			break
		}
	}
	if n == 0 {
		return element{port: -1}
	}
	return els[n-1]
}

// parseElement parses one Forwarded element: pairs such as
// `for="[2001:db8::1]:4711";proto=https;host=example.com`, separated by
// ';', names in any case, values tokens or quoted strings. A for= that is
// not an address ("unknown", an obfuscated name) leaves addr unset.
func parseElement(b []byte) (element, bool) {
	el := element{port: -1}
	for len(b) > 0 {
		var pair []byte
		pair, b, _ = bytes.Cut(b, []byte(";"))
		name, value, ok := bytes.Cut(bytes.TrimSpace(pair), []byte("="))
		if !ok {
			return el, false
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		switch {
		case equalFold(name, "for"):
			el.addr, el.port, _ = parseNode(value)
		case equalFold(name, "proto"):
			el.proto = value
		case equalFold(name, "host"):
			el.host = value
		}
	}
	return el, true
}

// parseNode parses a forwarded node: "192.0.2.1", "192.0.2.1:4711",
// "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:4711". The port is -1
// when not given.
func parseNode(b []byte) (netip.Addr, int, bool) {
	s := string(bytes.TrimSpace(b))
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), -1, true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), -1, true
		}
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), int(ap.Port()), true
	}
	return netip.Addr{}, -1, false
}

// rightToLeft yields the comma-separated entries of a header's lines,
// the last line's last entry first. Entries are not trimmed. Quoted
// commas are not special: no forwarded value that berth reads holds one.
func rightToLeft(lines [][]byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for i := len(lines) - 1; i >= 0; i-- {
			v := lines[i]
			for {
				j := bytes.LastIndexByte(v, ',')
				if !yield(v[j+1:]) || j < 0 {
					break
				}
				v = v[:j]
			}
		}
	}
}

// last is the right-most entry of a header's lines, trimmed.
func last(lines [][]byte) []byte {
	for v := range rightToLeft(lines) {
		return bytes.TrimSpace(v)
	}
	return nil
}

// validHost accepts a host name or address with an optional port, as a
// Host header carries it.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

func validPort(p []byte) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n, err := strconv.Atoi(string(p))
	return err == nil && n > 0 && n <= 65535
}
