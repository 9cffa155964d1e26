package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// hostile are header values a client controls, each of which would end a
// field, a quoted string or the line itself if written as it came.
var hostile = []string{
	`plain`,
	`quote " and \ backslash`,
	"new\nline and\rreturn",
	"escape \x1b[31m red",
	"nul \x00 and del \x7f",
	"latin-1 \xe9 not UTF-8",
	`{"injected":"field"}`,
	"unicode ✓",
}

// TestAccessJSONEscapes: in JSON lines, every field a client sends comes
// back from a JSON parser as one field with the value sent (bytes that
// are not UTF-8 replaced), and the record stays one line.
func TestAccessJSONEscapes(t *testing.T) {
	for _, v := range hostile {
		t.Run(v, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := NewFormat(FormatJSON, &buf, slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			Access(l, AccessRecord{Method: "GET", Path: "/" + v, Status: 200, UserAgent: v, Referer: v, RequestID: "id", Duration: time.Millisecond})
			if n := strings.Count(buf.String(), "\n"); n != 1 {
				t.Fatalf("record is %d lines: %q", n, buf.String())
			}
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("not JSON: %v: %q", err, buf.String())
			}
			want := strings.ToValidUTF8(v, "\ufffd")
			for _, k := range []string{KeyUserAgent, KeyReferer} {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
			if got[KeyPath] != "/"+want || got[KeyDuration] != float64(1000) || got["injected"] != nil {
				t.Errorf("record %v", got)
			}
		})
	}
}

// TestCombined: the combined line as Apache and nginx write it, with
// every byte that could end a field or the line escaped.
func TestCombined(t *testing.T) {
	at := time.Date(2000, 10, 10, 13, 55, 36, 0, time.FixedZone("", -7*3600))
	for _, tc := range []struct {
		name string
		rec  AccessRecord
		want string
	}{
		{"full", AccessRecord{Method: "GET", Path: "/apache_pb.gif", Proto: "HTTP/1.0", Status: 200, Bytes: 2326, Remote: "127.0.0.1",
			Referer: "http://www.example.com/start.html", UserAgent: "Mozilla/4.08 [en] (Win98; I ;Nav)"},
			`127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"` + "\n"},
		{"empty fields are dashes", AccessRecord{Method: "HEAD", Path: "/", Proto: "HTTP/1.1", Status: 304},
			`- - - [10/Oct/2000:13:55:36 -0700] "HEAD / HTTP/1.1" 304 - "-" "-"` + "\n"},
		{"hostile", AccessRecord{Method: "GET", Path: "/a\"b", Proto: "HTTP/1.1", Status: 404, Bytes: 1, Remote: "::1",
			Referer: "x\" \"y", UserAgent: "a\\b\nc\x1b\xe9"},
			`::1 - - [10/Oct/2000:13:55:36 -0700] "GET /a\x22b HTTP/1.1" 404 1 "x\x22 \x22y" "a\x5Cb\x0Ac\x1B\xE9"` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(AppendCombined(nil, tc.rec, at)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestAccessFormatCombined: with access_format = "combined", access
// records go to their own writer as combined lines, the other records
// where they went.
func TestAccessFormatCombined(t *testing.T) {
	var logs, access bytes.Buffer
	l := WithAccessFormat(New(&logs, slog.LevelInfo), "combined", &access)
	l.Info("listening", "addr", "x")
	Access(l.With(KeyApp, "shop"), AccessRecord{Method: "GET", Path: "/", Proto: "HTTP/1.1", Status: 200, Bytes: 5, Remote: "10.0.0.1", UserAgent: "ua"})
	if !strings.Contains(logs.String(), "listening addr=x") || strings.Contains(logs.String(), "GET") {
		t.Errorf("other records: %q", logs.String())
	}
	if !strings.HasPrefix(access.String(), "10.0.0.1 - - [") || !strings.HasSuffix(access.String(), `] "GET / HTTP/1.1" 200 5 "-" "ua"`+"\n") {
		t.Errorf("access line: %q", access.String())
	}
}

// captured keeps the attributes of the records it handles.
type captured struct{ attrs []slog.Attr }

func (c *captured) Enabled(context.Context, slog.Level) bool { return true }
func (c *captured) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool { c.attrs = append(c.attrs, a); return true })
	return nil
}
func (c *captured) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *captured) WithGroup(string) slog.Handler      { return c }

// TestAccessJournalFields: an access record's journal fields, which
// `journalctl HTTP_STATUS=500` and the like select on.
func TestAccessJournalFields(t *testing.T) {
	c := &captured{}
	Access(slog.New(c), AccessRecord{Method: "POST", Path: "/p", Proto: "HTTP/1.1", Status: 201, Bytes: 7, Duration: 2500 * time.Microsecond,
		QueueWait: 40 * time.Microsecond, Remote: "::1", RequestID: "r1", UserAgent: "ua", Referer: "ref"})
	vars := map[string]string{}
	for _, a := range c.attrs {
		addField(vars, "", a)
	}
	want := map[string]string{"HTTP_METHOD": "POST", "HTTP_PATH": "/p", "HTTP_PROTOCOL": "HTTP/1.1", "HTTP_STATUS": "201", "BYTES": "7",
		"DURATION_USEC": "2500", "QUEUE_USEC": "40", "REMOTE_ADDR": "::1", "REQUEST_ID": "r1", "HTTP_USER_AGENT": "ua", "HTTP_REFERER": "ref"}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
	if len(vars) != len(want) {
		t.Errorf("fields %v, want %v", vars, want)
	}
}
