package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/wire"
)

// checkEvery is how often an idle slot checks its worker's age and memory.
const checkEvery = time.Second

// youngDeath: a worker that dies sooner than this after its start makes
// its slot back off before the next spawn.
const youngDeath = 5 * time.Second

// slot is one place for a worker in a pool. Its goroutine looks after the
// worker: it serves queued requests on it, lends its first lane to a
// connection's goroutine for a direct request (direct.go), replaces it
// when it dies, and recycles it.
type slot struct {
	// Fixed when the slot is made.
	pool *Pool
	id   int

	// Guarded by mu: written by the lane's holder when a worker starts,
	// read by Status and a forced Stop.
	mu    sync.Mutex
	proc  *process
	since time.Time // the current worker's start

	// Atomics: written by whoever serves a lane, read by dispatch
	// (direct.go, wake.go), batching's flush and Status without a lock.
	busy     atomic.Int32 // lanes serving a request
	began    atomic.Int64 // unix nanos when a lane last began serving (wake.go)
	lastBusy atomic.Int64 // unix nanos when a lane last finished a request
	served   atomic.Int64 // by the current worker
	owner    atomic.Int32 // who holds the worker's first lane (direct.go)
	batching atomic.Pointer[process]

	// limit is set by the slot's goroutine when a worker starts, and read
	// by a connection's goroutine ending a direct request on the lent
	// lane (direct.go finishDirect); the lane's hand-over orders the two.
	limit int64 // max_requests for the current worker, jittered

	// The slot's goroutine's alone (it reads lent and replace while the
	// lane is lent, too), but for handback, the channel a connection's
	// goroutine gives the lent lane back on.
	rss      int64 // last reading, bytes
	rssAt    time.Time
	young    bool             // the last worker died within youngDeath of its start
	replace  chan replacement // a recycle's new worker, when one is booting
	recycled metrics.Cause    // why: max_requests, max_lifetime or max_rss
	jobs     []*job           // reused for batches
	lent     bool             // the slot's goroutine lent the lane (idle)
	handback chan handback    // a lane given back to the slot's goroutine
	bufs     net.Buffers      // reused for a batch's write
	// overdue fires while a batch takes longer than overdueAfter, and
	// asks its worker (batching) to send the answers it has made.
	overdue *time.Timer

	// The worker's other threads are lanes served by goroutines of their
	// own; laneStop ends them and lanes waits for them. retry, under
	// retryMu, is shared by those goroutines and the slot's.
	laneStop chan struct{}
	lanes    sync.WaitGroup
	retryMu  sync.Mutex
	retry    []*job // requests a lane's dead worker never started
}

type replacement struct {
	proc *process
	err  error
}

func (s *slot) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// setProc makes proc the slot's worker, resets its counters and starts
// the goroutines that serve its other threads.
func (s *slot) setProc(proc *process) {
	s.stopLanes()
	s.laneStop = make(chan struct{})
	for k := 1; k < len(proc.lanes); k++ {
		s.lanes.Add(1)
		go s.runLane(proc, proc.lanes[k], s.laneStop)
	}
	s.mu.Lock()
	s.proc = proc
	s.since = time.Now()
	s.mu.Unlock()
	s.served.Store(0)
	s.rss, s.rssAt = 0, time.Time{}
	a := s.pool.app
	s.limit = 0
	if a.MaxRequests > 0 {
		s.limit = int64(a.MaxRequests)
		if a.MaxRequestsJitter > 0 {
			s.limit += rand.Int64N(int64(a.MaxRequestsJitter) + 1)
		}
	}
}

// run is the slot's goroutine: it keeps a worker in the slot, serves the
// requests held for it and those queued, and between them lends the
// worker to direct requests while it waits for its next event (await).
// It returns when the pool stops or the slot retires.
func (s *slot) run() {
	p := s.pool
	defer p.wg.Done()
	defer p.removeSlot(s)
	// A recycle's replacement still booting when the slot ends is stopped
	// once it is up, whichever way the slot ends; so are the lanes.
	defer s.dropReplace()
	defer s.stopLanes()
	backoff := 100 * time.Millisecond
	check := time.NewTicker(checkEvery)
	defer check.Stop()
	s.lastBusy.Store(time.Now().UnixNano())
	var held []*job // taken from the queue but not yet served by a worker
	for {
		proc := s.current()
		switch {
		case proc == nil && p.isStopped():
			for _, j := range held {
				p.refuse(j)
			}
			p.nslots.Add(-1)
			return
		case proc == nil:
			s.respawn(&backoff)
		case len(held) > 0:
			jobs := held
			held = nil
			if s.dispatch(proc, jobs, &held) {
				s.maybeRecycle()
			}
		default:
			// Requests waiting are served before the worker is lent.
			if j := p.q.pop(); j != nil {
				if s.dispatch(proc, s.batch(j), &held) {
					s.maybeRecycle()
				}
			} else if s.await(proc, check.C, &held) {
				return
			}
		}
	}
}

