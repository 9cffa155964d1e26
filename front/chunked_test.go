package front

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
)

// decodeChunked decodes in with berth's decoder and returns the body,
// the error that ended it (nil at the end of a whole body) and what the
// reader holds after it.
func decodeChunked(in []byte) (body []byte, err error, rest []byte) {
	br := bufio.NewReaderSize(bytes.NewReader(in), maxChunkLine)
	body, err = io.ReadAll(newChunkedReader(br))
	rest, _ = io.ReadAll(br)
	return body, err, rest
}

// TestChunkedReader: each chunked body is decoded, refused as malformed,
// or found cut short, and a whole one is read up to its end exactly.
func TestChunkedReader(t *testing.T) {
	const (
		ok  = ""
		bad = "malformed"
		cut = "cut"
	)
	cases := []struct {
		name, in, want, fails, rest string
	}{
		{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", ok, ""},
		{"two chunks", "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", "hello", ok, ""},
		{"empty body", "0\r\n\r\n", "", ok, ""},
		{"upper and lower hex", "A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", strings.Repeat("0123456789", 2), ok, ""},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", ok, ""},
		{"16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "hello", ok, ""},
		{"next request after", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello", ok, "GET / HTTP/1.1\r\n"},
		{"extension", "5;name=val\r\nhello\r\n0\r\n\r\n", "hello", ok, ""},
		{"extension without value", "5;name\r\nhello\r\n0;x\r\n\r\n", "hello", ok, ""},
		{"two extensions", "5;a=1;b\r\nhello\r\n0\r\n\r\n", "hello", ok, ""},
		{"quoted extension", "5;n=\"a b\\\"c\"\r\nhello\r\n0\r\n\r\n", "hello", ok, ""},
		{"BWS around ; and =", "5 ;\tn = v\r\nhello\r\n0 ; x\r\n\r\n", "hello", ok, ""},
		{"trailers", "5\r\nhello\r\n0\r\nX-T: 1\r\nY:\r\n\r\nnext", "hello", ok, "next"},

		{"trailing space", "5 \r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"trailing tab", "5\t\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"trailing space on the last chunk", "5\r\nhello\r\n0 \r\n\r\n", "hello", bad, ""},
		{"trailing space after good chunks", "3\r\nhel\r\n2\r\nlo\r\n1 \r\nx\r\n0\r\n\r\n", "hello", bad, ""},
		{"space inside the size", "5 0\r\n", "", bad, ""},
		{"leading space", " 5\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"no size", "\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"only an extension", ";a\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"not hex", "x\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"negative", "-5\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"past int64", "8000000000000000\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"empty extension", "5;\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"space after the extension", "5;a=b \r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"space after the name", "5;a \r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"empty value", "5;a=\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"value not a token", "5;a=b c\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"name not a token", "5;a@b\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"unclosed quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"control byte in quotes", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"bare LF", "5\nhello\n0\n\n", "", bad, ""},
		{"bare CR in the line", "5;a\rb\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"data longer than its size", "5\r\nhelloX\r\n0\r\n\r\n", "hello", bad, ""},
		{"data ends in a bare LF", "5\r\nhello\n0\r\n\r\n", "hello", bad, ""},
		{"line too long", "5;a=" + strings.Repeat("b", maxChunkLine) + "\r\nhello\r\n0\r\n\r\n", "", bad, ""},
		{"trailer without colon", "5\r\nhello\r\n0\r\nX-T 1\r\n\r\n", "hello", bad, ""},
		{"trailer obs-fold", "5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n", "hello", bad, ""},
		{"trailer with a control byte", "5\r\nhello\r\n0\r\nX-T: \x01\r\n\r\n", "hello", bad, ""},
		{"trailer with a space before the colon", "5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n", "hello", bad, ""},
		{"trailers too large", "5\r\nhello\r\n0\r\n" + strings.Repeat("X-T: "+strings.Repeat("v", 1000)+"\r\n", 17) + "\r\n", "hello", bad, ""},

		{"nothing", "", "", cut, ""},
		{"cut after a chunk", "5\r\nhello\r\n", "hello", cut, ""},
		{"cut inside a chunk", "5\r\nhel", "hel", cut, ""},
		{"cut inside a size line", "5", "", cut, ""},
		{"cut before the data's CRLF", "5\r\nhello", "hello", cut, ""},
		{"last chunk without its CRLF", "5\r\nhello\r\n0\r\n", "hello", cut, ""},
		{"cut inside a trailer", "5\r\nhello\r\n0\r\nX-Sum: 1", "hello", cut, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, err, rest := decodeChunked([]byte(tc.in))
			var ce *chunkError
			got := ok
			switch {
			case errors.As(err, &ce):
				got = bad
			case errors.Is(err, errChunkCut):
				got = cut
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			}
			if got != tc.fails || string(body) != tc.want {
				t.Errorf("got %q, %v; want %q, %q", body, err, tc.want, tc.fails)
			}
			if tc.fails == ok && string(rest) != tc.rest {
				t.Errorf("left %q after the body, want %q", rest, tc.rest)
			}
		})
	}
}

// FuzzChunked compares berth's decoder with Go's (net/http/httputil)
// where they should agree. Go stops at the last chunk (it leaves trailers
// to its caller), refuses whitespace before ";" (berth takes it, RFC 9110
// section 5.6.3) and a run of extensions past its overhead allowance;
// berth refuses whitespace after a size and extensions that are not
// RFC 9112's (Go ignores both), and checks the trailer section. Anywhere
// else, both take the same bodies and decode them alike.
func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n", "5 \r\nhello\r\n0\r\n\r\n", "5 ;a\r\nhello\r\n0\r\n\r\n",
		"3;a=\"x\"\r\nabc\r\n0\r\nT: v\r\n\r\n", "5\nhello\n0\n\n", "0\r\n\r\n", "ffffffffffffffffff\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		body, err, _ := decodeChunked(in)
		cr := httputil.NewChunkedReader(bufio.NewReaderSize(bytes.NewReader(in), maxChunkLine))
		want, goErr := io.ReadAll(cr)
		switch {
		case err == nil && goErr == nil:
			if !bytes.Equal(body, want) {
				t.Fatalf("berth decoded %q, Go %q", body, want)
			}
		case err == nil:
			// Go refused what berth took: only whitespace before ";" or
			// Go's overhead allowance explains it.
			if !bytes.Contains(in, []byte(" ;")) && !bytes.Contains(in, []byte("\t;")) &&
				!strings.Contains(goErr.Error(), "too much non-data") {
				t.Fatalf("berth took %q (%q); Go refused it: %v", in, body, goErr)
			}
		case goErr == nil:
			// berth refused what Go took: only what berth checks and Go
			// does not explains it.
			var ce *chunkError
			inTrailer := bytes.HasPrefix(body, want) && len(body) == len(want)
			if !errors.As(err, &ce) && !errors.Is(err, errChunkCut) {
				t.Fatalf("berth: %v", err)
			}
			if !inTrailer && !bytes.ContainsAny(in, " \t;") && !strings.Contains(err.Error(), "too large") {
				t.Fatalf("berth refused %q (%v); Go decoded %q", in, err, want)
			}
		}
	})
}

// BenchmarkChunkedBody reads a 1 MiB chunked body from memory through
// fasthttp's stream, as berth did, and through berth's decoder: in
// 16 KiB chunks (a client streaming an upload), where copying costs most,
// and in 64-byte chunks, where parsing size lines does.
func BenchmarkChunkedBody(b *testing.B) {
	buf := make([]byte, 256<<10)
	for _, chunk := range []int{16 << 10, 64} {
		var in bytes.Buffer
		in.WriteString("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		for range (1 << 20) / chunk {
			fmt.Fprintf(&in, "%x\r\n", chunk)
			in.Write(bytes.Repeat([]byte("b"), chunk))
			in.WriteString("\r\n")
		}
		in.WriteString("0\r\n\r\n")
		for _, mode := range []string{"fasthttp", "berth"} {
			b.Run(fmt.Sprintf("%s/%dB", mode, chunk), func(b *testing.B) {
				b.SetBytes(1 << 20)
				br := bufio.NewReaderSize(nil, 8<<10)
				for b.Loop() {
					br.Reset(bytes.NewReader(in.Bytes()))
					var req fasthttp.Request
					if err := req.Header.Read(br); err != nil {
						b.Fatal(err)
					}
					if err := req.ContinueReadBodyStream(br, 1<<20); err != nil {
						b.Fatal(err)
					}
					r := req.BodyStream()
					if mode == "berth" {
						r, _ = chunkStream.decoder(r)
					}
					n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
					if err != nil || n != 1<<20 {
						b.Fatal(n, err)
					}
				}
			})
		}
	}
}

// TestUnroutedChunkedCloses: a chunked request no app is mounted for is
// answered 404 and its connection closed, its body unread: fasthttp would
// otherwise drain the body with its own chunk parser, which takes a
// malformed size line, and serve what follows on the connection.
func TestUnroutedChunkedCloses(t *testing.T) {
	s := New(units.Listener{
		Name: "test", HeaderTimeout: 5 * time.Second, BodyTimeout: 5 * time.Second,
		WriteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		MaxHeaderBytes: 8 << 10, MaxURIBytes: 4 << 10,
	}, nil, journal.New(io.Discard, slog.LevelInfo), false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.srv.Shutdown()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5 \r\nhello\r\n0\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("answer: %v, %v; want 404", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if next, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("the connection went on after the chunked request: %d", next.StatusCode)
	}
}
