package front

import (
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// activity is what idle_exit asks of a front: how many client
// connections are open, and when one last began or finished a request.
type activity struct {
	open atomic.Int64
	last atomic.Int64 // unix nanos
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// note follows one connection's change of state.
func (a *activity) note(st fasthttp.ConnState) {
	switch st {
	case fasthttp.StateNew:
		a.open.Add(1)
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		a.open.Add(-1)
	}
	a.touch()
}

// Idle reports how long the front has had no client connection open, or
// zero while one is.
func (s *Server) Idle() time.Duration {
	if s.activity.open.Load() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, s.activity.last.Load()))
}
