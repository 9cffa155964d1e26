package front

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/supervisor"
)

// What the front counts and logs of each request: its series (by the
// route's app and this listener, resolved once per route, so a request
// costs a few atomic adds) and its access record. Both are written where
// a request ends: access, or a streamed response's done.

// SetMetrics makes the front count its requests and connections in l's
// series. Call it before Serve.
func (s *Server) SetMetrics(l *metrics.Listener) {
	s.metrics = l
	s.unrouted = l.Route("")
	bindMetrics(l, s.routes.Load())
}

// countConn counts a connection's changes of state in the listener's
// series (connState calls it, with the hand-over's and idle_exit's own).
func (s *Server) countConn(st fasthttp.ConnState) {
	if s.metrics == nil {
		return
	}
	switch st {
	case fasthttp.StateNew:
		s.metrics.Accepted()
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		// A hijacked connection (a close-delimited body) is berth's own
		// from then on, and closed at its end.
		s.metrics.Closed()
	}
}

// bindMetrics gives each route its series, when the front counts.
func bindMetrics(l *metrics.Listener, rs *routes) {
	if l == nil {
		return
	}
	for _, rt := range rs.list {
		rt.m = l.Route(rt.app.Name())
	}
}

// timed reports whether requests need their start time: for the access
// log or the request series.
func (s *Server) timed() bool {
	return s.logAccess || s.unrouted.On()
}

// routeOf is the series a request counts in: its route's, or the
// listener's for requests that reached no app.
func (s *Server) routeOf(env *environ) *metrics.Route {
	if env.route != nil && env.route.m != nil {
		return env.route.m
	}
	return s.unrouted
}

// countRequest counts a finished request and returns its duration (0 when
// its start was not taken).
func (s *Server) countRequest(ctx *fasthttp.RequestCtx, env *environ, start time.Time, n int64) time.Duration {
	if start.IsZero() {
		return 0
	}
	d := time.Since(start)
	s.routeOf(env).Request(ctx.Method(), ctx.Response.StatusCode(), d, n)
	return d
}

// bodyBytes is the body a response sends: n, the app's, or else the one
// berth itself answered with (a 404, 503 or 504 has a short message).
func bodyBytes(ctx *fasthttp.RequestCtx, n int64) int64 {
	if n == 0 && !ctx.Response.SkipBody && !ctx.IsHead() {
		return int64(len(ctx.Response.Body()))
	}
	return n
}

// accessRecord is the request's access record, but for its duration and
// bytes, known at its end.
func accessRecord(ctx *fasthttp.RequestCtx, env *environ) journal.AccessRecord {
	h := &ctx.Request.Header
	return journal.AccessRecord{
		Method:    string(ctx.Method()),
		Path:      string(h.RequestURI()),
		Proto:     string(h.Protocol()),
		Status:    ctx.Response.StatusCode(),
		QueueWait: env.wait,
		Remote:    clientIP(ctx, env),
		RequestID: string(requestID(ctx)),
		UserAgent: string(h.UserAgent()),
		Referer:   string(h.Referer()),
	}
}

// streamDone is a streamed response's end: it counts the request and
// logs its record, made now, while ctx still holds the request.
func (s *Server) streamDone(ctx *fasthttp.RequestCtx, env *environ, log *slog.Logger, start time.Time) func(n int64) {
	m := s.routeOf(env)
	method := metricsMethod(ctx.Method())
	var rec journal.AccessRecord
	logged := s.logAccess && log.Enabled(context.Background(), slog.LevelInfo)
	if logged {
		rec = accessRecord(ctx, env)
	}
	status := ctx.Response.StatusCode()
	return func(n int64) {
		if start.IsZero() {
			return
		}
		d := time.Since(start)
		m.Request(method, status, d, n)
		if logged {
			rec.Duration, rec.Bytes = d, n
			journal.Access(log, rec)
		}
	}
}

// metricsMethod copies a method the series will read after ctx is reused:
// the usual ones are constants, so that needs no allocation.
func metricsMethod(m []byte) []byte {
	for _, k := range knownMethods {
		if string(m) == string(k) {
			return k
		}
	}
	return append([]byte(nil), m...)
}

var knownMethods = [][]byte{[]byte("GET"), []byte("HEAD"), []byte("POST"), []byte("PUT"), []byte("DELETE"), []byte("PATCH"), []byte("OPTIONS")}

// queueWait is how long a request waited for a worker: the exchange says,
// and a request refused after queue_timeout waited all of it.
func queueWait(ex *supervisor.Exchange, err error, rt *route) time.Duration {
	switch {
	case err == nil:
		return ex.QueueWait
	case errors.Is(err, supervisor.ErrQueueTimeout):
		return rt.app.Config().QueueTimeout
	}
	return 0
}
