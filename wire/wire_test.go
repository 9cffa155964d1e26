package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func frame(t Type, flags uint8, payload []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(payload))
	PutHeader(b, t, flags, len(payload))
	return append(b, payload...)
}

func response(head string, body string) []byte {
	p := binary.LittleEndian.AppendUint32(nil, uint32(len(head)))
	p = append(p, head...)
	return append(p, body...)
}

func TestReader(t *testing.T) {
	var stream []byte
	stream = append(stream, frame(TypeHello, 0, []byte("berth-wire\x001\x0042\x003.11.2"))...)
	stream = append(stream, frame(TypeBody, FlagMore, nil)...)
	big := bytes.Repeat([]byte("x"), 300_000)
	stream = append(stream, frame(TypeBody, 0, big)...)
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 4096))

	f, err := r.Next()
	if err != nil || f.Type != TypeHello {
		t.Fatalf("first frame %v %v", f, err)
	}
	h, err := ParseHello(f.Payload)
	if err != nil || h != (Hello{Version: 1, PID: 42, Python: "3.11.2"}) {
		t.Errorf("ParseHello = %+v, %v", h, err)
	}
	f, err = r.Next()
	if err != nil || f.Type != TypeBody || f.Flags != FlagMore || len(f.Payload) != 0 {
		t.Errorf("empty frame = %+v, %v", f, err)
	}
	f, err = r.Next()
	if err != nil || !bytes.Equal(f.Payload, big) || f.Flags != 0 {
		t.Errorf("big frame: %d bytes, %v", len(f.Payload), err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("at end: %v, want io.EOF", err)
	}
}

func TestReaderErrors(t *testing.T) {
	tooBig := make([]byte, HeaderSize)
	PutHeader(tooBig, TypeBody, 0, 0)
	binary.LittleEndian.PutUint32(tooBig, MaxPayload+1)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"truncated header", []byte{1, 0, 0}, io.ErrUnexpectedEOF},
		{"truncated payload", frame(TypeBody, 0, []byte("abcdef"))[:10], io.ErrUnexpectedEOF},
		{"too large", tooBig, ErrFrameTooLarge},
	} {
		_, err := NewReader(bytes.NewReader(tc.in)).Next()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseHello(t *testing.T) {
	for _, in := range []string{"", "berth-wire", "berth-wire\x002\x001\x003.12", "other\x001\x001\x00x", "berth-wire\x00x\x001\x003"} {
		if _, err := ParseHello([]byte(in)); err == nil {
			t.Errorf("ParseHello(%q) accepted", in)
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	var e RequestEncoder
	for round := 0; round < 2; round++ { // the second round reuses the buffer
		e.Reset()
		e.AddString("REQUEST_METHOD", "POST")
		e.Add("PATH_INFO", []byte("/caf\xe9"))
		e.AddKey([]byte("HTTP_X_DUP"), []byte("a"))
		e.AppendValue(", ", []byte("b"))
		e.AddString("EMPTY", "")
		body := []byte("the body")
		fr := append(append([]byte(nil), e.Finish(len(body))...), body...)

		f, err := NewReader(bytes.NewReader(fr)).Next()
		if err != nil || f.Type != TypeRequest {
			t.Fatalf("reading request frame: %+v %v", f, err)
		}
		env, gotBody, ok := DecodeRequest(f.Payload)
		want := [][2]string{{"REQUEST_METHOD", "POST"}, {"PATH_INFO", "/caf\xe9"}, {"HTTP_X_DUP", "a, b"}, {"EMPTY", ""}}
		if !ok || len(env) != len(want) || string(gotBody) != "the body" {
			t.Fatalf("DecodeRequest = %q %q %v", env, gotBody, ok)
		}
		for i := range want {
			if env[i] != want[i] {
				t.Errorf("pair %d = %q, want %q", i, env[i], want[i])
			}
		}
	}
}

func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		head    string
		status  int
		reason  string
		headers string // "name=value;..."
		err     string
	}{
		{"plain", "200 OK\x00Content-Type\x00text/plain\x00X-A\x00", 200, "OK", "Content-Type=text/plain;X-A=;", ""},
		{"no headers", "204 No Content", 204, "No Content", "", ""},
		{"no reason", "404", 404, "", "", ""},
		{"custom reason", "418 I'm a teapot", 418, "I'm a teapot", "", ""},
		{"tab in value", "200 OK\x00X-T\x00a\tb", 200, "OK", "X-T=a\tb;", ""},
		{"obs-text value", "200 OK\x00X-L\x00caf\xe9", 200, "OK", "X-L=caf\xe9;", ""},
		{"status not digits", "2x0 OK", 0, "", "", "is not"},
		{"status without space", "200OK", 0, "", "", "is not"},
		{"status too small", "099 Low", 0, "", "", "status code"},
		{"CRLF in value", "200 OK\x00X-Evil\x00a\r\nSet-Cookie: x", 0, "", "", "control character"},
		{"LF in reason", "200 OK\nX: y", 0, "", "", "control character"},
		{"space in name", "200 OK\x00Bad Name\x00v", 0, "", "", "header name"},
		{"empty name", "200 OK\x00\x00v", 0, "", "", "header name"},
		{"missing value", "200 OK\x00X-Only", 0, "", "", "has no value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Head
			err := ParseHead(response(tc.head, "body"), &h)
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrBadResponse with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var hs strings.Builder
			for _, x := range h.Headers {
				hs.WriteString(string(x.Name) + "=" + string(x.Value) + ";")
			}
			if h.Status != tc.status || string(h.Reason) != tc.reason || hs.String() != tc.headers || string(h.Body) != "body" {
				t.Errorf("got %d %q %q body %q", h.Status, h.Reason, hs.String(), h.Body)
			}
		})
	}
	var h Head
	if err := ParseHead([]byte{1, 2}, &h); err == nil {
		t.Error("short payload accepted")
	}
	if err := ParseHead([]byte{9, 0, 0, 0, '2'}, &h); err == nil {
		t.Error("head length beyond payload accepted")
	}
}

