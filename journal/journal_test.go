package journal

import (
	"bytes"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTextHandler(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger)
		want string // regexp for the line after the timestamp
	}{
		{"plain", func(l *slog.Logger) { l.Info("listening", "addr", "127.0.0.1:8000") },
			`^INFO  listening addr=127.0.0.1:8000\n$`},
		{"app and pid prefix", func(l *slog.Logger) { l.With(KeyApp, "shop").Warn("worker exited", KeyPID, 42, "code", 1) },
			`^WARN  shop\[42\] worker exited code=1\n$`},
		{"quoting and errors", func(l *slog.Logger) { l.Error("boot failed", "err", errors.New("no module named x")) },
			`^ERROR boot failed err="no module named x"\n$`},
		{"multi-line message indented", func(l *slog.Logger) { l.Error("Traceback:\n  File x\nValueError\n") },
			`^ERROR Traceback:\n      File x\n    ValueError\n$`},
		{"debug dropped", func(l *slog.Logger) { l.Debug("noise") }, `^$`},
		{"access", func(l *slog.Logger) {
			Access(l.With(KeyApp, "hello"), AccessRecord{Method: "GET", Path: "/a b", Proto: "HTTP/1.1", Status: 200, Bytes: 13,
				Duration: 1500 * time.Microsecond, QueueWait: 250 * time.Microsecond, Remote: "127.0.0.1", RequestID: "abc", UserAgent: "curl/8.0"})
		}, `^INFO  hello GET /a b proto=HTTP/1.1 status=200 bytes=13 duration_us=1500 queue_us=250 remote=127.0.0.1 request_id=abc user_agent=curl/8.0 referer=""\n$`},
		{"groups", func(l *slog.Logger) { l.WithGroup("q").Info("x", "depth", 3) }, `^INFO  x q.depth=3\n$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(New(&buf, slog.LevelInfo))
			got := buf.String()
			if got != "" {
				ts := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\S* `)
				if !ts.MatchString(got) {
					t.Fatalf("line %q does not start with a timestamp", got)
				}
				got = ts.ReplaceAllString(got, "")
			}
			if !regexp.MustCompile(tc.want).MatchString(got) {
				t.Errorf("got %q, want match for %q", got, tc.want)
			}
			if strings.Count(got, "\n") > 1 && !strings.Contains(got, "\n    ") {
				t.Errorf("multi-line record not indented: %q", got)
			}
		})
	}
}
