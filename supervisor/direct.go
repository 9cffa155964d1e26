package supervisor

import (
	"errors"
	"os"
	"time"
)

// A request that finds a worker idle and nothing queued is served by the
// goroutine that asked (Pool.Do), on the worker's first lane, without
// passing through the queue and the slot's goroutine: that hand-off cost
// three goroutine wake-ups, two channels (and then a timer) per request,
// about a fifth of berth's CPU time per request on a hello app. When requests
// queue, the slots take them from the queue and batch them as before.
//
// The lane has one owner at a time, recorded in slot.owner. The slot's
// goroutine owns it except while it waits in its select for an event;
// then the lane is laneIdle and Do may take it (laneDirect). When the
// slot's goroutine wants it back (a recycle check, a replacement, the
// worker's end, a stop), it marks it laneWanted and waits on handback,
// through which whoever holds it hands it over when done. The lane is
// also handed back unasked when the worker must be replaced or recycled,
// or requests are queued (kick): the slot's goroutine serves the queue
// only while it owns the lane, so a queued request never waits for a
// busy worker while another is idle.
const (
	laneSlot   int32 = iota // the slot's goroutine owns the lane
	laneIdle                // free for Do to take
	laneDirect              // a Do serves a request on it
	laneWanted              // as laneDirect, and the slot's goroutine waits for it
)

// handback says why a lane came back to its slot's goroutine.
type handback int

const (
	hbAsked   handback = iota // the slot's goroutine asked for it
	hbBroken                  // the worker was killed: replace it
	hbRecycle                 // the worker reached max_requests
	hbQueue                   // requests are queued: serve them
)

// acquire makes the slot's goroutine the lane's owner again after idle,
// waiting for a direct request on it to finish, and acts on why it came
// back.
func (s *slot) acquire() {
	if !s.lent {
		return
	}
	s.lent = false
	for {
		switch s.owner.Load() {
		case laneSlot:
			// Given back unasked: the handback is on its way.
			s.onHandback(<-s.handback)
			return
		case laneIdle:
			if s.owner.CompareAndSwap(laneIdle, laneSlot) {
				return
			}
		case laneDirect:
			if s.owner.CompareAndSwap(laneDirect, laneWanted) {
				s.onHandback(<-s.handback)
				return
			}
		}
	}
}

// idle lends the lane to Do until the slot's goroutine acquires it again.
// The slot's goroutine calls it, owning the lane, before it waits.
func (s *slot) idle() {
	s.lent = true
	s.owner.Store(laneIdle)
}

// reclaim takes the lane back after idle if no direct request has it.
func (s *slot) reclaim() bool {
	if s.owner.CompareAndSwap(laneIdle, laneSlot) {
		s.lent = false
		return true
	}
	return false
}

// kick brings an idle worker's lane back to its slot's goroutine to serve
// the queue. Do calls it after queueing a request, and a direct request
// when it ends: between the two, a queued request always finds a slot.
func (p *Pool) kick() {
	if s := p.takeIdle(); s != nil {
		s.giveBack(hbQueue)
	}
}

// onHandback acts on a lane handed back by a direct request.
func (s *slot) onHandback(hb handback) {
	switch hb {
	case hbBroken:
		s.lost()
	case hbRecycle:
		s.maybeRecycle()
	}
}

// giveBack ends a direct request's hold on the lane: it goes back to
// idle, or to the slot's goroutine when that is waiting for it or hb
// says the slot must act.
func (s *slot) giveBack(hb handback) {
	if hb == hbAsked && s.owner.CompareAndSwap(laneDirect, laneIdle) {
		return
	}
	s.owner.Store(laneSlot)
	s.handback <- hb // buffered: the lane has one holder at a time
}

// takeIdle returns a slot whose lane it took for a direct request, or
// nil when every worker is busy. Slots are tried in a fixed order, so
// light traffic keeps going to the same few workers (warm caches, and
// requests that arrive together on one worker get batched by the queue).
func (p *Pool) takeIdle() *slot {
	list := p.idleOrder.Load()
	if list == nil {
		return nil
	}
	for _, s := range *list {
		if s.owner.Load() == laneIdle && s.owner.CompareAndSwap(laneIdle, laneDirect) {
			return s
		}
	}
	return nil
}

// direct serves r on the slot's worker, whose lane the caller took. ok is
// false when the worker was gone before it read the request: the caller
// queues it, for the replacement.
func (s *slot) direct(r Request) (ex *Exchange, err error, ok bool) {
	p := s.pool
	proc := s.proc // stable: changed only by the lane's owner
	select {
	case <-proc.exited:
		s.giveBack(hbAsked)
		return nil, nil, false
	default:
	}
	start := time.Now()
	p.lastTake.Store(start.UnixNano())
	s.began.Store(start.UnixNano())
	p.m.QueueWait(0)
	s.busy.Add(1)
	ln := proc.lanes[0]
	_ = ln.conn.SetDeadline(start.Add(p.app.Timeout))
	j := &job{Request: r}
	ln.seq++
	one := [1]*job{j}
	if n, err := s.send(ln, one[:]); err != nil {
		if n == 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
			proc.kill()
			proc.log.Warn("worker gone before it got a request; replacing it", "status", proc.exitStatus())
			s.endDirect(hbBroken)
			return nil, nil, false
		}
		return s.directFailed(proc, ln, err)
	}
	f, err := ln.r.Next()
	p.observe(time.Since(start))
	if err != nil {
		return s.directFailed(proc, ln, err)
	}
	ex = &j.ex
	*ex = Exchange{proc: proc, lane: ln, seq: ln.seq, timeout: p.app.Timeout, PID: proc.pid, slot: s}
	if !readHead(proc, f, ex) {
		s.endDirect(hbBroken)
		return nil, ErrWorkerDied, true
	}
	return ex, nil, true
}

// directFailed is slot.unanswered for a direct request: the worker is
// killed and handed back for replacement, and the request fails — or,
// when the worker never started it (its marks say), ok is false and the
// caller queues it for the replacement.
func (s *slot) directFailed(proc *process, ln *lane, err error) (ex *Exchange, failed error, ok bool) {
	started, failed := s.afterDeath(proc, ln, ln.seq, 1, err)
	s.endDirect(hbBroken)
	if started == 0 {
		return nil, nil, false
	}
	return nil, failed, true
}

// endDirect counts a direct request's end and gives the lane back.
func (s *slot) endDirect(hb handback) {
	s.lastBusy.Store(time.Now().UnixNano())
	s.busy.Add(-1)
	if hb == hbAsked && s.pool.q.len() > 0 {
		// This worker is warm: it serves the queue itself (wake.go).
		hb = hbQueue
	}
	s.giveBack(hb)
	if hb == hbAsked && s.pool.q.len() > 0 {
		s.pool.kick()
	}
}

// finishDirect ends a direct exchange the front has closed.
func (s *slot) finishDirect(e *Exchange) {
	s.served.Add(1)
	s.pool.served.Add(1)
	s.pool.m.Served()
	hb := hbAsked
	switch {
	case e.broken:
		e.proc.kill()
		hb = hbBroken
	case s.limit > 0 && s.served.Load() >= s.limit:
		hb = hbRecycle
	}
	s.endDirect(hb)
}
