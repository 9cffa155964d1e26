// Package front is berth's HTTP/1.1 side: it receives each request whole —
// header block and body — from the client, hands it to the app's worker
// pool as one frame, and writes the worker's answer back. Python never
// parses HTTP and never waits on a slow client; this package does both.
// (A large body over TCP is received whole in the kernel's queue, not
// read, and the worker reads it from there: see socketBody.)
//
// The HTTP library is github.com/valyala/fasthttp rather than net/http,
// chosen by measurement: a hello handler pinned to one core with wrk on the
// other (GOMAXPROCS=1, taskset, wrk -c50, 4 interleaved rounds) served a
// median 81k req/s with fasthttp and 52k with net/http (1.55×). The front
// shares the machine's cores with the Python workers, so every cycle it
// saves goes to the app. fasthttp also answers pipelined requests in one
// write, exposes the raw request line and headers (needed to refuse
// ambiguous framing), and lets a 100-continue be refused before the body
// is sent.
package front

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/units"
	"github.com/berthd/berth/wire"
)

// Server serves one listener: it routes each request to one of the apps
// mounted on the listener, which a reload may change while connections
// stay open.
type Server struct {
	// Fixed by New, read by every connection's goroutine.
	srv       *fasthttp.Server
	listener  units.Listener
	log       *slog.Logger
	logAccess bool
	envs      sync.Pool // *environ, each a request's working memory

	// Swapped whole by SetApps on a reload; a request reads the routes
	// it started with.
	routes atomic.Pointer[routes]

	// Guarded by poolsMu: the apps' shared-memory bodies, by app name,
	// kept across reloads.
	poolsMu sync.Mutex
	pools   map[string]*sharedPool

	// Guarded by lnMu: what Serve accepts from, closed by HandOver.
	lnMu sync.Mutex
	ln   net.Listener

	// Set before Serve: handovers and adopted are the connections passed
	// to the next berth and taken from the last one (handover.go; Serve
	// takes adopted); metrics and unrouted are the listener's series
	// (metrics.go), nil until SetMetrics.
	handovers *handovers
	adopted   []net.Conn
	metrics   *metrics.Listener
	unrouted  *metrics.Route

	// activity is touched by every connection (activity.go, for
	// idle_exit); it has its own atomics.
	activity activity
}

// New returns a server for listener l that routes requests to apps by
// their mounts and hosts, logging an access record per request when
// access is set.
func New(l units.Listener, apps []*supervisor.App, log *slog.Logger, access bool) *Server {
	s := &Server{listener: l, log: log.With(journal.KeyListener, l.Name), logAccess: access}
	s.activity.touch()
	s.envs.New = func() any { return new(environ) }
	s.SetApps(apps)
	s.srv = &fasthttp.Server{
		Handler:      s.handle,
		ErrorHandler: s.errorHandler,
		ConnState:    s.connState,
		ExpectHandler: func(ctx *fasthttp.RequestCtx) int {
			// Routed as the handler will route it, to refuse an upload
			// past the app's limit before it is sent.
			h := &ctx.Request.Header
			env := s.envs.Get().(*environ)
			defer s.putEnv(env)
			if status, _ := env.decodePath(h); status != 0 {
				return status
			}
			if rt := s.routes.Load().match(requestHost(h), routePath(env.path)); rt != nil && int64(h.ContentLength()) > rt.maxBody {
				// The answer names the limit, as the other 413 does.
				s.reject(ctx, fasthttp.StatusRequestEntityTooLarge, rt.tooLarge)
				return fasthttp.StatusRequestEntityTooLarge
			}
			return fasthttp.StatusContinue
		},
		Name:                          "",
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		ReduceMemoryUsage:             true,
		ReadBufferSize:                l.MaxHeaderBytes,
		WriteBufferSize:               writeBufferSize,
		ReadTimeout:                   l.HeaderTimeout,
		// Bodies are read by berth (readBody), which keeps small ones in
		// memory and spills large ones to a temp file as they arrive.
		StreamRequestBody: true,
		// Once the header block is in, the body gets its own deadline:
		// a large upload on a slow link is not a slow-loris attack.
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: l.BodyTimeout, MaxRequestBodySize: int(s.routes.Load().maxBuffer)}
		},
		// Every response's write gets write_timeout (a streamed body
		// then renews it after each write that made progress): a client
		// that stops reading must not hold a connection, or a worker,
		// for ever.
		WriteTimeout:       l.WriteTimeout,
		IdleTimeout:        l.IdleTimeout,
		MaxRequestBodySize: int(s.routes.Load().maxBuffer),
		// Past max_connections a new connection is answered 503 and
		// closed at once.
		Concurrency: cmp.Or(l.MaxConnections, units.DefaultMaxConnections()),
		Logger:      fasthttpLogger{s.log},
	}
	return s
}

