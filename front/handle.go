package front

import (
	"io"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/supervisor"
)

// handling is one request on its way through handle's stages.
type handling struct {
	ctx   *fasthttp.RequestCtx
	env   *environ
	start time.Time // zero unless the access record or metrics need it

	// Set by admit once the request is routed and its body read.
	rt   *route
	log  *slog.Logger // the route's once matched, else the server's
	body bodyRoute    // nil until read; handle releases it
	// bodyRead: the worker got past reading the body (it answered).
	bodyRead bool

	// Set by the stages for handle's end.
	closeConn bool  // the connection closes after the answer (a socket body out of step)
	bytes     int64 // body bytes answered, for the access record
	recorded  bool  // the access record is written elsewhere (a static file, a stream)
}

// handle serves one request in three stages: admit (checks, route,
// static files, body, environ), dispatch (to a worker, for the head of
// its answer) and respond. A stage that answers the request itself (a
// refusal, a static file, a pool's error) ends it. The access record is
// written once, here, unless a static file or a streamed body writes its
// own when it is done.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	h := handling{ctx: ctx, log: s.log}
	// The start is read only for the access log: a clock read is not free
	// on every machine (on this VM's, the vDSO was 4% of berth's time).
	if s.timed() {
		h.start = time.Now()
	}
	h.env = s.envs.Get().(*environ)
	defer s.putEnv(h.env)
	h.env.addr = h.env.addr[:0] // the client's address once known (build)
	h.env.route, h.env.wait = nil, 0
	if s.admit(&h) {
		if ex := s.dispatch(&h); ex != nil {
			s.respond(&h, ex)
		}
	}
	if !h.recorded {
		s.access(ctx, h.env, h.log, h.start, h.bytes)
	}
	if h.closeConn {
		ctx.SetConnectionClose() // after the answer, which may have reset it
	}
	if h.body != nil {
		h.body.release(h.bodyRead)
	}
}

// admit checks the request, routes it, answers it from a static
// directory when it is one's, reads its body and builds its environ. It
// reports whether the request goes on to a worker.
func (s *Server) admit(h *handling) bool {
	ctx, env := h.ctx, h.env
	hd := &ctx.Request.Header
	status, msg := checkRequest(hd, s.listener.MaxURIBytes)
	if status == 0 {
		status, msg = env.checkFields(hd.RawHeaders())
	}
	if status == 0 {
		status, msg = env.decodePath(hd)
	}
	if status != 0 {
		s.reject(ctx, status, msg)
		return false
	}
	rt := s.routes.Load().match(requestHost(hd), routePath(env.path))
	if rt == nil {
		s.unavailable(ctx, fasthttp.StatusNotFound, "no app is mounted at this path")
		if hd.ContentLength() == -1 {
			// Its chunked body is left unread: fasthttp would drain it
			// with its own, lenient chunk parser and go on.
			ctx.SetConnectionClose()
		}
		return false
	}
	env.route = rt
	if rt.static != nil {
		if rt = s.serveStatic(ctx, env, rt, h.start); rt == nil {
			h.recorded = true // answered from the static directory
			return false
		}
	}
	h.rt, h.log = rt, rt.log
	body, status, msg := readBody(ctx, rt, env.body, &env.bodies)
	if status != 0 {
		s.reject(ctx, status, msg)
		return false
	}
	h.body = body
	if mem := body.inFrame(); mem != nil {
		env.body = mem // grown for it, kept for the next body
	}
	if status, msg := env.build(ctx, rt.mount, body.length(), requestID(ctx), s.listener.Trusted); status != 0 {
		s.reject(ctx, status, msg)
		return false
	}
	return true
}

// dispatch hands the request to its app's workers and waits for the head
// of the answer. It returns nil when the request was answered otherwise
// (the pool's error, an answer the worker could not make).
func (s *Server) dispatch(h *handling) *supervisor.Exchange {
	ctx := h.ctx
	ex, err := h.rt.app.Do(h.body.request(&h.env.enc))
	h.env.wait = queueWait(ex, err, h.rt)
	// An answer means the worker got past reading a shared body, or one
	// in the socket (it does so before the app starts).
	h.bodyRead = err == nil
	if !h.body.settle(ctx.RequestBodyStream()) {
		h.closeConn = true
	}
	switch {
	case err != nil:
		s.poolError(ctx, err)
		ex = nil
	case ex.Invalid != nil:
		ex.Close()
		s.unavailable(ctx, fasthttp.StatusInternalServerError, "internal server error")
		ex = nil
	}
	return ex
}