// respawn starts a worker in the empty slot. One that died young is not
// replaced in a tight loop (the app may be crashing on every start or
// every request): the slot backs off, doubling up to 30 s.
func (s *slot) respawn(backoff *time.Duration) {
	p := s.pool
	if s.young {
		p.m.Backoff(1)
		select {
		case <-time.After(*backoff):
		case <-p.stop:
			p.m.Backoff(-1)
			return
		}
		p.m.Backoff(-1)
		*backoff = min(*backoff*2, 30*time.Second)
	} else {
		*backoff = 100 * time.Millisecond
	}
	np, err := p.spawn(p.ctx)
	if err != nil {
		if !p.isStopped() {
			p.log.Error("replacing worker failed; retrying", "err", err, "retry_in", *backoff)
		}
		s.young = true
		return
	}
	s.setProc(np)
	np.log.Info("worker started")
}

// await lends the idle worker to direct requests (direct.go) and waits
// for the slot's next event; whichever comes takes the worker back first.
// It does not wait on the queue meanwhile: it takes requests only when its
// worker is idle, and a request queued while the worker is lent brings
// the worker back (Pool.kick). Requests a dead worker never started are
// added to held. It reports whether the slot ends.
func (s *slot) await(proc *process, check <-chan time.Time, held *[]*job) bool {
	p := s.pool
	var idle <-chan time.Time
	if p.app.MaxWorkers > p.app.MinWorkers {
		idle = time.After(time.Until(time.Unix(0, s.lastBusy.Load()).Add(p.app.IdleTimeout)))
	}
	s.idle()
	if p.q.len() > 0 && s.reclaim() {
		return false // queued just before the lending
	}
	select {
	case r := <-s.replace:
		s.acquire()
		s.swap(r)
	case <-check:
		s.acquire()
		if s.current() != nil {
			s.maybeRecycle()
		}
	case <-idle:
		s.acquire()
		return s.retireIdle(proc)
	case <-proc.exited:
		s.acquire()
		if s.current() == proc {
			proc.log.Warn("worker exited unexpectedly; replacing it", "status", proc.exitStatus())
			s.lost()
		}
		*held = append(*held, s.takeRetry()...)
	case hb := <-s.handback:
		s.lent = false
		s.onHandback(hb)
	case <-p.stop:
		s.acquire()
		if proc = s.current(); proc != nil {
			s.drain(proc)
			return true
		}
	}
	return false
}

// retireIdle ends the slot when its worker has been idle for the app's
// idle_timeout and the pool has more than min_workers; it reports
// whether it did.
func (s *slot) retireIdle(proc *process) bool {
	p := s.pool
	if s.current() != proc || s.busy.Load() > 0 || time.Since(time.Unix(0, s.lastBusy.Load())) < p.app.IdleTimeout {
		return false // a thread of the worker is (or just was) busy
	}
	n := p.nslots.Load()
	if int(n) <= p.app.MinWorkers || !p.nslots.CompareAndSwap(n, n-1) {
		return false
	}
	proc.log.Info("retiring idle worker", "idle", p.app.IdleTimeout, "workers", n-1)
	p.m.Exit(metrics.CauseScaleDown)
	s.stopLanes()
	proc.stop(5 * time.Second)
	return true
}

// maxBatch bounds how many queued requests one worker is sent at once.
const maxBatch = 32

// batchBudget bounds the time the last request of a batch waits for the
// ones before it on the same worker, judged by the app's recent service
// times: a fast app gets batches, a slow one one request at a time (so a
// slow request never holds fast ones, and waiting shows in the queue,
// where scaling sees it). 2 ms rather than 1: hello c50 served 4-12% more
// in 3 of 3 interleaved rounds, Flask 6-9% more in 2 of 3.
const batchBudget = 2 * time.Millisecond

