package front

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/units"
	"github.com/berthd/berth/wire"
)

// Software is SERVER_SOFTWARE, as CGI and every peer set it; cmd/berth
// adds the version.
var Software = "berth"

// environ builds the PEP 3333 environ of a request into a request frame.
// It is pooled: its buffers grow to fit and are reused, so a request
// costs no allocation here.
type environ struct {
	enc     wire.RequestEncoder
	path    []byte   // percent-decoded PATH_INFO
	names   []byte   // HTTP_* names, back to back
	headers []header // one per distinct header name
	num     []byte
	addr    []byte    // REMOTE_ADDR
	body    []byte    // a request body held in memory
	bodies  bodySlots // the request body's route (readBody)
	fwd     fwd       // the forwarding headers among headers
	origin  origin    // who sent the request, and how
	// connection and trailer are those fields' values as the client sent
	// them (checkFields).
	connection, trailer [][]byte
	// route and wait are the request's app and its wait for a worker,
	// for its series and access record (metrics.go).
	route *route
	wait  time.Duration
}

type header struct {
	name   [2]int // offsets into names
	values [][]byte
}

// decodePath percent-decodes the request's path into e.path, which routes
// the request and becomes SCRIPT_NAME and PATH_INFO, and removes its dot
// segments: "/api/../admin" is "/admin", to the router and to the app
// alike, so a mount cannot be left by a path that seems to be under it.
// A path that climbs above the root is refused. A non-zero status means
// the request is refused.
func (e *environ) decodePath(h *fasthttp.RequestHeader) (int, string) {
	path, _ := splitTarget(h.RequestURI())
	e.path = percentDecode(e.path[:0], path)
	if bytes.IndexByte(e.path, 0) >= 0 {
		return fasthttp.StatusBadRequest, "NUL in request path"
	}
	var ok bool
	if e.path, ok = removeDots(e.path); !ok {
		return fasthttp.StatusBadRequest, "request path climbs above the root"
	}
	return 0, ""
}