// respond writes the worker's answer: its head, then its body copied
// whole when it is complete and small, else streamed.
func (s *Server) respond(h *handling, ex *supervisor.Exchange) {
	ctx := h.ctx
	first, contentLength, ok := s.firstPart(h, ex, s.writeHead(ctx, ex))
	switch {
	case !ok:
	case ctx.IsHead():
		if first.File != nil {
			first.File.Close()
		}
		ex.Close()
		ctx.Response.SkipBody = true
		if contentLength >= 0 {
			ctx.Response.Header.SetContentLength(contentLength)
		}
	case !ex.More() && first.File == nil && len(first.Data) == 0 &&
		contentLength <= len(ex.Head.Body) && len(ex.Head.Body) <= copyBody:
		s.respondWhole(h, ex, contentLength)
	default:
		s.respondStream(h, ex, first, contentLength)
	}
}

// firstPart takes the part after a head with no body bytes and more to
// come: wsgi.file_wrapper's file, which follows at once. When the file is
// the whole body, its size is the Content-Length the app did not give,
// for a HEAD as for a GET. ok is false when the answer failed there (the
// client got 502).
func (s *Server) firstPart(h *handling, ex *supervisor.Exchange, contentLength int) (first supervisor.Part, n int, ok bool) {
	if !ex.More() || len(ex.Head.Body) != 0 {
		return first, contentLength, true
	}
	first, err := ex.Next()
	if err != nil && err != io.EOF {
		h.log.Error("response failed before its body", "err", err, journal.KeyPID, ex.PID)
		ex.Close()
		s.unavailable(h.ctx, fasthttp.StatusBadGateway, "bad gateway: the app failed before its body")
		return first, contentLength, false
	}
	if contentLength < 0 && first.File != nil && !ex.More() {
		if n, ok := fileLength(first); ok {
			contentLength = int(n)
		}
	}
	return first, contentLength, true
}

// respondWhole answers the usual case: the whole body in one frame (or
// in the worker's out ring), copied so the worker is free at once,
// whatever the client's pace; a body in the ring that the socket takes at
// once is written from there instead. One shorter than its
// Content-Length goes the streamed way, which sends that length and
// closes the connection after the bytes there are, so the client sees
// the body is short.
func (s *Server) respondWhole(h *handling, ex *supervisor.Exchange, contentLength int) {
	b := ex.Head.Body
	if contentLength >= 0 && contentLength < len(b) {
		h.log.Warn("the app sent more than its Content-Length; the rest was dropped",
			"content_length", contentLength, journal.KeyPID, ex.PID)
		b = b[:contentLength]
	}
	if ex.InRing() && sendsAtOnce(h.ctx.Conn(), len(b)) {
		// The body is in the worker's out ring: written to the client
		// from there, its place held until fasthttp closes the request's
		// user values, after the write (or when the connection ends).
		h.ctx.Response.SetBodyRaw(b)
		h.ctx.SetUserValue(heldBodyKey{}, ex.Hold())
	} else {
		h.ctx.Response.SetBody(b)
	}
	ex.Close()
	h.bytes = int64(len(b))
}

// respondStream sends the body as the worker makes it: the head at once,
// then the body straight to the socket (see stream.WriteTo), with the
// app's Content-Length, chunked, or (HTTP/1.0 without a length) up to
// the connection's close. The stream writes the access record when done.
func (s *Server) respondStream(h *handling, ex *supervisor.Exchange, first supervisor.Part, contentLength int) {
	ctx := h.ctx
	whole := !ex.More() && first.File == nil && len(first.Data) == 0
	st := &stream{s: s, log: h.log, ex: ex, conn: ctx.Conn(), limit: int64(contentLength), maxSpool: h.rt.maxSpool}
	if whole && st.limit < 0 {
		st.limit = int64(len(ex.Head.Body)) // a whole body too big to copy
	}
	st.parts = append(st.parts, supervisor.Part{Data: ex.Head.Body}, first)
	st.done = s.streamDone(ctx, h.env, h.log, h.start)
	h.recorded = true
	if st.limit < 0 && !ctx.Request.Header.IsHTTP11() {
		s.closeDelimited(ctx, st)
		return
	}
	st.chunked = st.limit < 0
	ctx.Response.ImmediateHeaderFlush = true
	ctx.Response.SetBodyStream(st, int(st.limit))
}