// batch adds to first the requests waiting behind it, up to this slot's
// share of the queue: a worker that becomes idle while requests queue gets
// several in one write and answers them in one write. With an empty queue
// the batch is the one request, so batching never adds latency.
//
// The share is the whole queue (within batchBudget) unless other workers
// are idle, which then get theirs: under load the others are busy, and
// each batch a worker is sent costs it a wake-up and berth a write and a
// read, so fewer, larger batches serve more (hello c50, 4 interleaved
// rounds: median 30.2k -> 32.2k req/s against a share of the queue split
// over every worker).
func (s *slot) batch(first *job) []*job {
	jobs := append(s.jobs[:0], first)
	// Until a response has been timed, the app's pace is unknown: one
	// request at a time (a burst of slow requests at start-up must not
	// land on one worker while others are idle or booting).
	share := 1
	if t := s.pool.serviceNS.Load(); t > 0 {
		share = min(1+s.pool.q.len()/(1+s.pool.idleWorkers()), 1+int(int64(batchBudget)/t))
	}
	s.jobs = s.pool.q.take(jobs, min(share, maxBatch)-len(jobs))
	return s.jobs
}

// idleWorkers counts the workers whose lane is idle: each takes its share
// of the queue when a request queued kicks it.
func (p *Pool) idleWorkers() int {
	n := 0
	if list := p.idleOrder.Load(); list != nil {
		for _, s := range *list {
			if s.owner.Load() == laneIdle {
				n++
			}
		}
	}
	return n
}

// dispatch serves jobs on proc, first making sure proc is alive: a worker
// that died while idle must not cost the next request a 502. Requests
// the worker never got to (it died first) are kept in held for the
// replacement. It reports whether proc is still usable.
func (s *slot) dispatch(proc *process, jobs []*job, held *[]*job) bool {
	select {
	case <-proc.exited:
		proc.log.Warn("worker exited unexpectedly; replacing it", "status", proc.exitStatus())
		s.lost()
		*held = append(*held, jobs...)
		return false
	default:
	}
	retry, ok := s.serve(proc, proc.lanes[0], jobs)
	*held = append(*held, retry...)
	if !ok {
		s.lost()
		*held = append(*held, s.takeRetry()...)
	}
	return ok
}

// lost forgets a worker that died or was killed.
func (s *slot) lost() {
	s.young = time.Since(s.since) < youngDeath
	if proc := s.current(); proc != nil {
		proc.closeLanes()
		s.pool.m.Exit(metrics.Cause(proc.cause.Load()))
	}
	s.stopLanes()
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
}

// stopLanes ends the lane goroutines, each after its request in flight.
func (s *slot) stopLanes() {
	if s.laneStop != nil {
		close(s.laneStop)
		s.laneStop = nil
	}
	s.lanes.Wait()
}

// takeRetry returns the requests lanes could not start.
func (s *slot) takeRetry() []*job {
	s.retryMu.Lock()
	defer s.retryMu.Unlock()
	r := s.retry
	s.retry = nil
	return r
}

// runLane serves requests on one thread of proc until stop, the pool's
// stop (after draining the queue), or the worker's end. Threads serve one
// request at a time and are not batched: a threaded app is one whose
// requests wait on I/O.
func (s *slot) runLane(proc *process, ln *lane, stop chan struct{}) {
	defer s.lanes.Done()
	p := s.pool
	one := make([]*job, 1)
	for {
		j := p.next(stop, proc.exited)
		if j == nil {
			return
		}
		one[0] = j
		retry, ok := s.serve(proc, ln, one)
		if len(retry) > 0 {
			s.retryMu.Lock()
			s.retry = append(s.retry, retry...)
			s.retryMu.Unlock()
		}
		if !ok {
			return // the slot sees the worker's end and replaces it
		}
	}
}

// drain serves what is still queued, then lets the worker go. Requests
// left in the queue (this worker died) are refused by Pool.Stop.
func (s *slot) drain(proc *process) {
	p := s.pool
	var held []*job // taken, not yet served (a batch's overflow)
	for {
		var jobs []*job
		if len(held) > 0 {
			jobs, held = held, nil
		} else {
			if j := p.q.pop(); j != nil {
				jobs = s.batch(j)
			}
		}
		if len(jobs) == 0 {
			break
		}
		if !s.dispatch(proc, jobs, &held) {
			for _, j := range held {
				p.refuse(j)
			}
			p.nslots.Add(-1)
			return
		}
	}
	s.stopLanes()
	p.m.Exit(metrics.CauseStop)
	if proc.stop(5 * time.Second) {
		proc.log.Warn("worker did not exit after its socket closed; killed it")
	}
	p.nslots.Add(-1)
}