// removeDots removes the "." and ".." segments of an absolute path in
// place (RFC 3986 section 5.2.4). It reports false for a path whose ".."
// would climb above the root.
func removeDots(path []byte) ([]byte, bool) {
	if len(path) == 0 || path[0] != '/' || !bytes.Contains(path, []byte("/.")) {
		return path, true
	}
	out := path[:0] // never longer than what has been read
	rest := path[1:]
	for {
		seg, tail, more := bytes.Cut(rest, []byte("/"))
		switch string(seg) {
		case ".":
		case "..":
			i := bytes.LastIndexByte(out, '/')
			if i < 0 {
				return nil, false
			}
			out = out[:i]
		default:
			out = append(out, '/')
			out = append(out, seg...)
		}
		if !more {
			if string(seg) == "." || string(seg) == ".." {
				out = append(out, '/') // "/a/b/.." is "/a/"
			}
			break
		}
		rest = tail
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return out, true
}

// build encodes ctx's request for an app mounted at mount (a prefix of
// e.path, see decodePath), its origin judged by trust. A non-zero status
// means the request is refused with that status and message.
func (e *environ) build(ctx *fasthttp.RequestCtx, mount string, bodyLen int64, requestID []byte, trust units.Trust) (int, string) {
	h := &ctx.Request.Header
	uri := h.RequestURI()
	_, query := splitTarget(uri)

	enc := &e.enc
	enc.Reset()
	enc.Add("REQUEST_METHOD", h.Method())
	enc.AddString("SCRIPT_NAME", mount)
	enc.Add("PATH_INFO", e.path[len(mount):])
	enc.Add("QUERY_STRING", query)
	enc.Add("REQUEST_URI", uri)
	enc.Add("SERVER_PROTOCOL", h.Protocol())
	enc.AddString("SERVER_SOFTWARE", Software)
	enc.Add("REQUEST_ID", requestID)
	if ct := h.ContentType(); len(ct) > 0 {
		enc.Add("CONTENT_TYPE", ct)
	}
	if bodyLen > 0 || h.ContentLength() >= 0 {
		e.num = strconv.AppendInt(e.num[:0], bodyLen, 10)
		enc.Add("CONTENT_LENGTH", e.num)
	}
	if status, msg := e.collectHeaders(h); status != 0 {
		return status, msg
	}
	e.origin.resolve(ctx.RemoteAddr(), trust, &e.fwd)
	if a := targetAuthority(uri); e.origin.host == nil && validHost(a) {
		e.origin.host = a
	}
	e.remote(ctx)
	e.addHeaders()
	return 0, ""
}

// remote adds what e.origin says: the client's address and port, the
// scheme, and the server's name and port.
func (e *environ) remote(ctx *fasthttp.RequestCtx) {
	o := &e.origin
	if o.addr.IsValid() {
		e.addr = o.addr.AppendTo(e.addr[:0])
		e.enc.Add("REMOTE_ADDR", e.addr)
	} else {
		e.addr = e.addr[:0]
		e.enc.AddString("REMOTE_ADDR", "")
	}
	if o.port >= 0 {
		e.num = strconv.AppendInt(e.num[:0], int64(o.port), 10)
		e.enc.Add("REMOTE_PORT", e.num)
	}
	if o.https {
		e.enc.AddString("wsgi.url_scheme", "https")
		e.enc.AddString("HTTPS", "on")
	} else {
		e.enc.AddString("wsgi.url_scheme", "http")
	}
	e.server(ctx)
}

// server sets SERVER_NAME from the host the request is for (forwarded,
// in an absolute-form target, or the Host header; else the address the
// client connected to), and SERVER_PORT to the port the request came in
// on: a trusted proxy's (X-Forwarded-Port, or the port or the scheme's
// default of the host it forwarded), else the listener's own.
func (e *environ) server(ctx *fasthttp.RequestCtx) {
	host := e.origin.host
	if host == nil {
		host = ctx.Request.Header.Host()
	}
	name, port := splitHostPort(host)
	local, _ := ctx.LocalAddr().(*net.TCPAddr)
	if local != nil && local.Port == 0 {
		local = nil // no connection (fasthttp's stand-in address)
	}
	switch {
	case len(name) > 0:
		e.enc.Add("SERVER_NAME", name)
	case local != nil:
		e.enc.AddString("SERVER_NAME", local.IP.String())
	default:
		e.enc.AddString("SERVER_NAME", "localhost")
	}
	switch {
	case e.origin.sport != nil:
		port = e.origin.sport
	case e.origin.proxied && len(port) > 0:
	case e.origin.proxied && e.origin.https:
		port = []byte("443")
	case local != nil:
		e.num = strconv.AppendInt(e.num[:0], int64(local.Port), 10)
		port = e.num
	case len(port) > 0:
	default:
		port = []byte("80")
	}
	e.enc.Add("SERVER_PORT", port)
}

// collectHeaders gathers the request's headers by their HTTP_* names,
// values of repeated ones together, and notes the forwarding headers
// (e.fwd). Headers whose names hold an underscore are dropped: in the
// environ "X_Forwarded_For" and "X-Forwarded-For" would be the same key,
// and a client must not be able to pose as the proxy that sets the
// latter.
func (e *environ) collectHeaders(h *fasthttp.RequestHeader) (int, string) {
	e.names = e.names[:0]
	e.headers = e.headers[:0]
	for k, v := range h.All() {
		switch {
		case equalFold(k, "content-type"), equalFold(k, "content-length"), equalFold(k, "transfer-encoding"):
			continue
		case equalFold(k, "connection"), equalFold(k, "trailer"):
			continue // as sent, below (checkFields)
		case bytes.IndexByte(k, '_') >= 0:
			continue
		case bytes.IndexByte(v, 0) >= 0:
			return fasthttp.StatusBadRequest, "NUL in a header value"
		}
		e.header(k, v)
	}
	for _, v := range e.connection {
		e.header([]byte("Connection"), v)
	}
	for _, v := range e.trailer {
		e.header([]byte("Trailer"), v)
	}
	e.fwd = fwd{}
	for i := range e.headers {
		hd := &e.headers[i]
		switch string(e.names[hd.name[0]:hd.name[1]]) {
		case "HTTP_X_FORWARDED_FOR":
			e.fwd.forFor = hd.values
		case "HTTP_X_FORWARDED_PROTO":
			e.fwd.proto = hd.values
		case "HTTP_X_FORWARDED_HOST":
			e.fwd.host = hd.values
		case "HTTP_X_FORWARDED_PORT":
			e.fwd.port = hd.values
		case "HTTP_FORWARDED":
			e.fwd.forwarded = hd.values
		}
	}
	return 0, ""
}

// header adds a header's value under its HTTP_* name, beside the values
// of its name that came before.
func (e *environ) header(k, v []byte) {
	start := len(e.names)
	e.names = append(e.names, "HTTP_"...)
	for _, c := range k {
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		e.names = append(e.names, c)
	}
	name := e.names[start:]
	for i := range e.headers {
		hd := &e.headers[i]
		if bytes.Equal(e.names[hd.name[0]:hd.name[1]], name) {
			hd.values = append(hd.values, v)
			e.names = e.names[:start]
			return
		}
	}
	// An entry of an earlier request is reused with its values' array:
	// one allocation less per header and request.
	n := len(e.headers)
	if n == cap(e.headers) {
		e.headers = append(e.headers, header{})
	}
	e.headers = e.headers[:n+1]
	e.headers[n].name = [2]int{start, len(e.names)}
	e.headers[n].values = append(e.headers[n].values[:0], v)
}

// addHeaders adds one HTTP_* entry per header name, repeated headers
// joined with ", " (cookies with "; ") as PEP 3333 asks; HTTP_HOST is the
// forwarded host when a trusted proxy gave one.
func (e *environ) addHeaders() {
	hostSet := false
	for _, hd := range e.headers {
		name := e.names[hd.name[0]:hd.name[1]]
		if e.origin.host != nil && string(name) == "HTTP_HOST" {
			e.enc.AddKey(name, e.origin.host)
			hostSet = true
			continue
		}
		e.enc.AddKey(name, hd.values[0])
		sep := ", "
		if string(name) == "HTTP_COOKIE" {
			sep = "; "
		}
		for _, v := range hd.values[1:] {
			e.enc.AppendValue(sep, v)
		}
	}
	if !hostSet && e.origin.host != nil {
		e.enc.Add("HTTP_HOST", e.origin.host)
	}
}

// splitTarget splits a request target into its path and query. An
// absolute-form target ("http://host/p?q") yields its path.
func splitTarget(uri []byte) (path, query []byte) {
	if len(uri) > 0 && uri[0] != '/' && uri[0] != '*' {
		if i := bytes.Index(uri, []byte("://")); i >= 0 {
			rest := uri[i+3:]
			if j := bytes.IndexAny(rest, "/?"); j >= 0 {
				uri = rest[j:]
			} else {
				uri = nil
			}
		}
	}
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		return uri[:i], uri[i+1:]
	}
	return uri, nil
}

// percentDecode appends the percent-decoded src to dst. An invalid escape
// is kept as it is, as most servers do; PATH_INFO is bytes read as latin-1,
// so decoding never fails.
func percentDecode(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '%' && i+2 < len(src) {
			hi, ok1 := unhex(src[i+1])
			lo, ok2 := unhex(src[i+2])
			if ok1 && ok2 {
				dst = append(dst, hi<<4|lo)
				i += 2
				continue
			}
		}
		dst = append(dst, c)
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// splitHostPort splits a Host header value; "[::1]:80" gives "::1", "80".
func splitHostPort(host []byte) (name, port []byte) {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i > 0 {
			name, rest := host[1:i], host[i+1:]
			if len(rest) > 1 && rest[0] == ':' {
				return name, rest[1:]
			}
			return name, nil
		}
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		return host[:i], host[i+1:]
	}
	return host, nil
}

// appendIP appends ip as net.IP.String writes it (IPv4 in dotted form,
// also when mapped into IPv6), without the string net.IP.String allocates
// for every request.
func appendIP(b []byte, ip net.IP) []byte {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return append(b, ip.String()...)
	}
	return a.Unmap().AppendTo(b)
}