// FuzzReader feeds arbitrary bytes to the frame reader: it must never
// panic, never return a payload over MaxPayload, and stop with an error.
func FuzzReader(f *testing.F) {
	f.Add(frame(TypeResponse, 0, response("200 OK\x00A\x00b", "hi")))
	f.Add(append(frame(TypeBody, FlagMore, []byte("x")), frame(TypeBody, 0, nil)...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		total := 0
		for i := 0; ; i++ {
			fr, err := r.Next()
			if err != nil {
				break
			}
			total += HeaderSize + len(fr.Payload)
			if len(fr.Payload) > MaxPayload || total > len(in) {
				t.Fatalf("frame %d: payload %d bytes from %d bytes of input", i, len(fr.Payload), len(in))
			}
			if fr.Type == TypeResponse {
				var h Head
				_ = ParseHead(fr.Payload, &h)
			}
		}
	})
}

// FuzzParseHead: whatever the app sends, an accepted head holds no byte
// that could split an HTTP response.
func FuzzParseHead(f *testing.F) {
	f.Add(response("200 OK\x00Content-Type\x00text/plain", "body"))
	f.Add(response("500 Internal Server Error", ""))
	f.Add(response("200 OK\x00X\x00a\r\nb", ""))
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		var h Head
		if ParseHead(p, &h) != nil {
			return
		}
		if h.Status < 100 || h.Status > 999 {
			t.Fatalf("accepted status %d", h.Status)
		}
		for _, x := range h.Headers {
			if !validName(x.Name) || bytes.ContainsAny(x.Value, "\r\n\x00") {
				t.Fatalf("accepted header %q: %q", x.Name, x.Value)
			}
		}
		if bytes.ContainsAny(h.Reason, "\r\n\x00") {
			t.Fatalf("accepted reason %q", h.Reason)
		}
	})
}

// FuzzDecodeRequest: the request decoder never panics on any payload.
func FuzzDecodeRequest(f *testing.F) {
	var e RequestEncoder
	e.Reset()
	e.AddString("REQUEST_METHOD", "GET")
	f.Add(append(e.Finish(0)[HeaderSize:], []byte{}...))
	f.Add([]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, p []byte) {
		env, body, ok := DecodeRequest(p)
		if ok && len(body) > len(p) {
			t.Fatalf("body longer than payload")
		}
		_ = env
	})
}

// TestWorkerConstants: the worker's copies of the protocol's numbers are
// berth's. A ring size or offset that differed would have the worker
// write where berth does not read.
func TestWorkerConstants(t *testing.T) {
	for _, c := range []struct {
		name string
		want int
	}{
		{"VERSION", Version},
		{"F_MORE", int(FlagMore)},
		{"F_BODY_FD", int(FlagBodyFD)},
		{"F_BODY_SHARED", int(FlagBodyShared)},
		{"F_BODY_SOCKET", int(FlagBodySocket)},
		{"SHARED_OFFSET", SharedBodyOffset},
		{"OUT_OFFSET", OutRegionOffset},
		{"OUT_SIZE", OutRegionSize},
		{"OUT_MAX", OutBodyMax},
		{"FD_LANE0", FDLane0},
		{"FD_LOG", FDLog},
		{"FD_LANES", FDLanes},
	} {
		m := regexp.MustCompile(`(?m)^` + c.name + ` = (\d+)(?: (<<|\*) (\d+))?(?:  #.*)?$`).FindStringSubmatch(WorkerSource)
		if m == nil {
			t.Errorf("worker.py has no line %s = N (or N << M, N * M)", c.name)
			continue
		}
		got, _ := strconv.Atoi(m[1])
		if m[2] != "" {
			k, _ := strconv.Atoi(m[3])
			if m[2] == "<<" {
				got <<= k
			} else {
				got *= k
			}
		}
		if got != c.want {
			t.Errorf("worker.py %s = %d, berth's is %d", c.name, got, c.want)
		}
	}
}