// maybeRecycle starts booting a replacement when the worker has served
// max_requests, lived max_lifetime or grown past max_rss. The worker keeps
// serving until the replacement is ready, so capacity never drops; at most
// a quarter of a pool's workers (at least one) recycle at a time.
func (s *slot) maybeRecycle() {
	if s.replace != nil {
		return
	}
	p := s.pool
	a := p.app
	proc := s.current()
	var reason string
	var args []any
	switch {
	case s.limit > 0 && s.served.Load() >= s.limit:
		reason, args = "max_requests", []any{"served", s.served.Load()}
	case a.MaxLifetime > 0 && time.Since(s.since) >= a.MaxLifetime:
		reason, args = "max_lifetime", []any{"age", time.Since(s.since).Round(time.Second)}
	case a.MaxRSS > 0 && time.Since(s.since) >= 2*checkEvery:
		// A new worker is judged by its memory only after a moment: its
		// start may peak, and when every worker is over max_rss (a limit
		// set too low), the others get their turn rather than the last
		// replaced one recycling again and again.
		if time.Since(s.rssAt) >= checkEvery {
			s.rss, s.rssAt = proc.rss(), time.Now()
		}
		if s.rss > a.MaxRSS {
			reason, args = "max_rss", []any{"rss", s.rss}
		}
	}
	if reason == "" {
		return
	}
	limit := int32(max(1, int(p.nslots.Load())/4))
	if n := p.replaces.Load(); n >= limit || !p.replaces.CompareAndSwap(n, n+1) {
		return // others are recycling; try again on the next request or check
	}
	proc.log.Info("recycling worker", append([]any{"reason", reason}, args...)...)
	s.recycled = recycleCauses[reason]
	ch := make(chan replacement, 1)
	s.replace = ch
	go func() {
		np, err := p.spawn(p.ctx)
		ch <- replacement{np, err}
	}()
}

// recycleCauses are maybeRecycle's reasons as worker exit causes.
var recycleCauses = map[string]metrics.Cause{
	"max_requests": metrics.CauseMaxRequests,
	"max_lifetime": metrics.CauseMaxLifetime,
	"max_rss":      metrics.CauseMaxRSS,
}

// swap puts a booted replacement in place of the (idle) current worker.
func (s *slot) swap(r replacement) {
	s.replace = nil
	s.pool.replaces.Add(-1)
	if r.err != nil {
		s.pool.log.Error("booting a replacement worker failed; the old one keeps serving", "err", r.err)
		s.mu.Lock()
		s.since = time.Now() // do not retry at once
		s.mu.Unlock()
		s.served.Store(0)
		return
	}
	old := s.current()
	s.setProc(r.proc)
	if old == nil {
		r.proc.log.Info("worker started in place of one that died")
		return
	}
	r.proc.log.Info("worker replaced", "old_pid", old.pid)
	s.pool.m.Exit(s.recycled)
	go old.stop(5 * time.Second)
}

// dropReplace stops a replacement that is still booting, once it is up
// (or has failed), without waiting for it.
func (s *slot) dropReplace() {
	if s.replace == nil {
		return
	}
	ch := s.replace
	s.replace = nil
	go func() {
		r := <-ch
		s.pool.replaces.Add(-1)
		if r.err == nil {
			r.proc.stop(time.Second)
		}
	}()
}

