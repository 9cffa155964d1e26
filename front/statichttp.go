package front

import (
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// The request headers a static file's answer depends on, read as RFC 9110
// says (sections 12.5.3, 13 and 14). Each function takes the raw field
// value and never fails: a value that does not parse is treated as absent,
// as nginx and Go's net/http do, except where the RFC asks otherwise.

// acceptsCoding reports whether Accept-Encoding accepts coding: named, or
// covered by "*", with a q-value above 0 (an explicit "coding;q=0" refuses
// it even when "*" is accepted). "x-gzip" is gzip (RFC 9110 section
// 8.4.1.3).
func acceptsCoding(field []byte, coding string) bool {
	named, star := -1.0, -1.0
	for len(field) > 0 {
		var elem []byte
		elem, field, _ = bytes.Cut(field, []byte(","))
		name, params, _ := bytes.Cut(elem, []byte(";"))
		name = bytes.TrimSpace(name)
		q := qValue(params)
		switch {
		case equalFold(name, coding), coding == "gzip" && equalFold(name, "x-gzip"):
			named = max(named, q)
		case string(name) == "*":
			star = q
		}
	}
	if named >= 0 {
		return named > 0
	}
	return star > 0
}

// qValue is the weight in an element's parameters (";q=0.5"), 1 when none
// is given and 0 when it does not parse.
func qValue(params []byte) float64 {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte(";"))
		k, v, ok := bytes.Cut(bytes.TrimSpace(p), []byte("="))
		if !ok || !equalFold(bytes.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}

// etagMatch reports whether a list of entity tags (If-Match,
// If-None-Match, If-Range), over one or more header lines, holds etag
// (always a strong tag here) or is "*". Weak comparison ignores a "W/"
// prefix; strong comparison takes no weak tag (RFC 9110 section 8.8.3.2).
func etagMatch(lines [][]byte, etag []byte, weak bool) bool {
	for _, line := range lines {
		for len(line) > 0 {
			var tag []byte
			tag, line, _ = bytes.Cut(line, []byte(","))
			tag = bytes.TrimSpace(tag)
			if string(tag) == "*" {
				return true
			}
			if w, ok := bytes.CutPrefix(tag, []byte("W/")); ok {
				if !weak {
					continue
				}
				tag = w
			}
			if bytes.Equal(tag, etag) {
				return true
			}
		}
	}
	return false
}

// appendETag appends a file's entity tag: its modification time in
// nanoseconds and its size, in hex, and the coding of a precompressed
// sibling. It is strong as nginx's is (which uses seconds): a change of
// content that keeps both the size and the nanosecond mtime goes unseen.
func appendETag(dst []byte, mtime time.Time, size int64, coding string) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, mtime.UnixNano(), 16)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, size, 16)
	if coding != "" {
		dst = append(dst, '-')
		dst = append(dst, coding...)
	}
	return append(dst, '"')
}

// notAfter reports whether a file modified at mtime is not newer than the
// HTTP date in field (If-Modified-Since, If-Unmodified-Since): dates have
// whole seconds. ok is false when field is not a date.
func notAfter(mtime time.Time, field []byte) (notNewer, ok bool) {
	t, err := fasthttp.ParseHTTPDate(field)
	if err != nil {
		return false, false
	}
	return !mtime.Truncate(time.Second).After(t), true
}

// byteRange is the part of a file a Range header asks for.
type byteRange struct {
	start, n int64
}

// Results of parseRange.
const (
	rangeWhole         = iota // no range, or one berth ignores: send it all
	rangePart                 // one satisfiable range
	rangeUnsatisfiable        // 416
)

// parseRange reads a Range field for a file of size bytes. One range is
// served as such; several get the whole file (RFC 9110 section 14.2 lets
// a server ignore Range, and a 200 costs the client less than berth's
// multipart framing would cost berth); a field that does not parse, or
// another unit than bytes, is ignored. A range starting past the end, or
// a suffix of 0 bytes, cannot be satisfied.
func parseRange(field []byte, size int64) (byteRange, int) {
	unit, spec, ok := bytes.Cut(field, []byte("="))
	if !ok || !equalFold(bytes.TrimSpace(unit), "bytes") || bytes.IndexByte(spec, ',') >= 0 {
		return byteRange{}, rangeWhole
	}
	first, last, ok := bytes.Cut(bytes.TrimSpace(spec), []byte("-"))
	if !ok {
		return byteRange{}, rangeWhole
	}
	if len(first) == 0 { // the last N bytes
		n, ok := digits(last)
		switch {
		case !ok:
			return byteRange{}, rangeWhole
		case n == 0 || size == 0:
			return byteRange{}, rangeUnsatisfiable
		}
		n = min(n, size)
		return byteRange{start: size - n, n: n}, rangePart
	}
	start, ok := digits(first)
	if !ok {
		return byteRange{}, rangeWhole
	}
	end := size - 1
	if len(last) > 0 {
		e, ok := digits(last)
		if !ok || e < start {
			return byteRange{}, rangeWhole
		}
		end = min(e, size-1)
	}
	if start >= size {
		return byteRange{}, rangeUnsatisfiable
	}
	return byteRange{start: start, n: end - start + 1}, rangePart
}

// digits parses a non-empty run of decimal digits that fits an int64.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hashedName reports whether a file's name carries a hash of its content,
// so that its content never changes under that name: its last or
// second-last dot-separated part (the one before the extension) is 12 to
// 64 lower-case hex digits, at least one of them a letter. Django's
// ManifestStaticFilesStorage (and WhiteNoise's) name files so
// (base.5af66c1b1797.css, 12 digits of an MD5; LICENSE.5af66c1b1797 when
// there is no extension), as does webpack's [name].[contenthash].js (20);
// the letter keeps out dates and serial numbers
// (report.20240101093000.pdf), which name content that may be replaced.
func hashedName(name []byte) bool {
	if i := bytes.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	dot := bytes.LastIndexByte(name, '.')
	if dot <= 0 {
		return false
	}
	if isHash(name[dot+1:]) {
		return true // no extension
	}
	stem := name[:dot]
	prev := bytes.LastIndexByte(stem, '.')
	return prev > 0 && isHash(stem[prev+1:])
}

// isHash: 12 to 64 lower-case hex digits, one of them at least a letter.
func isHash(h []byte) bool {
	if len(h) < 12 || len(h) > 64 {
		return false
	}
	letter := false
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'f':
			letter = true
		case c < '0' || c > '9':
			return false
		}
	}
	return letter
}
