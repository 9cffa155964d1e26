package journal

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// AccessRecord is one request as the access log tells it. Durations are
// logged in whole microseconds under names that say so (duration_us,
// queue_us); bytes are the response body's.
type AccessRecord struct {
	Method, Path, Proto string
	Status              int
	Bytes               int64
	// Duration runs from the request's header block to the end of its
	// response; QueueWait is the part of it spent waiting for a worker.
	Duration, QueueWait time.Duration
	Remote, RequestID   string
	UserAgent, Referer  string
}

// WithAccessFormat returns l with access records in format: as they are
// ("fields", or ""), or, for "combined", as lines of Apache's and nginx's
// combined format written to w (berth's stdout), apart from the other
// records, for the tools that read that format; its other records are
// unchanged.
func WithAccessFormat(l *slog.Logger, format string, w io.Writer) *slog.Logger {
	if format != "combined" {
		return l
	}
	return slog.New(&combinedHandler{Handler: l.Handler(), out: &lockedWriter{w: w}})
}

// combinedHandler writes access records as combined lines and hands every
// other record on.
type combinedHandler struct {
	slog.Handler
	out io.Writer
}

func (h *combinedHandler) Handle(ctx context.Context, r slog.Record) error {
	rec, ok := accessOf(r)
	if !ok {
		return h.Handler.Handle(ctx, r)
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	_, err := h.out.Write(AppendCombined(nil, rec, t))
	return err
}

func (h *combinedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &combinedHandler{Handler: h.Handler.WithAttrs(attrs), out: h.out}
}

func (h *combinedHandler) WithGroup(name string) slog.Handler {
	return &combinedHandler{Handler: h.Handler.WithGroup(name), out: h.out}
}

// accessOf reads an access record back from the record Access made (its
// first attribute is the method, its fourth the status).
func accessOf(r slog.Record) (AccessRecord, bool) {
	var rec AccessRecord
	n := 0
	r.Attrs(func(a slog.Attr) bool {
		if n == 0 && a.Key != KeyMethod {
			return false
		}
		n++
		switch a.Key {
		case KeyMethod:
			rec.Method = a.Value.String()
		case KeyPath:
			rec.Path = a.Value.String()
		case KeyProto:
			rec.Proto = a.Value.String()
		case KeyStatus:
			rec.Status = int(a.Value.Int64())
		case KeyBytes:
			rec.Bytes = a.Value.Int64()
		case KeyRemote:
			rec.Remote = a.Value.String()
		case KeyUserAgent:
			rec.UserAgent = a.Value.String()
		case KeyReferer:
			rec.Referer = a.Value.String()
		}
		return true
	})
	return rec, n > 0 && rec.Status != 0
}

// AppendCombined appends rec as one line of the combined log format,
//
//	127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 2326 "http://ref/" "curl/8.0"
//
// escaping, as nginx does, '"', '\' and every byte outside printable ASCII
// in the quoted fields (\x22), so that no client can end a field or the
// line early.
func AppendCombined(b []byte, rec AccessRecord, t time.Time) []byte {
	b = append(b, orDash(rec.Remote)...)
	b = append(b, " - - ["...)
	b = t.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendEscaped(b, rec.Method)
	b = append(b, ' ')
	b = appendEscaped(b, rec.Path)
	if rec.Proto != "" {
		b = append(b, ' ')
		b = appendEscaped(b, rec.Proto)
	}
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(rec.Status), 10)
	b = append(b, ' ')
	if rec.Bytes > 0 {
		b = strconv.AppendInt(b, rec.Bytes, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " \""...)
	b = appendEscaped(b, orDash(rec.Referer))
	b = append(b, "\" \""...)
	b = appendEscaped(b, orDash(rec.UserAgent))
	return append(b, "\"\n"...)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

const hexDigits = "0123456789ABCDEF"

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}
