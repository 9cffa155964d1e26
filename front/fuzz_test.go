package front

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthd/berth/internal/fakeworker"
	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/units"
)

func TestMain(m *testing.M) {
	fakeworker.MaybeRun() // this binary is also the fuzz target's worker
	os.Exit(m.Run())
}

var (
	fuzzOnce sync.Once
	fuzzAddr string
	fuzzErr  error
)

// fuzzServer starts, once per process, a front on a loopback listener
// with one app whose worker is the fake worker (this test binary): the
// whole front, from the socket to the wire and back, at a fuzzer's pace.
func fuzzServer(tb testing.TB) string {
	fuzzOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			fuzzErr = err
			return
		}
		src := `listener "http" {
  address = "127.0.0.1:0"
  header_timeout = "1s"
  body_timeout = "1s"
}
app "fuzz" {
  module = "fake"
  python = "` + exe + `"
  workers = 1
  max_body_bytes = "64KiB"
  env = { ` + fakeworker.EnvVar + ` = "1" }
}
`
		cfg, err := units.Parse(filepath.Join(os.TempDir(), "fuzz.hcl"), []byte(src))
		if err != nil {
			fuzzErr = err
			return
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		app := supervisor.NewApp(cfg.Apps[0], log, nil)
		if fuzzErr = app.Start(context.Background()); fuzzErr != nil {
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fuzzErr = err
			return
		}
		go func() {
			err := New(cfg.Listeners[0], []*supervisor.App{app}, log, false).Serve(ln)
			fmt.Fprintf(os.Stderr, "the fuzz server stopped serving: %v\n", err)
			os.Exit(3)
		}()
		fuzzAddr = ln.Addr().String()
	})
	if fuzzErr != nil {
		tb.Fatalf("starting the fuzz server: %v", fuzzErr)
	}
	return fuzzAddr
}

// exchange sends data on a new connection, ends its side, and returns
// all that comes back within a second.
func exchange(tb testing.TB, addr string, data []byte) []byte {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = c.Write(data)
	_ = c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(c)
	return out
}

// FuzzFront feeds arbitrary bytes to a real front over loopback: berth
// must never panic, never pass to the app (answer 200, which only the
// worker does) a first request that is plainly not well-formed
// (badRequest), and serve a valid request on a new connection afterwards.
// Seeds: testdata's requests and cmd/berth's request corpus.
func FuzzFront(f *testing.F) {
	addr := fuzzServer(f)
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST /p?q HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: y\r\n\r\n"))
	files, _ := filepath.Glob("../cmd/berth/testdata/requests/*.http")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(corpusRequest(b))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := exchange(t, addr, data)
		if bytes.HasPrefix(out, []byte("HTTP/1.1 200 ")) {
			if why := badRequest(data); why != "" {
				t.Fatalf("the app got a request that is not well-formed (%s):\n%q\nanswer: %q", why, data, out)
			}
		}
		if after := exchange(t, addr, []byte("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")); !bytes.HasPrefix(after, []byte("HTTP/1.1 200 ")) {
			t.Fatalf("berth no longer serves after %q: %q", data, after)
		}
	})
}