// serve sends jobs to proc in one write and hands each answer to its
// client in turn. The worker answers in order, so when it fails on one
// request, the requests after it were never started: they are returned
// to be retried on the replacement. ok reports whether proc is still
// usable.
func (s *slot) serve(proc *process, ln *lane, jobs []*job) (retry []*job, ok bool) {
	p := s.pool
	now := time.Now().UnixNano()
	p.lastTake.Store(now)
	all := p.claim(jobs, now)
	if len(all) == 0 {
		return nil, true
	}
	// The worker answers the first request before it reads past it, and
	// blocks writing a big answer while berth is still writing the batch:
	// what follows the first request must fit in the socket's buffer.
	// Requests past that go in the next write.
	live := all[:fitBatch(all)]
	s.began.Store(now)
	s.busy.Add(1)
	defer func() {
		s.lastBusy.Store(time.Now().UnixNano())
		s.busy.Add(-1)
	}()
	_ = ln.conn.SetDeadline(time.Now().Add(p.app.Timeout))
	base := ln.seq
	ln.seq += uint32(len(live))
	if len(live) > 1 {
		s.watchBatch(proc)
		defer s.batchDone()
	}
	// lost ends live[k:] after the worker failed there, and returns what
	// to send again: those it never started and those not in this write.
	lost := func(k int, err error) []*job {
		return append(s.unanswered(proc, ln, live[k:], base+uint32(k)+1, err), all[len(live):]...)
	}
	if n, err := s.send(ln, live); err != nil {
		if n == 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
			// Nothing reached the worker: it died idle, and the
			// requests go to its replacement.
			proc.kill()
			proc.log.Warn("worker gone before it got a request; replacing it", "status", proc.exitStatus())
			return all, false
		}
		return lost(0, err), false
	}
	prev := time.Now()
	for i, j := range live {
		// Each answer gets the app's timeout from when the one before it
		// came, unless it is read already: the worker writes a batch's
		// answers at once, and renewing a deadline is a timer change.
		if i > 0 && ln.br.Buffered() < wire.HeaderSize {
			_ = ln.conn.SetDeadline(time.Now().Add(p.app.Timeout))
		}
		f, err := ln.r.Next()
		now := time.Now()
		p.observe(now.Sub(prev))
		prev = now
		if err != nil {
			return lost(i, err), false
		}
		ex := &j.ex
		*ex = Exchange{proc: proc, lane: ln, seq: base + uint32(i) + 1, timeout: p.app.Timeout, PID: proc.pid, QueueWait: j.wait, release: j.release}
		if !readHead(proc, f, ex) {
			j.err = ErrWorkerDied
			close(j.ready)
			return lost(i+1, nil), false
		}
		close(j.ready)
		<-j.release
		s.served.Add(1)
		p.served.Add(1)
		p.m.Served()
		if ex.broken {
			proc.kill()
			return lost(i+1, nil), false
		}
	}
	return all[len(live):], true
}

// claim returns the jobs a slot may serve, in jobs' memory: a job held
// from a worker that died before getting it is taken already; a queued
// one is taken now (its wait counted), unless its client gave up.
func (p *Pool) claim(jobs []*job, now int64) []*job {
	all := jobs[:0]
	for _, j := range jobs {
		if j.state.Load() == jobTaken {
			all = append(all, j) // held for a replacement: its wait is counted
		} else if j.state.CompareAndSwap(jobQueued, jobTaken) {
			j.wait = time.Duration(now - j.queued)
			p.m.QueueWait(j.wait)
			all = append(all, j)
		}
	}
	return all
}

// unanswered ends the requests of a batch that the worker failed to
// answer — jobs, numbered on ln from first — and returns those to send
// again (see afterDeath): the requests it never started are sent again;
// the last one it started fails with what the worker died of, and any it
// started before that with 502, their answers lost with the worker (it
// sends a batch's answers together at its end).
func (s *slot) unanswered(proc *process, ln *lane, jobs []*job, first uint32, err error) []*job {
	n, failed := s.afterDeath(proc, ln, first, len(jobs), err)
	for k, j := range jobs[:n] {
		j.err = ErrWorkerDied
		if k == n-1 {
			j.err = failed
		}
		close(j.ready)
	}
	return jobs[n:]
}

// afterDeath kills a worker that failed to answer (after a stack dump
// when err is a timeout; err nil: the caller has killed it) and reads
// from its marks how many of the count requests numbered on ln from
// first it had started; failed is the error of the last one started (504
// for a timeout, else 502). The others it never started: sent again, none
// ever runs twice.
func (s *slot) afterDeath(proc *process, ln *lane, first uint32, count int, err error) (started int, failed error) {
	failed = s.killFor(proc, err)
	if count == 0 {
		return 0, failed
	}
	started = int(min(max(int64(proc.started(ln))-int64(first)+1, 0), int64(count)))
	switch {
	case started == 0:
		proc.log.Warn("worker died before it started a request; replacing it and sending the request to the replacement",
			"status", proc.exitStatus(), "waiting", count)
	case err != nil && failed == ErrWorkerDied:
		proc.log.Error("worker died while serving a request; replacing it", "status", proc.exitStatus(), "err", err,
			"lost", started, "resent", count-started)
	}
	return started, failed
}

// overdueAfter is how long a batch may take before its worker is asked
// for the answers it has made so far, and then how often: several times
// the batch budget, so that a batch of fast requests is never asked, and
// an answer waits at most about this long for a slow request after it.
const overdueAfter = 10 * time.Millisecond

// watchBatch starts the overdue timer for a batch sent to proc.
func (s *slot) watchBatch(proc *process) {
	s.batching.Store(proc)
	s.overdue.Reset(overdueAfter)
}

