package journal

import (
	"context"
	"log/slog"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// LevelCritical is Python's CRITICAL, above slog's ERROR.
const LevelCritical = slog.Level(12)

// Field names of the access record, shared by every handler so that the
// journal, JSON and text lines say the same thing.
const (
	KeyMethod     = "method"
	KeyPath       = "path"
	KeyStatus     = "status"
	KeyProto      = "proto"
	KeyBytes      = "bytes"
	KeyDuration   = "duration_us"
	KeyQueue      = "queue_us"
	KeyRemote     = "remote"
	KeyRequestID  = "request_id"
	KeyUserAgent  = "user_agent"
	KeyReferer    = "referer"
	KeyGeneration = "generation"
	KeyLogger     = "logger"
)

// journalFields maps berth's attribute keys to journal field names; keys
// not listed become BERTH_<KEY>.
var journalFields = map[string]string{
	KeyApp:        "BERTH_APP",
	KeyGeneration: "BERTH_GENERATION",
	KeyPID:        "BERTH_WORKER_PID",
	KeyListener:   "BERTH_LISTENER",
	KeyMethod:     "HTTP_METHOD",
	KeyPath:       "HTTP_PATH",
	KeyStatus:     "HTTP_STATUS",
	KeyProto:      "HTTP_PROTOCOL",
	KeyBytes:      "BYTES",
	KeyDuration:   "DURATION_USEC",
	KeyQueue:      "QUEUE_USEC",
	KeyRemote:     "REMOTE_ADDR",
	KeyRequestID:  "REQUEST_ID",
	KeyUserAgent:  "HTTP_USER_AGENT",
	KeyReferer:    "HTTP_REFERER",
	KeyLogger:     "PYTHON_LOGGER",
}

// JournalHandler writes each record as a native journal entry, its
// attributes as fields, so that `journalctl BERTH_APP=shop` or
// `journalctl HTTP_STATUS=500` select records without parsing text.
type JournalHandler struct {
	level  slog.Leveler
	fields map[string]string
	prefix string // group prefix for keys
}

// NewJournal returns a handler that sends to journald.
func NewJournal(level slog.Leveler) *JournalHandler {
	return &JournalHandler{level: level, fields: map[string]string{"SYSLOG_IDENTIFIER": "berth"}}
}

// Enabled reports whether records at l are written.
func (h *JournalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// Handle sends one record as one entry; a multi-line message (a Python
// traceback) stays one entry.
func (h *JournalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := make(map[string]string, len(h.fields)+r.NumAttrs())
	for k, v := range h.fields {
		vars[k] = v
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(vars, h.prefix, a)
		return true
	})
	return journal.Send(r.Message, priority(r.Level), vars)
}

// WithAttrs returns a handler whose entries carry attrs.
func (h *JournalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.fields = make(map[string]string, len(h.fields)+len(attrs))
	for k, v := range h.fields {
		n.fields[k] = v
	}
	for _, a := range attrs {
		addField(n.fields, h.prefix, a)
	}
	return &n
}

// WithGroup returns a handler that prefixes field names with name.
func (h *JournalHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.prefix = h.prefix + name + "_"
	return &n
}

func addField(vars map[string]string, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			addField(vars, prefix+a.Key+"_", g)
		}
		return
	}
	name, ok := journalFields[a.Key]
	if !ok || prefix != "" {
		name = "BERTH_" + fieldName(prefix+a.Key)
	}
	if a.Value.Kind() == slog.KindDuration {
		// DURATION_USEC and the like: a number a query can compare.
		vars[name] = strconv.FormatInt(a.Value.Duration().Microseconds(), 10)
		return
	}
	vars[name] = valueString(a.Value)
}

// fieldName makes key a valid journal field name: upper-case letters,
// digits and underscores.
func fieldName(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, key)
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= LevelCritical:
		return journal.PriCrit
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
