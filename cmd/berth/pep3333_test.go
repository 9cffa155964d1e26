package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// TestPEP3333 is the PEP 3333 compliance suite: one small probe app per
// behaviour under testdata/pep3333, most of them wrapped in
// wsgiref.validate.validator (see testdata/pep3333/_probe.py and each
// module's docstring for the ones that cannot be), each driven by a real
// HTTP client.
//
// One berth serves every probe: one listener per probe module, each routed
// to its own app of one worker, so a row reaches exactly its app.
func TestPEP3333(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	dir := t.TempDir()
	rows := pepRows(dir)

	// One app per module, served on a listener named after it.
	var apps []string
	seen := map[string]string{}
	for _, r := range rows {
		m := pepModule(r.app)
		if prev, ok := seen[m]; ok {
			if prev != r.app {
				t.Fatalf("rows serve both %s and %s: one app per module", prev, r.app)
			}
			continue
		}
		seen[m] = r.app
		apps = append(apps, r.app)
	}
	inst, addrs := pepStart(t, py, dir, apps)

	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			b := *inst
			b.T = t
			b.Addr = addrs[pepModule(r.app)]
			var reply *pepReply
			if r.req != "" {
				reply = pepSend(t, &b, r.req, 10*time.Second)
			}
			r.check(t, &b, reply)
		})
	}

	// The validator reports what it finds wrong on the server's side (the
	// environ, wsgi.input, start_response) with an AssertionError through
	// the app, a WSGIWarning on stderr, or a complaint about an iterable
	// nobody closed; all end up in berth's log.
	t.Run("validator found nothing", func(t *testing.T) {
		logs := inst.Logs.String()
		for _, bad := range []string{`in assert_`, `WSGIWarning`, `garbage collected without being closed`} {
			if strings.Contains(logs, bad) {
				t.Errorf("berth's log has %q: the validator rejected something", bad)
			}
		}
	})
}

// pepRow is one behaviour: the app that shows it (module:callable under
// testdata/pep3333; the module names the listener it is served on), the
// request, and the check.
type pepRow struct {
	name string
	app  string
	// req is sent on a new connection and berth's answer read until it
	// closes the connection (10 s at most); the check gets it parsed.
	// Rows whose check drives its own client leave req empty.
	req   string
	check func(t *testing.T, b *e2e.Instance, r *pepReply)
}

func pepModule(app string) string { return strings.SplitN(app, ":", 2)[0] }

// pepExtra is what a probe's app block needs beyond one worker.
var pepExtra = map[string]string{
	"multithread": "threads = 4",
}

// pepStart runs one berth with each app (module:callable) on a listener
// named after its module, and returns it with each listener's address.
func pepStart(t *testing.T, py, dir string, apps []string) (*e2e.Instance, map[string]string) {
	t.Helper()
	wd, _ := os.Getwd()
	var cfg strings.Builder
	for _, app := range apps {
		fmt.Fprintf(&cfg, `
listener %[1]q {
  address = "127.0.0.1:0"
}

app %[1]q {
  listener = %[1]q
  module   = %[6]q
  python   = %[2]q
  chdir    = %[3]q
  workers  = 1
  timeout  = "10s"
  env = {
    PEP3333_DIR             = %[4]q
    PYTHONDONTWRITEBYTECODE = "1"
  }
  %[5]s
}
`, pepModule(app), py, filepath.Join(wd, "testdata", "pep3333"), dir, pepExtra[pepModule(app)], app)
	}
	inst := e2e.Launch(t, cfg.String())
	if err := inst.WaitFor(`INFO  ready `, 60*time.Second); err != nil {
		t.Fatalf("berth did not become ready: %v\nlogs:\n%s", err, inst.Logs)
	}
	addrs := map[string]string{}
	for _, m := range regexp.MustCompile(`listening listener=(\S+) addr=(\S+)`).FindAllStringSubmatch(inst.Logs.String(), -1) {
		addrs[m[1]] = m[2]
	}
	for _, app := range apps {
		if m := pepModule(app); addrs[m] == "" {
			t.Fatalf("no listening line for %s in the logs:\n%s", m, inst.Logs)
		}
	}
	return inst, addrs
}

// pepReply is berth's answer to a row's request.
type pepReply struct {
	raw     string         // every byte berth sent
	resp    *http.Response // the first response, nil when unparsable
	body    string         // its body, as far as it could be read
	bodyErr error          // why reading the body stopped short, if it did
	took    time.Duration  // until berth closed the connection
}

// ok fails the test unless the reply parsed as a response.
func (r *pepReply) ok(t *testing.T) *http.Response {
	t.Helper()
	if r.resp == nil {
		t.Fatalf("no parsable response; berth sent:\n%q", r.raw)
	}
	return r.resp
}

