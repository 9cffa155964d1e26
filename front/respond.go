package front

import (
	"io"

	"github.com/valyala/fasthttp"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/supervisor"
)

// respRoute is the way a response body comes from the worker and goes to
// the client: the four response routes of ARCHITECTURE.md's table,
// decided once (responseRoute) from the head and the part after it, as
// worker.py's Worker.respond (and Worker.to_ring) chose it on the other
// side.
type respRoute int

const (
	// respInFrame: the whole body in the head's frame, copied into
	// fasthttp's response so the worker is free at once (respondWhole).
	respInFrame respRoute = iota
	// respRing: the whole body in the worker's out ring
	// (wire.FlagBodyShared on the head), written from there when the
	// client's socket takes it at once, else copied (respondWhole).
	respRing
	// respStream: body frames as the app makes them, or a whole body too
	// big to copy or short of its Content-Length (respondStream, the
	// stream in stream.go).
	respStream
	// respFile: wsgi.file_wrapper's file (wire.TypeFile), sent with
	// sendfile by the stream (sendfile.go); the worker is released before
	// the sendfile when the file ends the body.
	respFile
)

// responseRoute decides the route of an answer's body from the exchange
// (more: body frames follow the head; inRing: the head's body is in the
// out ring; bodyLen: the head's body bytes), the part after a head with
// no body bytes (firstPart) and the length the app declared
// (contentLength, -1 for none). A pure function, so that its table is
// tested without a worker.
func responseRoute(more, inRing bool, bodyLen int, first supervisor.Part, contentLength int) respRoute {
	switch {
	case first.File != nil:
		return respFile
	case more || len(first.Data) != 0 || contentLength > bodyLen || bodyLen > copyBody:
		return respStream
	case inRing:
		return respRing
	}
	return respInFrame
}

// respond writes the worker's answer: its head, then its body by its
// route. A HEAD request's answer has no body, whatever its route.
func (s *Server) respond(h *handling, ex *supervisor.Exchange) {
	first, contentLength, ok := s.firstPart(h, ex, s.writeHead(h.ctx, ex))
	switch {
	case !ok:
		return
	case h.ctx.IsHead():
		respondHead(h.ctx, ex, first, contentLength)
		return
	}
	switch responseRoute(ex.More(), ex.InRing(), len(ex.Head.Body), first, contentLength) {
	case respInFrame:
		s.respondWhole(h, ex, contentLength, false)
	case respRing:
		s.respondWhole(h, ex, contentLength, true)
	case respStream, respFile:
		// The stream sends a file as it sends one that comes after
		// body frames (wsgi.file_wrapper after write()).
		s.respondStream(h, ex, first, contentLength)
	}
}

// respondHead ends a HEAD request's answer: the worker is released, and
// the Content-Length is the app's (or its file's).
func respondHead(ctx *fasthttp.RequestCtx, ex *supervisor.Exchange, first supervisor.Part, contentLength int) {
	if first.File != nil {
		first.File.Close()
	}
	ex.Close()
	ctx.Response.SkipBody = true
	if contentLength >= 0 {
		ctx.Response.Header.SetContentLength(contentLength)
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

// respondWhole answers with a whole body: the usual case, in the head's
// frame, is copied, so the worker is free at once, whatever the client's
// pace. One in the worker's out ring (inRing) is written to the client
// from there when the socket takes it at once, its place held until
// fasthttp closes the request's user values, after the write (or when the
// connection ends); else it is copied too, since a held place keeps the
// ring's later ones taken (see sendsAtOnce).
func (s *Server) respondWhole(h *handling, ex *supervisor.Exchange, contentLength int, inRing bool) {
	b := wholeBody(h, ex, contentLength)
	if inRing && sendsAtOnce(h.ctx.Conn(), len(b)) {
		h.ctx.Response.SetBodyRaw(b)
		h.ctx.SetUserValue(heldBodyKey{}, ex.Hold())
	} else {
		h.ctx.Response.SetBody(b)
	}
	ex.Close()
	h.bytes = int64(len(b))
}

// wholeBody is a one-frame body cut at the app's Content-Length. (One
// shorter than its Content-Length goes the streamed way, which sends that
// length and closes the connection after the bytes there are, so the
// client sees the body is short.)
func wholeBody(h *handling, ex *supervisor.Exchange, contentLength int) []byte {
	b := ex.Head.Body
	if contentLength >= 0 && contentLength < len(b) {
		h.log.Warn("the app sent more than its Content-Length; the rest was dropped",
			"content_length", contentLength, journal.KeyPID, ex.PID)
		b = b[:contentLength]
	}
	return b
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
