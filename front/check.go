package front

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// checkRequest refuses, before a request is routed, what fasthttp accepts
// but berth must not pass on to an app: a target too long (414), an HTTP
// version berth does not speak (505; fasthttp serves "HTTP/2.0" as 1.1),
// a fragment in the target (400: a client never sends one, RFC 9112
// section 3.2), the asterisk target of any method but OPTIONS (400), and
// an authority-form target (CONNECT's: 400, berth is no proxy).
func checkRequest(h *fasthttp.RequestHeader, maxURI int) (int, string) {
	uri := h.RequestURI()
	switch proto := h.Protocol(); {
	case len(uri) > maxURI:
		return fasthttp.StatusRequestURITooLong, "request URI too long"
	case string(proto) != "HTTP/1.1" && string(proto) != "HTTP/1.0":
		return fasthttp.StatusHTTPVersionNotSupported, "HTTP version not supported: berth speaks HTTP/1.1 and HTTP/1.0"
	case bytes.IndexByte(uri, '#') >= 0:
		return fasthttp.StatusBadRequest, "a fragment (#) in the request target"
	case string(uri) == "*" && !h.IsOptions():
		return fasthttp.StatusBadRequest, "the target * is for OPTIONS only"
	case len(uri) > 0 && uri[0] != '/' && uri[0] != '*' && targetAuthority(uri) == nil:
		// An authority-form target (CONNECT host:port): berth is no proxy.
		return fasthttp.StatusBadRequest, "the request target is neither a path nor an absolute URI"
	}
	return 0, ""
}

// checkFields reads the raw header block, which fasthttp folds and
// completes: it refuses a field name that is not a token (400, RFC 9112
// section 5.1), what RFC 9112 section 6.3 calls a smuggling risk
// (Content-Length together with Transfer-Encoding: 400; any transfer
// coding but "chunked": 501) and a repeated Content-Type (400: a proxy
// that reads the first would disagree with an app that reads the last),
// and keeps the Connection and Trailer fields as the client sent them
// (fasthttp invents "Connection: close" for HTTP/1.0, lowers its value,
// and makes up a Trailer field from a chunked body's trailers).
func (e *environ) checkFields(raw []byte) (int, string) {
	var cl, te, ct int
	var coding []byte
	e.connection, e.trailer = e.connection[:0], e.trailer[:0]
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			continue // obs-fold: fasthttp joins it to the field before
		}
		c := bytes.IndexByte(line, ':')
		if c < 0 {
			continue
		}
		value := bytes.TrimSpace(line[c+1:])
		name := line[:c]
		if !isToken(name) {
			return fasthttp.StatusBadRequest, "a field name that is not a token"
		}
		switch {
		case equalFold(name, "content-length"):
			cl++
		case equalFold(name, "transfer-encoding"):
			te++
			coding = value
		case equalFold(name, "content-type"):
			ct++
		case equalFold(name, "connection"):
			e.connection = append(e.connection, value)
		case equalFold(name, "trailer"):
			e.trailer = append(e.trailer, value)
		}
	}
	switch {
	case te > 0 && cl > 0:
		return fasthttp.StatusBadRequest, "both Transfer-Encoding and Content-Length"
	case te > 1 || (te == 1 && !equalFold(coding, "chunked")):
		return fasthttp.StatusNotImplemented, "transfer coding not implemented: only chunked is"
	case ct > 1:
		return fasthttp.StatusBadRequest, "more than one Content-Type"
	}
	return 0, ""
}

// isToken reports whether b is an RFC 9110 token, as a field name must
// be: fasthttp takes "X Y: v" as a field named "X Y".
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte("\"(),/:;<=>?@[\\]{}"), c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// targetAuthority is the host of an absolute-form target
// ("http://admin.example/x"), which RFC 9112 section 3.2.2 says wins over
// the Host header: for routing, HTTP_HOST and SERVER_NAME. It is nil for
// any other form.
func targetAuthority(uri []byte) []byte {
	i := bytes.Index(uri, []byte("://"))
	if i <= 0 || bytes.IndexByte(uri[:i], '/') >= 0 {
		return nil
	}
	rest := uri[i+3:]
	if j := bytes.IndexAny(rest, "/?"); j >= 0 {
		rest = rest[:j]
	}
	if k := bytes.LastIndexByte(rest, '@'); k >= 0 {
		rest = rest[k+1:] // userinfo is no part of the host
	}
	if len(rest) == 0 {
		return nil
	}
	return rest
}

// requestHost is the host a request is for: the absolute-form target's
// authority, else the Host header.
func requestHost(h *fasthttp.RequestHeader) []byte {
	if a := targetAuthority(h.RequestURI()); len(a) > 0 {
		return a
	}
	return h.Host()
}

// routePath is the path a request is routed by: "OPTIONS *" goes to the
// listener's root app (its PATH_INFO stays "*").
func routePath(path []byte) []byte {
	if len(path) == 1 && path[0] == '*' {
		return []byte("/")
	}
	return path
}
