package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Head is a decoded response start: status, headers and the first part of
// the body. Its slices point into the frame payload.
type Head struct {
	Status int
	// Reason is the reason phrase the app gave ("OK" in "200 OK").
	Reason  []byte
	Headers []Header
	Body    []byte
}

// Header is one response header as the app sent it.
type Header struct {
	Name, Value []byte
}

// ErrBadResponse is a response the app produced that cannot go on the wire
// as HTTP: a bad status line, a header name that is not a token, a value
// with control characters. The request gets a 500.
var ErrBadResponse = errors.New("invalid response from app")

// ParseHead decodes a response payload into h, reusing h.Headers. It
// validates everything an HTTP client would otherwise have to distrust, so
// an app cannot split a response or inject headers.
func ParseHead(p []byte, h *Head) error {
	h.Headers = h.Headers[:0]
	if len(p) < 4 {
		return fmt.Errorf("%w: payload of %d bytes", ErrBadResponse, len(p))
	}
	n := binary.LittleEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4) {
		return fmt.Errorf("%w: head length %d beyond payload", ErrBadResponse, n)
	}
	head := p[4 : 4+n]
	h.Body = p[4+n:]

	i := indexNUL(head)
	status := head
	if i >= 0 {
		status, head = head[:i], head[i+1:]
	} else {
		head = nil
	}
	if len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return fmt.Errorf("%w: status %q is not \"NNN reason\"", ErrBadResponse, status)
	}
	code := 0
	for _, c := range status[:3] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: status %q is not \"NNN reason\"", ErrBadResponse, status)
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return fmt.Errorf("%w: status code %d", ErrBadResponse, code)
	}
	h.Status = code
	h.Reason = nil
	if len(status) > 4 {
		h.Reason = status[4:]
		if !validValue(h.Reason) {
			return fmt.Errorf("%w: control character in status %q", ErrBadResponse, status)
		}
	}
	for i >= 0 && len(head) > 0 {
		j := indexNUL(head)
		if j < 0 {
			return fmt.Errorf("%w: header %q has no value", ErrBadResponse, head)
		}
		name := head[:j]
		head = head[j+1:]
		value := head
		i = indexNUL(head)
		if i >= 0 {
			value, head = head[:i], head[i+1:]
		}
		if !validName(name) {
			return fmt.Errorf("%w: header name %q", ErrBadResponse, name)
		}
		if !validValue(value) {
			return fmt.Errorf("%w: header %s has a control character in its value %q", ErrBadResponse, name, value)
		}
		h.Headers = append(h.Headers, Header{Name: name, Value: value})
	}
	return nil
}

// tokenChars are the characters RFC 9110 allows in a header name.
var tokenChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// validValue allows visible characters, space, tab and obs-text; no
// control characters, so no CR/LF response splitting.
func validValue(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
