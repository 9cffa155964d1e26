package front

import (
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

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