// SetApps routes the listener's requests to apps (by their current
// configuration's mounts, hosts and limits). A reload calls it again with
// the apps' new generations.
func (s *Server) SetApps(apps []*supervisor.App) {
	rs := newRoutes(apps, s.log)
	bindMetrics(s.metrics, rs)
	s.poolsMu.Lock()
	pools := make(map[string]*sharedPool, len(rs.list))
	for _, rt := range rs.list {
		name := rt.app.Name()
		p := pools[name]
		if p == nil {
			if p = s.pools[name]; p == nil {
				p = &sharedPool{}
			}
			pools[name] = p
		}
		rt.shared = p
	}
	gone := s.pools
	s.pools = pools
	s.poolsMu.Unlock()
	s.routes.Store(rs)
	for name, p := range gone {
		if pools[name] == nil {
			// Requests in flight give theirs back to a drained pool,
			// which frees them.
			p.drain()
		}
	}
}

// putEnv returns env to the pool, without a body buffer grown past what
// is worth keeping for every idle environ.
func (s *Server) putEnv(env *environ) {
	if cap(env.body) > keepBody {
		b := env.body[:0]
		bigBodies.Put(&b)
		env.body = nil
	}
	s.envs.Put(env)
}

// writeBufferSize is fasthttp's buffer for writing a response whole. A
// response larger than it goes out in two writes: fasthttp writes one with
// a single writev only to a *net.TCPConn, and berth's are clientConns. At
// the default 4 KiB that made a 16 KiB response cost berth 2-3 us more
// (bench/RESULTS.md); at 64 KiB, most pages are one write again, with a
// copy into the buffer (1 us at 16 KiB) where writev took none, and a
// larger body is big enough that a second write is noise. With ReduceMemoryUsage
// a connection holds a writer only while it writes a response; a streamed
// one holds it while it streams, and so does the worker thread it comes
// from, which bounds how many are held.
const writeBufferSize = 64 << 10

// keepBody is the largest request body buffer a pooled environ keeps.
const keepBody = 64 << 10

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	cl := newClientListener(s.withAdopted(ln), s.listener, s.log)
	cl.handovers = s.handovers
	return s.srv.Serve(cl)
}

// Shutdown stops accepting, lets in-flight requests finish (their
// responses carry Connection: close) and closes idle connections.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.ShutdownWithContext(ctx)
}

// fasthttpLogger sends fasthttp's own messages (connection-level errors
// such as a client that vanished) to the debug log.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

// errorHandler answers requests fasthttp could not read. The connection
// is closed after the response: after a framing error the position of the
// next request on it is unknown.
func (s *Server) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		s.reject(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request header fields too large")
	case codingUnknown(err):
		s.reject(ctx, fasthttp.StatusNotImplemented, "transfer coding not implemented: only chunked is")
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		// fasthttp's word for Transfer-Encoding in HTTP/1.0: faulty
		// framing (RFC 9112 section 6.1).
		s.reject(ctx, fasthttp.StatusBadRequest, "malformed framing: Transfer-Encoding in HTTP/1.0")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.reject(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large")
	case errors.As(err, &ne) && ne.Timeout():
		s.reject(ctx, fasthttp.StatusRequestTimeout, "request not received in time")
	default:
		s.reject(ctx, fasthttp.StatusBadRequest, "malformed request")
	}
	s.log.Debug("refused a request fasthttp could not read", "err", err, "remote", ctx.RemoteAddr().String())
}

// codingUnknown reports whether fasthttp refused a Transfer-Encoding
// that names a coding other than chunked (501, RFC 9112 section 6.1),
// rather than chunked used twice (400). fasthttp says so only in its
// error's text, quoting the field's value.
func codingUnknown(err error) bool {
	_, v, found := strings.Cut(err.Error(), `unsupported transfer-encoding: "`)
	if !found {
		return false
	}
	v, _, _ = strings.Cut(v, `"`)
	for _, c := range strings.Split(v, ",") {
		if !strings.EqualFold(strings.TrimSpace(c), "chunked") {
			return true
		}
	}
	return false
}

// reject answers with a short plain-text body and closes the connection.
func (s *Server) reject(ctx *fasthttp.RequestCtx, status int, msg string) {
	s.unavailable(ctx, status, msg)
	ctx.SetConnectionClose()
	setLinger(ctx.Conn())
}