// expect checks status and body exactly.
func (r *pepReply) expect(t *testing.T, status int, body string) {
	t.Helper()
	resp := r.ok(t)
	if resp.StatusCode != status || r.body != body || r.bodyErr != nil {
		t.Errorf("got %d %q (body error %v), want %d %q; raw:\n%q", resp.StatusCode, r.body, r.bodyErr, status, body, r.raw)
	}
}

// pepSend sends req on a new connection and reads until berth closes it or
// d passes.
func pepSend(t *testing.T, b *e2e.Instance, req string, d time.Duration) *pepReply {
	t.Helper()
	c, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetDeadline(start.Add(d))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	raw, _ := io.ReadAll(c)
	r := &pepReply{raw: string(raw), took: time.Since(start)}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		return r
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.resp, r.body, r.bodyErr = resp, string(body), err
	return r
}

// pepGet is a GET that asks berth to close the connection after it.
func pepGet(target string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: pep.test\r\nConnection: close\r\n\r\n"
}

// pepLog waits for berth's log to match re.
func pepLog(t *testing.T, b *e2e.Instance, re string) {
	t.Helper()
	if err := b.WaitFor(re, 5*time.Second); err != nil {
		t.Errorf("berth's log: %v", err)
	}
}

// pepLogCount counts the matches of re in berth's log so far.
func pepLogCount(b *e2e.Instance, re string) int {
	return len(regexp.MustCompile(re).FindAllStringIndex(b.Logs.String(), -1))
}

