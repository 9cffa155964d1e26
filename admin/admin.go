// Package admin serves berth's admin endpoints on a listener of their own,
// apart from the apps' listeners so that no app route can shadow them and
// no client of the site reaches them: /healthz and /readyz for load
// balancers and probes, and whatever else is registered with Handle (such
// as metrics).
//
// It is net/http, not the fasthttp front: a probe every few hundred
// milliseconds needs no speed, and net/http gives HEAD, 404 and 405,
// header timeouts and a graceful Shutdown for free, and is what other
// handlers (Prometheus' client among them) are written against.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Checks are the questions the endpoints ask; each returns nil for yes,
// or the reason for no, which the 503's body carries.
type Checks struct {
	// Healthy answers /healthz: is berth itself working (not wedged)?
	Healthy func() error
	// Ready answers /readyz: should a load balancer send requests here?
	Ready func() error
}

// Handler routes the admin endpoints. One Handler outlives the admin
// listener's sockets: a reload that moves the listener serves the same
// Handler, with whatever was registered on it, on the new socket.
type Handler struct {
	mux *http.ServeMux
}

// NewHandler returns a Handler serving /healthz and /readyz from c; any
// other path is 404, a method other than GET or HEAD 405.
func NewHandler(c Checks) *Handler {
	h := &Handler{mux: http.NewServeMux()}
	h.mux.Handle("GET /healthz", check(c.Healthy))
	h.mux.Handle("GET /readyz", check(c.Ready))
	return h
}

// Handle registers handler for pattern (http.ServeMux's syntax, such as
// "GET /metrics"). It panics if the pattern is taken, as ServeMux does.
func (h *Handler) Handle(pattern string, handler http.Handler) {
	h.mux.Handle(pattern, handler)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// check answers 200 "ok" while f returns nil, else 503 with its reason:
// one short line of plain text, never cached, as a probe wants it.
func check(f func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, body := http.StatusOK, "ok\n"
		if err := f(); err != nil {
			code, body = http.StatusServiceUnavailable, err.Error()+"\n"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	})
}

// Server is the admin endpoints served on one listener.
type Server struct {
	hs *http.Server
}

// Serve starts serving h on ln in the background. Errors of the accept
// loop other than its Shutdown go to errs.
//
// The timeouts keep a slow or silent client from holding connections
// open: probes are one short request each.
func Serve(ln net.Listener, h *Handler, log *slog.Logger, errs chan<- error) *Server {
	s := &Server{hs: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	go func() {
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("admin listener: %w", err)
		}
	}()
	return s
}

// Shutdown stops accepting and waits, within ctx, for requests in flight;
// connections still open at its end are closed.
func (s *Server) Shutdown(ctx context.Context) {
	if err := s.hs.Shutdown(ctx); err != nil {
		s.hs.Close()
	}
}