// unavailable answers 503/502/504 (or any status berth itself gives)
// with a short plain-text body, keeping the connection: the request was
// read whole, so the connection is still in step.
func (s *Server) unavailable(ctx *fasthttp.RequestCtx, status int, msg string) {
	id := append([]byte(nil), requestID(ctx)...)
	ctx.Response.Reset()
	ctx.Response.Header.SetBytesV("X-Request-ID", id)
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(msg + "\n")
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
}

// heldBodyKey is the user value under which a request keeps the out-ring
// place of its response's body (supervisor.Exchange.Hold).
type heldBodyKey struct{}

// copyBody is the largest one-frame response body copied out of the
// worker's frame or out ring (freeing the worker before the client has
// it); a larger one is written from the frame, holding the worker
// meanwhile, so that memory does not grow with the size of an app's list.
// The worker puts no body larger than this in its ring.
const copyBody = wire.OutBodyMax

// fileLength is how many bytes a file part sends.
func fileLength(p supervisor.Part) (int64, bool) {
	fi, err := p.File.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	n := max(fi.Size()-p.Offset, 0)
	if p.Count >= 0 {
		n = min(n, p.Count)
	}
	return n, true
}

func (s *Server) poolError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, supervisor.ErrQueueFull), errors.Is(err, supervisor.ErrQueueTimeout), errors.Is(err, supervisor.ErrStopped):
		s.unavailable(ctx, fasthttp.StatusServiceUnavailable, "service unavailable: "+err.Error())
	case errors.Is(err, supervisor.ErrTimeout):
		s.unavailable(ctx, fasthttp.StatusGatewayTimeout, "gateway timeout: the app did not answer within its timeout")
	default:
		s.unavailable(ctx, fasthttp.StatusBadGateway, "bad gateway: the worker serving this request died")
	}
}

// writeHead copies the app's status and headers into the response. It
// returns the Content-Length the app declared, or -1.
func (s *Server) writeHead(ctx *fasthttp.RequestCtx, ex *supervisor.Exchange) int {
	resp := &ctx.Response
	resp.SetStatusCode(ex.Head.Status)
	if len(ex.Head.Reason) > 0 {
		resp.Header.SetStatusMessage(ex.Head.Reason)
	}
	contentLength := -1
	for _, hd := range ex.Head.Headers {
		switch {
		case equalFold(hd.Name, "content-type"):
			resp.Header.SetContentTypeBytes(hd.Value)
		case equalFold(hd.Name, "content-length"):
			if n, err := strconv.Atoi(string(hd.Value)); err == nil && n >= 0 {
				contentLength = n
			}
		case equalFold(hd.Name, "connection"):
			if bytes.Contains(bytes.ToLower(hd.Value), []byte("close")) {
				ctx.SetConnectionClose()
			}
		case equalFold(hd.Name, "transfer-encoding"), equalFold(hd.Name, "keep-alive"):
			// Hop-by-hop: berth frames the body itself (PEP 3333 forbids
			// apps to send these).
		default:
			resp.Header.AddBytesKV(hd.Name, hd.Value)
		}
	}
	return contentLength
}

// requestIDKey is X-Request-ID as fasthttp stores header names, so that
// setting it skips the normalising.
var requestIDKey = []byte("X-Request-Id")

// requestID is the request's id: the client's (or proxy's) X-Request-ID
// when it is a sane token, else a new random one. It is set once per
// request, passed to the app as REQUEST_ID, returned as X-Request-ID and
// logged with the access record.
func requestID(ctx *fasthttp.RequestCtx) []byte {
	if id := ctx.Response.Header.Peek("X-Request-ID"); len(id) > 0 {
		return id
	}
	id := ctx.Request.Header.Peek("X-Request-ID")
	if !saneID(id) {
		var n [8]byte
		var b [16]byte
		binary.LittleEndian.PutUint64(n[:], rand.Uint64())
		id = hex.AppendEncode(b[:0], n[:])
	}
	ctx.Response.Header.SetCanonical(requestIDKey, id)
	return ctx.Response.Header.Peek("X-Request-ID")
}

func saneID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// access counts a finished request and writes its access record.
func (s *Server) access(ctx *fasthttp.RequestCtx, env *environ, log *slog.Logger, start time.Time, n int64) {
	n = bodyBytes(ctx, n)
	d := s.countRequest(ctx, env, start, n)
	if !s.logAccess || !log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	rec := accessRecord(ctx, env)
	rec.Duration, rec.Bytes = d, n
	journal.Access(log, rec)
}

// clientIP is the address the access record names: the client's as the
// environ has it (a trusted proxy's word included), or, for a request
// refused before its environ was built, the connection's peer.
func clientIP(ctx *fasthttp.RequestCtx, env *environ) string {
	if len(env.addr) > 0 {
		return string(env.addr)
	}
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// equalFold compares b with the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