// pepLogMore waits for berth's log to match re more than before times:
// for a record that rows sharing an app both expect.
func pepLogMore(t *testing.T, b *e2e.Instance, re string, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pepLogCount(b, re) <= before {
		if time.Now().After(deadline) {
			t.Errorf("berth's log: no new line matching %q within 5 s", re)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pepRecorded waits for the probe to have recorded name in dir (see
// _probe.record) and returns the file's content.
func pepRecorded(t *testing.T, dir, name string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Errorf("the app recorded no %s within 5 s", name)
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pepJSON decodes a reply's body into v.
func pepJSON(t *testing.T, r *pepReply, v any) {
	t.Helper()
	r.ok(t)
	if r.resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", r.resp.StatusCode, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("%v: %q", err, r.body)
	}
}

// pepInputBody is the request body of the wsgi.input rows: lines of
// several lengths, an empty one, and a last one without a newline.
const pepInputBody = "alpha\nbravo charlie\n\ndelta"

// pepPieces splits s into n-byte pieces, as read(n) until b"" reads it.
func pepPieces(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

// pepLines splits s as readline(n) until b"" does; n <= 0 is no limit.
func pepLines(s string, n int) []string {
	var out []string
	for s != "" {
		end := len(s)
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			end = i + 1
		}
		if n > 0 && end > n {
			end = n
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

// pepChunked frames body as a chunked request body in chunks of n bytes.
func pepChunked(body string, n int) string {
	var b strings.Builder
	for _, p := range pepPieces(body, n) {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// pepConn is one keep-alive connection to berth.
type pepConn struct {
	c  net.Conn
	br *bufio.Reader
}

// pepDial connects to b; the connection closes with the test.
func pepDial(t *testing.T, b *e2e.Instance) *pepConn {
	t.Helper()
	c, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &pepConn{c: c, br: bufio.NewReader(c)}
}

// do sends req and reads one response; the error is the body's.
func (p *pepConn) do(t *testing.T, req string) (*http.Response, string, error) {
	t.Helper()
	if _, err := io.WriteString(p.c, req); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(p.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

func pepRows(dir string) []pepRow {
	rows := []pepRow{
		// Headers wait for the first non-empty chunk.
		{
			name: "headers wait for the first non-empty chunk",
			app:  "lazy_start:app",
			req:  pepGet("/"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				// The app replaced its headers after two empty chunks:
				// possible only if nothing had been sent.
				r.expect(t, 201, "body after empty chunks\n")
				if h := r.resp.Header.Get("X-Pep-Headers"); h != "second" {
					t.Errorf("X-Pep-Headers = %q, want the replacement's \"second\"", h)
				}
			},
		},
		{
			name: "iterable of only empty chunks sends headers at its end",
			app:  "lazy_start:app",
			req:  pepGet("/only-empty"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 200, "")
				if h := r.resp.Header.Get("X-Pep-Headers"); h != "only-empty" {
					t.Errorf("X-Pep-Headers = %q", h)
				}
			},
		},
		{
			name: "empty chunks before start_response",
			app:  "empty_before_start:app",
			req:  pepGet("/"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 200, "started late\n")
				if h := r.resp.Header.Get("X-Pep-Late"); h != "yes" {
					t.Errorf("X-Pep-Late = %q", h)
				}
			},
		},

		// start_response and exc_info.
		{
			name: "exc_info before headers are sent replaces the response",
			app:  "exc_info_before:app",
			req:  pepGet("/"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 500, "the app's own error page\n")
				if h := r.resp.Header.Get("X-Pep-Probe"); h != "own-500" {
					t.Errorf("X-Pep-Probe = %q, want the app's own 500's header", h)
				}
				if h := r.resp.Header.Get("X-Pep-First"); h != "" {
					t.Errorf("X-Pep-First = %q: a header of the replaced start_response was sent", h)
				}
			},
		},
		{
			name: "exc_info after headers are sent re-raises",
			app:  "exc_info_after:app",
			req:  pepGet("/"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				resp := r.ok(t)
				if resp.StatusCode != 200 || !strings.HasPrefix(r.body, "partial body\n") {
					t.Errorf("got %d %q, want the 200 and its first chunk", resp.StatusCode, r.body)
				}
				if r.bodyErr == nil {
					t.Errorf("the response read as complete (%q); it must be cut", r.body)
				}
				if strings.Contains(r.raw, "never sent") {
					t.Errorf("start_response with exc_info after the headers returned instead of raising:\n%q", r.raw)
				}
				if strings.HasSuffix(r.raw, "0\r\n\r\n") {
					t.Errorf("the chunked body has its terminator:\n%q", r.raw)
				}
				if r.took > 5*time.Second {
					t.Errorf("berth closed the connection of a cut response after %s", r.took)
				}
				pepLog(t, b, `(?s)exc_info_after\[\d+\] Exception in the app while serving GET / .*RuntimeError: pep3333 error after the headers were sent`)
			},
		},
		{
			name: "second start_response without exc_info is an error",
			app:  "second_start:app",
			req:  pepGet("/"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.ok(t)
				if r.resp.StatusCode != 500 || strings.Contains(r.body, "must not be sent") {
					t.Errorf("got %d %q, want a 500 without the app's body", r.resp.StatusCode, r.body)
				}
				pepLog(t, b, `(?s)second_start\[\d+\] Exception in the app while serving GET / .*start_response`)
			},
		},

		// write().
		{
			name: "write() data precedes a list's",
			app:  "write_callable:app",
			req:  pepGet("/"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 200, "one two three\n")
			},
		},
		{
			name: "write() data precedes a generator's",
			app:  "write_callable:app",
			req:  pepGet("/generator"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 200, "w1 w2 g1 g2\n")
			},
		},
		{
			name: "write() data counts in the app's Content-Length",
			app:  "write_callable:app",
			req:  pepGet("/length"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 200, "written list")
				if r.resp.ContentLength != 12 {
					t.Errorf("Content-Length %d, want 12", r.resp.ContentLength)
				}
			},
		},

		// Headers that are not latin-1 or hold control characters.
		{
			name: "header value in latin-1 beyond ASCII is sent",
			app:  "bad_headers:app",
			req:  pepGet("/latin-1"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 200, "bad header probe\n")
				if !strings.Contains(r.raw, "X-Pep-Latin: caf\xe9\r\n") {
					t.Errorf("no X-Pep-Latin: caf\\xe9 (one latin-1 byte) in\n%q", r.raw)
				}
			},
		},
	}

	for _, c := range []struct {
		name, path, header string
	}{
		{"header value not latin-1", "/value-not-latin-1", "X-Pep-Snow"},
		{"header name not latin-1", "/name-not-latin-1", "X-Pep-"},
		{"header value with DEL", "/value-del", "X-Pep-Del"},
		{"header value with CR LF", "/value-crlf", "X-Pep-Crlf"},
		{"header value with LF", "/value-lf", "X-Pep-Lf"},
		{"header value with NUL", "/value-nul", "X-Pep-Nul"},
		{"header name with a space", "/name-space", "X-Pep Space"},
		{"header name with a colon", "/name-colon", "X-Pep:Colon"},
		{"status with CR LF", "/status-crlf", "X-Pep-Injected"},
	} {
		rows = append(rows, pepRow{
			name: c.name + " is a 500, logged",
			app:  "bad_headers:app",
			req:  pepGet(c.path),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.ok(t)
				if r.resp.StatusCode != 500 || strings.Contains(r.body, "bad header probe") {
					t.Errorf("got %d %q, want a 500 without the app's body", r.resp.StatusCode, r.body)
				}
				for _, leak := range []string{"Set-Cookie", "X-Pep"} {
					if strings.Contains(r.raw, leak) {
						t.Errorf("%s reached the client:\n%q", leak, r.raw)
					}
				}
				// Either the worker (not latin-1, NUL) or berth (a
				// control character, a name that is not a token) refused
				// it, and said which.
				pepLog(t, b, `(?:app sent an invalid response[^\n]*`+regexp.QuoteMeta(c.header)+
					`|bad_headers\[\d+\] Exception in the app while serving GET `+regexp.QuoteMeta(c.path)+` )`)
			},
		})
	}

	// close().
	rows = append(rows,
		pepRow{
			name: "close() after a complete response",
			app:  "close_called:app",
			req:  pepGet("/ok?id=ok"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 200, "ok body\n")
				if got := pepRecorded(t, dir, "close-ok"); got != "closed\n" {
					t.Errorf("close() records %q, want one call", got)
				}
			},
		},
		pepRow{
			name: "close() after the iterable raises mid-body",
			app:  "close_called:app",
			req:  pepGet("/fail-mid?id=mid"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.ok(t)
				if r.resp.StatusCode != 200 || r.body != "first\n" || r.bodyErr == nil {
					t.Errorf("got %d %q (body error %v), want the 200's first chunk, cut", r.resp.StatusCode, r.body, r.bodyErr)
				}
				if got := pepRecorded(t, dir, "close-mid"); got != "closed\n" {
					t.Errorf("close() records %q, want one call", got)
				}
			},
		},
		pepRow{
			name: "close() after the iterable raises before any body",
			app:  "close_called:app",
			req:  pepGet("/fail-first?id=first"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.ok(t)
				if r.resp.StatusCode != 500 {
					t.Errorf("got %d %q, want 500", r.resp.StatusCode, r.body)
				}
				if got := pepRecorded(t, dir, "close-first"); got != "closed\n" {
					t.Errorf("close() records %q, want one call", got)
				}
			},
		},
	)

	// wsgi.input, for a body with a Content-Length and a chunked one.
	for _, op := range []struct {
		name, target string
		want         []string
	}{
		{"read(3)", "/read?n=3", pepPieces(pepInputBody, 3)},
		{"read(n) past the end", "/read?n=1000", []string{pepInputBody}},
		{"read()", "/read-all", []string{pepInputBody}},
		{"readline()", "/readline", pepLines(pepInputBody, 0)},
		{"readline(n) shorter than lines", "/readline-n?n=4", pepLines(pepInputBody, 4)},
		{"readline(n) longer than lines", "/readline-n?n=100", pepLines(pepInputBody, 100)},
		{"readlines()", "/readlines", pepLines(pepInputBody, 0)},
		{"iteration", "/iter", pepLines(pepInputBody, 0)},
	} {
		for _, framing := range []struct{ name, head, body string }{
			{"Content-Length", fmt.Sprintf("Content-Length: %d", len(pepInputBody)), pepInputBody},
			{"chunked", "Transfer-Encoding: chunked", pepChunked(pepInputBody, 7)},
		} {
			chunked := framing.name == "chunked"
			rows = append(rows, pepRow{
				name: "wsgi.input " + op.name + ", " + framing.name,
				app:  "wsgi_input:app",
				req: "POST " + op.target + " HTTP/1.1\r\nHost: pep.test\r\nContent-Type: text/plain\r\n" +
					framing.head + "\r\nConnection: close\r\n\r\n" + framing.body,
				check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
					var got struct {
						Parts           []string `json:"parts"`
						EOF             []string `json:"eof"`
						ContentLength   *string  `json:"content_length"`
						InputTerminated *bool    `json:"input_terminated"`
					}
					pepJSON(t, r, &got)
					if fmt.Sprintf("%q", got.Parts) != fmt.Sprintf("%q", op.want) {
						t.Errorf("read %q, want %q", got.Parts, op.want)
					}
					for _, e := range got.EOF {
						if e != "" {
							t.Errorf("after the end of the body, reading returned %q, want b\"\": %q", e, got.EOF)
						}
					}
					if got.ContentLength == nil || *got.ContentLength != fmt.Sprint(len(pepInputBody)) {
						t.Errorf("CONTENT_LENGTH = %v, want %q", pepQuoted(got.ContentLength), fmt.Sprint(len(pepInputBody)))
					}
					if chunked && (got.InputTerminated == nil || !*got.InputTerminated) {
						t.Errorf("wsgi.input_terminated = %v for a chunked body, want True", got.InputTerminated)
					}
				},
			})
		}
	}
	rows = append(rows, pepRow{
		name: "wsgi.input of a request without a body",
		app:  "wsgi_input:app",
		req:  pepGet("/read?n=3"),
		check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
			var got struct {
				Parts         []string `json:"parts"`
				EOF           []string `json:"eof"`
				ContentLength *string  `json:"content_length"`
			}
			pepJSON(t, r, &got)
			if len(got.Parts) != 0 || strings.Join(got.EOF, "") != "" {
				t.Errorf("read %q then %q from an empty body", got.Parts, got.EOF)
			}
			if cl := got.ContentLength; cl != nil && *cl != "" && *cl != "0" {
				t.Errorf("CONTENT_LENGTH = %q without a body", *cl)
			}
		},
	})

	// Expect: 100-continue, HEAD, HTTP/1.0.
	rows = append(rows,
		pepRow{
			name: "Expect: 100-continue",
			app:  "expect_continue:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				p := pepDial(t, b)
				io.WriteString(p.c, "POST / HTTP/1.1\r\nHost: pep.test\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
				line, err := p.br.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 Continue\r\n") {
					t.Fatalf("first line %q (%v), want 100 Continue before the body is sent", line, err)
				}
				for line != "\r\n" {
					if line, err = p.br.ReadString('\n'); err != nil {
						t.Fatalf("reading the 100 response: %v", err)
					}
				}
				resp, body, err := p.do(t, "hello there")
				if err != nil || resp.StatusCode != 200 || body != `{"length": 11, "body": "hello there"}` {
					t.Errorf("after 100 Continue: %d %q (%v)", resp.StatusCode, body, err)
				}
			},
		},
		pepRow{
			name: "HEAD: no body, the GET's Content-Length",
			app:  "head_request:app",
			req:  "HEAD / HTTP/1.1\r\nHost: pep.test\r\n\r\n" + pepGet("/"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				// The GET pipelined behind the HEAD parses only if the
				// HEAD's answer had no body bytes.
				br := bufio.NewReader(strings.NewReader(r.raw))
				head, _ := e2e.ReadResponse(t, br, "HEAD")
				if head.StatusCode != 200 || head.ContentLength != 22 || head.Header.Get("X-Pep-Method") != "HEAD" {
					t.Errorf("HEAD = %d, Content-Length %d, %v; want 200 and the GET's 22", head.StatusCode, head.ContentLength, head.Header)
				}
				get, body := e2e.ReadResponse(t, br, "GET")
				if get.StatusCode != 200 || body != "hello from a GET body\n" {
					t.Errorf("GET after the HEAD = %d %q (did the HEAD send a body?)\nraw:\n%q", get.StatusCode, body, r.raw)
				}
			},
		},
		pepRow{
			name: "HEAD of a streamed response: no body",
			app:  "head_request:app",
			req:  "HEAD /stream HTTP/1.1\r\nHost: pep.test\r\n\r\n" + pepGet("/stream"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				br := bufio.NewReader(strings.NewReader(r.raw))
				head, _ := e2e.ReadResponse(t, br, "HEAD")
				if head.StatusCode != 200 || head.Header.Get("X-Pep-Method") != "HEAD" {
					t.Errorf("HEAD = %d %v", head.StatusCode, head.Header)
				}
				get, body := e2e.ReadResponse(t, br, "GET")
				if get.StatusCode != 200 || body != "streamed 0\nstreamed 1\nstreamed 2\n" {
					t.Errorf("GET after the HEAD = %d %q (did the HEAD send a body?)\nraw:\n%q", get.StatusCode, body, r.raw)
				}
			},
		},
		pepRow{
			name: "HTTP/1.0: a streamed body is not chunked",
			app:  "http10:app",
			req:  "GET /stream HTTP/1.0\r\nHost: pep.test\r\n\r\n",
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				want := "HTTP/1.0 line 0\nHTTP/1.0 line 1\nHTTP/1.0 line 2\nHTTP/1.0 line 3\nHTTP/1.0 line 4\n"
				r.expect(t, 200, want)
				if len(r.resp.TransferEncoding) > 0 || strings.Contains(strings.ToLower(r.raw), "chunked") {
					t.Errorf("an HTTP/1.0 client got Transfer-Encoding %v:\n%q", r.resp.TransferEncoding, r.raw)
				}
				if r.resp.ContentLength >= 0 && r.resp.ContentLength != int64(len(want)) {
					t.Errorf("Content-Length %d, body %d bytes", r.resp.ContentLength, len(want))
				}
			},
		},
		pepRow{
			name: "HTTP/1.0: a fixed body",
			app:  "http10:app",
			req:  "GET / HTTP/1.0\r\nHost: pep.test\r\n\r\n",
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				r.expect(t, 200, "HTTP/1.0 fixed\n")
				if len(r.resp.TransferEncoding) > 0 || r.resp.ContentLength != 15 {
					t.Errorf("Transfer-Encoding %v, Content-Length %d", r.resp.TransferEncoding, r.resp.ContentLength)
				}
			},
		},
	)

	// threads = 4.
	rows = append(rows,
		pepRow{
			name: "threads: wsgi.multithread is true",
			app:  "multithread:app",
			req:  pepGet("/env"),
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				var got struct{ Multithread, Multiprocess bool }
				pepJSON(t, r, &got)
				if !got.Multithread || !got.Multiprocess {
					t.Errorf("wsgi.multithread %v, wsgi.multiprocess %v; want both true", got.Multithread, got.Multiprocess)
				}
			},
		},
		pepRow{
			name: "threads: 4 slow requests overlap",
			app:  "multithread:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				type run struct {
					Start, End float64
					Thread     int64
				}
				var mu sync.Mutex
				var runs []run
				var wg sync.WaitGroup
				for i := 0; i < 4; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := pepSend(t, b, pepGet("/slow"), 10*time.Second)
						var got run
						if r.resp == nil || r.resp.StatusCode != 200 || json.Unmarshal([]byte(r.body), &got) != nil {
							t.Errorf("GET /slow: %q", r.raw)
							return
						}
						mu.Lock()
						runs = append(runs, got)
						mu.Unlock()
					}()
				}
				wg.Wait()
				if len(runs) != 4 {
					t.FailNow()
				}
				threads := map[int64]bool{}
				lastStart, firstEnd := runs[0].Start, runs[0].End
				for _, r := range runs {
					threads[r.Thread] = true
					lastStart = max(lastStart, r.Start)
					firstEnd = min(firstEnd, r.End)
				}
				// By the app's own clock: every request started before
				// any ended.
				if lastStart >= firstEnd {
					t.Errorf("the four requests did not all run at once: the last started %.3f s after the first ended", lastStart-firstEnd)
				}
				if len(threads) != 4 {
					t.Errorf("served by %d threads, want 4", len(threads))
				}
			},
		},
		pepRow{
			name: "threads: the app's own thread keeps running",
			app:  "multithread:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				ticks := func() (int, bool) {
					var got struct {
						Ticks int
						Alive bool
					}
					pepJSON(t, pepSend(t, b, pepGet("/ticker"), 10*time.Second), &got)
					return got.Ticks, got.Alive
				}
				first, alive := ticks()
				time.Sleep(400 * time.Millisecond)
				second, alive2 := ticks()
				// It ticks every 20 ms: about 20 ticks in 400 ms.
				if !alive || !alive2 || second-first < 5 {
					t.Errorf("ticker thread: %d ticks then %d 400 ms later (alive %v, %v)", first, second, alive, alive2)
				}
			},
		},
	)

	// The environ.
	type environDesc struct {
		Present        map[string]bool   `json:"present"`
		Types          map[string]string `json:"types"`
		Values         map[string]any    `json:"values"`
		InputMethods   []string          `json:"input_methods"`
		ErrorsMethods  []string          `json:"errors_methods"`
		NonStrCGIKeys  []string          `json:"non_str_cgi_keys"`
		HTTPContentKey []string          `json:"http_content_keys"`
	}
	required := []string{"REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
		"wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"}
	checkEnviron := func(t *testing.T, r *pepReply, want map[string]any) environDesc {
		t.Helper()
		var got environDesc
		pepJSON(t, r, &got)
		for _, k := range required {
			if !got.Present[k] {
				t.Errorf("environ lacks %s", k)
			}
		}
		types := map[string]string{"wsgi.version": "tuple", "wsgi.url_scheme": "str", "wsgi.multithread": "bool", "wsgi.multiprocess": "bool", "wsgi.run_once": "bool"}
		for k := range got.Types {
			if !strings.Contains(k, ".") {
				types[k] = "str"
			}
		}
		for k, ty := range types {
			if got.Types[k] != ty {
				t.Errorf("type(environ[%q]) = %s, want %s", k, got.Types[k], ty)
			}
		}
		base := map[string]any{
			"SCRIPT_NAME": "", "wsgi.url_scheme": "http", "wsgi.version": []any{1.0, 0.0},
			"wsgi.multithread": false, "wsgi.multiprocess": true, "wsgi.run_once": false,
		}
		for k, v := range want {
			base[k] = v
		}
		for k, v := range base {
			if fmt.Sprintf("%#v", got.Values[k]) != fmt.Sprintf("%#v", v) {
				t.Errorf("environ[%q] = %#v, want %#v", k, got.Values[k], v)
			}
		}
		if strings.Join(got.InputMethods, " ") != "read readline readlines __iter__" {
			t.Errorf("wsgi.input has only %v", got.InputMethods)
		}
		if strings.Join(got.ErrorsMethods, " ") != "write writelines flush" {
			t.Errorf("wsgi.errors has only %v", got.ErrorsMethods)
		}
		if len(got.NonStrCGIKeys) > 0 {
			t.Errorf("environ keys without a dot whose value is not str: %v", got.NonStrCGIKeys)
		}
		if len(got.HTTPContentKey) > 0 {
			t.Errorf("environ has %v", got.HTTPContentKey)
		}
		return got
	}
	rows = append(rows,
		pepRow{
			name: "environ: required keys and their types",
			app:  "environ_keys:app",
			req:  "GET /env/a%20b?x=1&y=2 HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n",
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				checkEnviron(t, r, map[string]any{
					"REQUEST_METHOD": "GET", "PATH_INFO": "/env/a b", "QUERY_STRING": "x=1&y=2",
					"SERVER_NAME": "example.test", "SERVER_PORT": e2e.PortOf(b.Addr), "SERVER_PROTOCOL": "HTTP/1.1",
				})
				pepLog(t, b, `pep3333 wsgi.errors line for /env/a b`)
			},
		},
		pepRow{
			name: "environ: a POST's CONTENT_TYPE and CONTENT_LENGTH",
			app:  "environ_keys:app",
			req:  "POST /form HTTP/1.1\r\nHost: pep.test\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				checkEnviron(t, r, map[string]any{
					"REQUEST_METHOD": "POST", "PATH_INFO": "/form", "QUERY_STRING": "",
					"CONTENT_TYPE": "text/plain; charset=utf-8", "CONTENT_LENGTH": "5",
					"SERVER_NAME": "pep.test", "SERVER_PORT": e2e.PortOf(b.Addr), "SERVER_PROTOCOL": "HTTP/1.1",
				})
			},
		},
		pepRow{
			name: "environ: HTTP/1.0 without Host",
			app:  "environ_keys:app",
			req:  "GET / HTTP/1.0\r\n\r\n",
			check: func(t *testing.T, b *e2e.Instance, r *pepReply) {
				got := checkEnviron(t, r, map[string]any{
					"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.0",
				})
				name, _ := got.Values["SERVER_NAME"].(string)
				port, _ := got.Values["SERVER_PORT"].(string)
				if name == "" || !regexp.MustCompile(`^[0-9]+$`).MatchString(port) {
					t.Errorf("SERVER_NAME %q, SERVER_PORT %q without a Host header", name, port)
				}
			},
		},
	)

	// Streaming, Content-Length, file_wrapper, connection handling.
	for _, path := range []string{"/endless", "/endless-empty"} {
		rows = append(rows, pepRow{
			name: "close() when the client disconnects mid-response: " + path,
			app:  "close_called:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				p := pepDial(t, b)
				id := strings.TrimPrefix(path, "/")
				io.WriteString(p.c, "GET "+path+"?id="+id+" HTTP/1.1\r\nHost: pep.test\r\n\r\n")
				if _, err := io.ReadFull(p.br, make([]byte, 16384)); err != nil {
					t.Fatalf("reading the start of the endless response: %v", err)
				}
				p.c.Close()
				if got := pepRecorded(t, dir, "close-"+id); got != "closed\n" {
					t.Errorf("close() records %q, want one call", got)
				}
			},
		})
	}
	for _, path := range []string{"/short", "/short-list"} {
		rows = append(rows, pepRow{
			name: "Content-Length shorter than the body: " + path,
			app:  "content_length_mismatch:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				p := pepDial(t, b)
				resp, body, err := p.do(t, "GET "+path+" HTTP/1.1\r\nHost: pep.test\r\n\r\n")
				if err != nil || resp.StatusCode != 200 || body != "hello" || resp.ContentLength != 5 {
					t.Errorf("GET %s = %d %q (Content-Length %d, %v), want 200 \"hello\"", path, resp.StatusCode, body, resp.ContentLength, err)
				}
				// Any byte past the 5 would be read as the start of the
				// next response.
				resp, body, err = p.do(t, "GET /ok HTTP/1.1\r\nHost: pep.test\r\n\r\n")
				if err != nil || resp.StatusCode != 200 || body != "ok\n" {
					t.Errorf("next request on the connection = %d %q (%v)", resp.StatusCode, body, err)
				}
			},
		})
	}
	for _, path := range []string{"/long", "/long-list"} {
		rows = append(rows, pepRow{
			name: "Content-Length longer than the body: " + path,
			app:  "content_length_mismatch:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				// PEP 3333: "the server should close the connection and log
				// or otherwise report the error".
				logged := `content_length_mismatch\[\d+\] [^\n]*(?i:content.length)`
				before := pepLogCount(b, logged)
				// Keep-alive: only berth closing the connection ends the read.
				r := pepSend(t, b, "GET "+path+" HTTP/1.1\r\nHost: pep.test\r\n\r\n", 10*time.Second)
				resp := r.ok(t)
				if resp.StatusCode != 200 || resp.ContentLength != 100 || r.body != "only ten b" || r.bodyErr == nil {
					t.Errorf("GET %s = %d, Content-Length %d, %q (%v); want Content-Length 100 and the 10 bytes, cut; raw:\n%q",
						path, resp.StatusCode, resp.ContentLength, r.body, r.bodyErr, r.raw)
				}
				if r.took > 5*time.Second {
					t.Errorf("berth kept the connection of a short body open (%s)", r.took)
				}
				pepLogMore(t, b, logged, before)
			},
		})
	}
	fileData := bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), 4096)
	fileData = append(fileData, "tail"...)
	fileSum := sha256.Sum256(fileData)
	rows = append(rows, pepRow{
		name: "wsgi.file_wrapper after write()",
		app:  "file_wrapper:app",
		check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
			r := pepSend(t, b, pepGet("/write-then-file"), 10*time.Second)
			r.ok(t)
			want := "prefix:" + string(fileData)
			if r.resp.StatusCode != 200 || r.bodyErr != nil || r.body != want {
				t.Errorf("GET /write-then-file = %d, %d bytes (%v), starting %.20q; want 200, %d bytes: the write() data, then the file",
					r.resp.StatusCode, len(r.body), r.bodyErr, r.body, len(want))
			}
		},
	})
	for _, path := range []string{"/file", "/bytesio", "/file-validated", "/file-nolength"} {
		rows = append(rows, pepRow{
			name: "wsgi.file_wrapper: " + path,
			app:  "file_wrapper:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				r := pepSend(t, b, pepGet(path), 10*time.Second)
				r.ok(t)
				sum := sha256.Sum256([]byte(r.body))
				if r.resp.StatusCode != 200 || r.bodyErr != nil || len(r.body) != len(fileData) || sum != fileSum {
					t.Errorf("GET %s = %d, %d bytes (%v), sha256 %x; want 200, %d bytes, %x",
						path, r.resp.StatusCode, len(r.body), r.bodyErr, sum, len(fileData), fileSum)
				}
				if path != "/bytesio" && r.resp.ContentLength != int64(len(fileData)) {
					t.Errorf("GET %s: Content-Length %d, want the file's %d", path, r.resp.ContentLength, len(fileData))
				}
				// HEAD: the GET's headers, the file's length among them,
				// and no body.
				h := pepSend(t, b, strings.Replace(pepGet(path), "GET", "HEAD", 1), 10*time.Second)
				h.ok(t)
				if path != "/bytesio" && h.resp.ContentLength != int64(len(fileData)) || strings.Contains(h.raw, "tail") {
					t.Errorf("HEAD %s: Content-Length %d, want %d, and no body:\n%q", path, h.resp.ContentLength, len(fileData), h.raw)
				}
			},
		})
	}
	rows = append(rows,
		pepRow{
			name: "Connection: close from an HTTP/1.1 client",
			app:  "connection_close:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				r := pepSend(t, b, pepGet("/"), 10*time.Second)
				r.expect(t, 200, "closing\n")
				if !r.resp.Close {
					t.Errorf("the response lacks Connection: close:\n%q", r.raw)
				}
				if r.took > 5*time.Second {
					t.Errorf("berth kept the connection open after the response (%s)", r.took)
				}
			},
		},
		pepRow{
			name: "HTTP/1.0 without keep-alive is closed after the response",
			app:  "connection_close:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				r := pepSend(t, b, "GET / HTTP/1.0\r\nHost: pep.test\r\n\r\n", 10*time.Second)
				r.expect(t, 200, "closing\n")
				if r.took > 5*time.Second {
					t.Errorf("berth kept the HTTP/1.0 connection open after the response (%s)", r.took)
				}
			},
		},
		pepRow{
			name: "big streamed body: 64 MiB",
			app:  "big_stream:app",
			check: func(t *testing.T, b *e2e.Instance, _ *pepReply) {
				want := sha256.New()
				for i := 0; i < 64; i++ {
					want.Write(bytes.Repeat([]byte(fmt.Sprintf("%08d", i)), (1<<20)/8))
				}
				resp, err := e2e.HTTPClient.Get(b.URL("/"))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got := sha256.New()
				n, err := io.Copy(got, resp.Body)
				if err != nil || resp.StatusCode != 200 || n != 64<<20 || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
					t.Errorf("GET / = %d, %d bytes (%v), sha256 %s; want 200, %d bytes, %s",
						resp.StatusCode, n, err, hex.EncodeToString(got.Sum(nil)), 64<<20, hex.EncodeToString(want.Sum(nil)))
				}
			},
		},
	)
	return rows
}

func pepQuoted(s *string) string {
	if s == nil {
		return "<absent>"
	}
	return fmt.Sprintf("%q", *s)
}
