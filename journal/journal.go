// Package journal is berth's logging: log/slog handlers for native
// journald entries with fields, for human-readable text lines and for JSON
// lines on stderr, and the field names every package uses (app, pid,
// generation, and the access record).
//
// Everything logs through *slog.Logger, so the format is chosen once, at
// start-up, and no caller knows which it is.
package journal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/journal"
)

// Field names shared by every package, so that records about the same
// thing carry the same keys.
const (
	KeyApp      = "app"
	KeyPID      = "pid"
	KeyListener = "listener"
)

// New returns a logger that writes text lines to w, dropping records below
// level.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(&TextHandler{out: &lockedWriter{w: w}, level: level})
}

// Formats of NewFormat.
const (
	// FormatAuto is the journal when stderr is connected to journald
	// (JOURNAL_STREAM), text otherwise.
	FormatAuto    = "auto"
	FormatText    = "text"
	FormatJSON    = "json"
	FormatJournal = "journal"
)

// NewFormat returns a logger in one of the formats above, writing to w
// (journal entries go to journald instead).
func NewFormat(format string, w io.Writer, level slog.Leveler) (*slog.Logger, error) {
	switch format {
	case FormatAuto, "":
		if ok, _ := journal.StderrIsJournalStream(); ok && journal.Enabled() {
			return slog.New(NewJournal(level)), nil
		}
		return New(w, level), nil
	case FormatText:
		return New(w, level), nil
	case FormatJSON:
		return slog.New(slog.NewJSONHandler(&lockedWriter{w: w}, &slog.HandlerOptions{Level: level})), nil
	case FormatJournal:
		if !journal.Enabled() {
			return nil, fmt.Errorf("log format %q: journald is not running here", format)
		}
		return slog.New(NewJournal(level)), nil
	}
	return nil, fmt.Errorf("unknown log format %q: want auto, text, json or journal", format)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TextHandler writes "15:04:05.000 LEVEL app[pid] message key=value ...".
// The app and pid fields become the line's prefix because they are what an
// operator scans for; other fields follow the message.
type TextHandler struct {
	out    io.Writer
	level  slog.Leveler
	app    string
	pid    string
	attrs  []byte // preformatted " key=value" pairs from WithAttrs
	groups string
}

// Enabled reports whether records at l are written.
func (h *TextHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// Handle writes one record as one line. A multi-line message (a Python
// traceback) keeps its lines, indented, so that it stays readable and a
// reader can tell where it ends.
func (h *TextHandler) Handle(_ context.Context, r slog.Record) error {
	buf := make([]byte, 0, 256)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	buf = t.AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00 ")
	buf = append(buf, levelName(r.Level)...)
	app, pid := h.app, h.pid
	var rest []byte
	r.Attrs(func(a slog.Attr) bool {
		switch {
		case a.Key == KeyApp && h.groups == "":
			app = a.Value.String()
		case a.Key == KeyPID && h.groups == "":
			pid = a.Value.String()
		case (a.Key == KeyMethod || a.Key == KeyPath) && h.groups == "":
			// Already the message of an access record.
		default:
			rest = appendAttr(rest, h.groups, a)
		}
		return true
	})
	if app != "" || pid != "" {
		buf = append(buf, ' ')
		if app == "" {
			app = "berth"
		}
		buf = append(buf, app...)
		if pid != "" {
			buf = append(buf, '[')
			buf = append(buf, pid...)
			buf = append(buf, ']')
		}
	}
	buf = append(buf, ' ')
	msg := strings.TrimRight(r.Message, "\n")
	buf = append(buf, strings.ReplaceAll(msg, "\n", "\n    ")...)
	buf = append(buf, h.attrs...)
	buf = append(buf, rest...)
	buf = append(buf, '\n')
	_, err := h.out.Write(buf)
	return err
}

// WithAttrs returns a handler whose lines carry attrs.
func (h *TextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]byte(nil), h.attrs...)
	for _, a := range attrs {
		switch {
		case a.Key == KeyApp && h.groups == "":
			n.app = a.Value.String()
		case a.Key == KeyPID && h.groups == "":
			n.pid = a.Value.String()
		default:
			n.attrs = appendAttr(n.attrs, h.groups, a)
		}
	}
	return &n
}

// WithGroup returns a handler that prefixes keys with name.
func (h *TextHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.groups = h.groups + name + "."
	return &n
}

func levelName(l slog.Level) string {
	switch {
	case l >= LevelCritical:
		return "CRIT "
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN "
	case l >= slog.LevelInfo:
		return "INFO "
	}
	return "DEBUG"
}

func appendAttr(buf []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			buf = appendAttr(buf, prefix+a.Key+".", g)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = append(buf, prefix...)
	buf = append(buf, a.Key...)
	buf = append(buf, '=')
	s := valueString(a.Value)
	if needsQuote(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

// valueString is a resolved attribute value as text.
func valueString(v slog.Value) string {
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
		return fmt.Sprint(v.Any())
	}
	return v.String()
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '=' || r == utf8.RuneError || r == 0x7f {
			return true
		}
	}
	return false
}

// Access logs one served request (see AccessRecord): the line operators
// grep first. In the journal its fields are HTTP_METHOD, HTTP_PATH,
// HTTP_PROTOCOL, HTTP_STATUS, BYTES, DURATION_USEC, QUEUE_USEC,
// REMOTE_ADDR, REQUEST_ID, HTTP_USER_AGENT and HTTP_REFERER. A logger made
// WithAccessFormat(..., "combined", w) writes it to w as a combined line
// instead.
func Access(l *slog.Logger, r AccessRecord) {
	l.LogAttrs(context.Background(), slog.LevelInfo, r.Method+" "+r.Path,
		slog.String(KeyMethod, r.Method),
		slog.String(KeyPath, r.Path),
		slog.String(KeyProto, r.Proto),
		slog.Int(KeyStatus, r.Status),
		slog.Int64(KeyBytes, r.Bytes),
		slog.Int64(KeyDuration, r.Duration.Microseconds()),
		slog.Int64(KeyQueue, r.QueueWait.Microseconds()),
		slog.String(KeyRemote, r.Remote),
		slog.String(KeyRequestID, r.RequestID),
		slog.String(KeyUserAgent, r.UserAgent),
		slog.String(KeyReferer, r.Referer),
	)
}
