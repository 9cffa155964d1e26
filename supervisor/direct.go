package supervisor

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// Requests are served on the goroutines that asked for them (Pool.Do),
// not on the slot's: a hand-off between goroutines costs a wake-up each
// way, and on this path they were most of berth's CPU time per request
// after the system calls.
//
// A request that finds a worker idle and nothing queued is sent at once
// and its answer read by its own goroutine (direct). Requests that find
// every worker busy wait in the queue; whoever ends a turn on a worker's
// first lane sends the requests queued to it in one write (next, batch)
// and passes the lane to the first one's goroutine, which reads its
// answer, and when its client has it passes the lane to the next one's
// (finishDirect). So a batch costs one wake-up per request, and a
// worker whose turn ends with requests queued takes them at once.
//
// The lane has one holder at a time, recorded in slot.owner. The slot's
// goroutine lends it (laneDirect, and laneIdle when nobody needs it)
// while it waits in its select for an event. When it wants the lane back
// (a recycle check, a replacement, the worker's end, a stop), it marks it
// laneWanted and waits on handback, through which the holder hands it
// over at the end of its batch. The lane is also handed back unasked when
// the worker must be replaced or recycled, or requests are left over
// that a failed worker never read.
const (
	laneSlot   int32 = iota // the slot's goroutine owns the lane
	laneIdle                // free for Do to take
	laneDirect              // lent: a request's goroutine holds it
	laneWanted              // as laneDirect, and the slot's goroutine waits for it
)

// handback says why a lane came back to its slot's goroutine.
type handback int

const (
	hbAsked   handback = iota // the slot's goroutine asked for it
	hbBroken                  // the worker was killed: replace it
	hbRecycle                 // the worker reached max_requests
	hbQueue                   // requests a failed worker never read wait: serve them
)

// acquire makes the slot's goroutine the lane's owner again after lend,
// waiting for the turn of the request holding it to end, and acts on why
// it came back.
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

// lend gives the lane away until the slot's goroutine acquires it again:
// to the requests queued, sent as a batch whose goroutines pass the lane
// on (next), and after them to Do for direct requests. The slot's
// goroutine calls it, owning the lane, before it waits.
func (s *slot) lend() {
	s.lent = true
	s.owner.Store(laneDirect)
	s.handOn(hbAsked, nil)
}

// kick puts an idle worker to work on the queue: Do calls it after
// queueing a request, and a turn on a lane calls it when it ends; between
// the two, a queued request always finds a worker. The batch is sent from
// the caller's goroutine (next).
func (p *Pool) kick() {
	if s := p.takeIdle(); s != nil {
		s.handOn(hbAsked, nil)
	}
}

// onHandback acts on a lane handed back by a request's goroutine.
func (s *slot) onHandback(hb handback) {
	switch hb {
	case hbBroken:
		s.lost()
	case hbRecycle:
		s.maybeRecycle()
	}
}

// giveBack ends a request goroutine's hold on the lane: it goes back to
// idle, or to the slot's goroutine when that is waiting for it or hb
// says the slot must act.
func (s *slot) giveBack(hb handback) {
	if hb == hbAsked && s.owner.CompareAndSwap(laneDirect, laneIdle) {
		return
	}
	s.owner.Store(laneSlot)
	s.handback <- hb // buffered: the lane has one holder at a time
}

// takeIdle returns a slot whose lane it took, or nil when every worker
// is busy. Slots are tried in a fixed order, so
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
	s.busy.Add(1)
	ln := proc.lanes[0]
	_ = ln.conn.SetDeadline(start.Add(p.app.Timeout))
	j := &job{Request: r, start: start}
	ln.seq++
	j.seq = ln.seq
	one := [1]*job{j}
	if n, err := s.send(ln, one[:]); err != nil {
		if n == 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
			proc.kill()
			proc.log.Warn("worker gone before it got a request; replacing it", "status", proc.exitStatus())
			s.endTurn(hbBroken, nil)
			return nil, nil, false
		}
		err = s.killFor(proc, err)
		s.endTurn(hbBroken, nil)
		return nil, err, true
	}
	return s.receive(j)
}