// corpusRequest is the raw request of a corpus file (cmd/berth's
// corpus_test.go describes the format).
func corpusRequest(b []byte) []byte {
	var raw strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "# ") {
			raw.WriteString(line)
		}
	}
	r := strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\t`, "\t", `\\`, `\`)
	s := r.Replace(raw.String())
	for {
		i := strings.Index(s, `\x`)
		if i < 0 || i+4 > len(s) {
			break
		}
		v, _ := strconv.ParseUint(s[i+2:i+4], 16, 8)
		s = s[:i] + string([]byte{byte(v)}) + s[i+4:]
	}
	return []byte(s)
}

var (
	requestLine = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+ [^\x00-\x20\x7f]+ HTTP/1\.[01]\r\n`)
	fieldName   = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+$`)
)

// badRequest says why data's first request is plainly not well-formed
// by RFC 9112, or "" when it may be: a request line that is not one, a
// header block that does not end, a field that is not "name: value", a
// NUL or a bare CR in the header block, both Content-Length and
// Transfer-Encoding, a Content-Length that is not digits or a body
// shorter than it, a chunked body that does not end. It is a floor, not
// a parser: what it lets pass is not checked.
func badRequest(data []byte) string {
	// RFC 9112 section 2.2: lines may end in a bare LF, and empty lines
	// may come before a request.
	data = bytes.TrimLeft(data, "\r\n")
	end := -1
	for i := 0; i+1 < len(data) && end < 0; i++ {
		switch {
		case data[i] == '\n' && data[i+1] == '\n':
			end = i + 1
		case data[i] == '\n' && data[i+1] == '\r' && i+2 < len(data) && data[i+2] == '\n':
			end = i + 1
		}
	}
	if end < 0 {
		return "the header block does not end"
	}
	head := string(data[:end])
	rest := data[end+1:]
	if rest[0] == '\n' {
		rest = rest[1:]
	}
	lines := strings.Split(strings.TrimSuffix(head, "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	if !requestLine.MatchString(lines[0] + "\r\n") {
		return "no request line"
	}
	if strings.ContainsAny(strings.Join(lines, ""), "\x00\r") {
		return "a NUL or a bare CR in the header block"
	}
	cl, te := "", ""
	for _, l := range lines[1:] {
		if l != "" && (l[0] == ' ' || l[0] == '\t') {
			continue // obs-fold
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || !fieldName.MatchString(name) {
			return "a field that is not name: value"
		}
		switch strings.ToLower(name) {
		case "content-length":
			cl = strings.TrimSpace(value)
		case "transfer-encoding":
			te = strings.TrimSpace(value)
		}
	}
	switch {
	case cl != "" && te != "":
		return "both Content-Length and Transfer-Encoding"
	case cl != "":
		n, err := strconv.ParseUint(cl, 10, 63)
		if err != nil || strings.ContainsAny(cl, "+- ") {
			return "a Content-Length that is not digits"
		}
		if uint64(len(rest)) < n {
			return "a body shorter than its Content-Length"
		}
	case te != "" && !chunkedEnds(rest):
		return "a chunked body that does not end"
	}
	return ""
}

// chunkedEnds reports whether b holds a whole chunked body as RFC 9112
// section 7.1 writes one: chunks whose size lines are a size and
// extensions (chunkLine), the last chunk, trailer fields and the empty
// line.
func chunkedEnds(b []byte) bool {
	br := bufio.NewReader(bytes.NewReader(b))
	for {
		line, err := br.ReadString('\n')
		if err != nil || !chunkLine.MatchString(asciiOnly(line)) {
			return false
		}
		size := strings.TrimRight(strings.SplitN(line, ";", 2)[0], " \t\r\n")
		n, err := strconv.ParseUint(size, 16, 63)
		if err != nil {
			return false
		}
		if n == 0 {
			break
		}
		if _, err := br.Discard(int(n)); err != nil {
			return false
		}
		if crlf, err := br.Peek(2); err != nil || string(crlf) != "\r\n" {
			return false
		}
		br.Discard(2)
	}
	for {
		line, err := br.ReadString('\n')
		switch {
		case line == "\r\n":
			return true
		case err != nil || !trailerLine.MatchString(asciiOnly(line)):
			return false
		}
	}
}

// The RFC 9112 grammar of a chunk-size line (chunk-ext with BWS around
// ";" and "=", a token or a quoted-string for a value) and of a trailer
// field line, matched on asciiOnly's spelling of a line.
var (
	tchar       = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]"
	quoted      = `"(?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"`
	chunkLine   = regexp.MustCompile(`^[0-9A-Fa-f]+(?:[ \t]*;[ \t]*` + tchar + `+(?:[ \t]*=[ \t]*(?:` + tchar + `+|` + quoted + `))?)*\r\n$`)
	trailerLine = regexp.MustCompile(`^` + tchar + `+:[\t\x20-\x7e]*\r\n$`)
)

// asciiOnly spells each byte of s past 0x7f (obs-text, which RFC 9112
// allows where '@' is: in a quoted-string and a field value, not in a
// token) as '@', for regexp, which reads UTF-8.
func asciiOnly(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c > 0x7f {
			b[i] = '@'
		}
	}
	return string(b)
}