// batchDone stops the overdue timer: the batch is answered, or its
// worker is gone.
func (s *slot) batchDone() {
	s.batching.Store(nil)
	s.overdue.Stop()
}

// batchOverdue asks the worker of a batch still unanswered for what it
// has, and asks again after overdueAfter while the batch lasts.
func (s *slot) batchOverdue() {
	if proc := s.batching.Load(); proc != nil {
		proc.askFlush()
		s.overdue.Reset(overdueAfter)
	}
}

// batchBytes bounds the bytes of a batch after its first request: well
// within a Unix socket's buffer (about 200 KiB), so that writing a batch
// never waits for the worker to read.
const batchBytes = 64 << 10

// fitBatch returns how many of jobs go to the worker in one write: the
// first, and those after it while they fit in batchBytes.
func fitBatch(jobs []*job) int {
	size := 0
	for i := 1; i < len(jobs); i++ {
		size += len(jobs[i].Frame) + len(jobs[i].Body)
		if size > batchBytes {
			return i
		}
	}
	return len(jobs)
}

// send writes the jobs' frames to the worker in one writev, or one by one
// when a body travels as a file descriptor (which must ride with its own
// frame's first byte). It returns the bytes written.
func (s *slot) send(ln *lane, jobs []*job) (int64, error) {
	withFile := false
	for _, j := range jobs {
		withFile = withFile || j.fd() != nil
	}
	if !withFile {
		var bufs net.Buffers
		if len(jobs) == 1 {
			bufs = net.Buffers{jobs[0].Frame, jobs[0].Body}
		} else {
			bufs = s.bufs[:0] // only lane 0 batches
			for _, j := range jobs {
				bufs = append(bufs, j.Frame, j.Body)
			}
			s.bufs = bufs
		}
		return bufs.WriteTo(ln.conn.UnixConn)
	}
	var total int64
	for _, j := range jobs {
		var n int64
		var err error
		if fd := j.fd(); fd != nil {
			var m int
			m, err = wire.WriteWithFile(ln.conn.UnixConn, j.Frame, fd)
			n = int64(m)
			if err == nil && len(j.Body) > 0 {
				// A socket's body starts in the frame; the descriptor
				// went with the frame's first byte.
				m, err = ln.conn.UnixConn.Write(j.Body)
				n += int64(m)
			}
		} else {
			bufs := net.Buffers{j.Frame, j.Body}
			n, err = bufs.WriteTo(ln.conn.UnixConn)
		}
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// killFor kills a worker that could not answer — after a stack dump when
// it ran past its timeout — and returns the error of the request it was
// serving: ErrTimeout (504) or ErrWorkerDied (502). Whether it had started
// that request at all its marks tell (unanswered, directFailed).
func (s *slot) killFor(proc *process, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		proc.log.Error("request timed out; dumping the worker's stack and killing it", "timeout", s.pool.app.Timeout)
		proc.setCause(metrics.CauseTimeout)
		s.pool.m.Timeout()
		proc.dumpAndKill()
		return ErrTimeout
	}
	proc.kill()
	return ErrWorkerDied
}

// readHead fills ex from the worker's first response frame f. A frame
// of another type breaks the protocol: the worker is killed and
// readHead reports false.
func readHead(proc *process, f wire.Frame, ex *Exchange) bool {
	if f.Type != wire.TypeResponse {
		proc.log.Error("worker broke the protocol; killing it", "frame", f.Type.String())
		proc.kill()
		return false
	}
	ex.more = f.Flags&wire.FlagMore != 0
	if err := wire.ParseHead(f.Payload, &ex.Head); err != nil {
		proc.log.Error("app sent an invalid response", "err", err)
		ex.Invalid = err
	}
	if f.Flags&wire.FlagBodyShared != 0 {
		// The body is in the lane's out ring; the payload ends with
		// its place and length.
		var err error
		if b := ex.Head.Body; len(b) == 8 {
			pos, n := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
			ex.Head.Body, err = proc.out.body(ex.lane.index, pos, n)
			ex.outEnd = pos + n
		} else {
			err = fmt.Errorf("%w: a shared body's place of %d bytes", wire.ErrBadResponse, len(b))
		}
		if err != nil {
			if !errors.Is(err, errOutGone) {
				proc.log.Error("worker broke the protocol; killing it", "err", err)
			}
			proc.kill()
			return false
		}
		ex.outBody = true
	}
	return true
}

func (p *Pool) isStopped() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stopped
}