// receive reads the answer to j, the next request on the lane, which the
// caller holds: a direct request, or one of a batch whose turn has come.
// ok is false when the worker died before it read j; then j is given to
// the slot for the replacement, and j.ready will close again when it has
// been served there.
func (s *slot) receive(j *job) (ex *Exchange, err error, ok bool) {
	p := s.pool
	proc := s.proc
	ln := proc.lanes[0]
	if j.on != nil {
		_ = ln.conn.SetDeadline(time.Now().Add(p.app.Timeout))
	}
	f, err := ln.r.Next()
	p.observe(time.Since(j.start))
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) && len(j.rest) == 0 {
			// The worker closed its socket with j unread in it.
			proc.kill()
			proc.log.Warn("worker died before it read a request; replacing it", "status", proc.exitStatus())
			if j.on != nil {
				j.on, j.ready = nil, make(chan struct{})
				s.endTurn(hbBroken, []*job{j})
				return nil, nil, false
			}
			s.endTurn(hbBroken, nil)
			return nil, nil, false
		}
		err = s.killFor(proc, err)
		s.endTurn(hbBroken, j.rest)
		return nil, err, true
	}
	ex = &j.ex
	*ex = Exchange{proc: proc, lane: ln, seq: j.seq, timeout: p.app.Timeout, PID: proc.pid, slot: s, rest: j.rest}
	if !readHead(proc, f, ex) {
		s.endTurn(hbBroken, j.rest)
		return nil, ErrWorkerDied, true
	}
	return ex, nil, true
}

// endTurn ends a holder's turn on the lane (see handOn).
func (s *slot) endTurn(hb handback, retry []*job) {
	s.lastBusy.Store(time.Now().UnixNano())
	s.busy.Add(-1)
	s.handOn(hb, retry)
}

// handOn passes on the lane the caller holds. Requests queued are sent
// to the worker at once as the next batch, whose first request's
// goroutine then holds the lane; otherwise the lane goes back to idle (or
// to the slot's goroutine, for hb or when it asked). retry are requests
// sent to a worker that failed before reading them: the slot's goroutine
// serves them on the replacement.
func (s *slot) handOn(hb handback, retry []*job) {
	if hb == hbAsked && s.owner.Load() == laneDirect && s.next() {
		return
	}
	if len(retry)+len(s.pending) > 0 {
		s.retryMu.Lock()
		s.retry = append(append(s.retry, retry...), s.pending...)
		s.retryMu.Unlock()
		s.pending = s.pending[:0]
		if hb == hbAsked {
			hb = hbQueue
		}
	}
	s.giveBack(hb)
	if hb == hbAsked && len(s.pool.queue) > 0 {
		s.pool.kick()
	}
}

// next sends the next batch to the worker, from the requests a batch
// could not take or the queue, and hands the lane to its first request's
// goroutine. It reports false when there was nothing to send.
func (s *slot) next() bool {
	var jobs []*job
	if len(s.pending) > 0 {
		jobs = append(s.jobs[:0], s.pending...)
		s.pending = s.pending[:0]
	} else {
		select {
		case j := <-s.pool.queue:
			jobs = s.batch(j)
		default:
			return false
		}
	}
	p := s.pool
	proc := s.proc
	all := jobs[:0]
	for _, j := range jobs {
		if j.state.Load() == jobTaken || j.state.CompareAndSwap(jobQueued, jobTaken) {
			all = append(all, j)
		}
	}
	if len(all) == 0 {
		return s.next()
	}
	now := time.Now()
	p.lastTake.Store(now.UnixNano())
	live := all[:fitBatch(all)]
	s.pending = append(s.pending, all[len(live):]...)
	s.busy.Add(1)
	ln := proc.lanes[0]
	_ = ln.conn.SetDeadline(now.Add(p.app.Timeout))
	for _, j := range live {
		ln.seq++
		j.seq = ln.seq
	}
	if n, err := s.send(ln, live); err != nil {
		if n == 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
			proc.kill()
			proc.log.Warn("worker gone before it got a request; replacing it", "status", proc.exitStatus())
			s.endTurn(hbBroken, all)
			return true
		}
		live[0].err = s.killFor(proc, err)
		close(live[0].ready)
		s.endTurn(hbBroken, all[1:])
		return true
	}
	s.pass(live[0], live[1:], now)
	return true
}

// pass gives the lane to j, whose answer is the next on it; rest follow.
func (s *slot) pass(j *job, rest []*job, start time.Time) {
	j.on, j.rest, j.start = s, rest, start
	close(j.ready)
}

// finishDirect ends an exchange on a lane held outside the slot's
// goroutine, which the front has closed: the lane passes to the next
// request of the batch, or the turn ends.
func (s *slot) finishDirect(e *Exchange) {
	s.served.Add(1)
	s.pool.served.Add(1)
	switch {
	case e.broken:
		e.proc.kill()
		s.endTurn(hbBroken, e.rest)
	case len(e.rest) > 0:
		s.pass(e.rest[0], e.rest[1:], time.Now())
	case s.limit > 0 && s.served.Load() >= s.limit:
		s.endTurn(hbRecycle, nil)
	default:
		s.endTurn(hbAsked, nil)
	}
}
