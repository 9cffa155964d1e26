package supervisor

import (
	"sync"
	"time"
)

// Waking a sleeping worker is the dearest step of a request on a fast app:
// the Go front writes to the worker's socket, the kernel wakes the worker's
// process, and it answers and sleeps again, each a context switch on both
// sides. A worker that is busy already takes a queued request with none of
// that: it reads it after the one it serves, often in the same batch. So
// a request that arrives while workers are busy on a fast app waits in the
// queue for one of them (held) instead of waking an idle worker, as long as
// the wait that asks of it stays within wakeBudget; past that, or when the
// app is slow, an idle worker is woken as before. Requests still go only
// to idle workers (the central queue holds them meanwhile): this only
// decides when another worker is woken.
//
// Behind nginx (one nginx worker, upstream keep-alive, wrk -c50, hello
// app, 2 workers) nginx hands berth one request at a time, so nearly
// every request found a worker idle and woke it: the workers slept and
// woke about once a request and berth's Go process spent 22 µs a request
// against 10 with wrk straight to it. Holding took berth's process from
// 22.1 to 16.7 µs a request and its workers from 10.1 to 6.4, and hello
// from 0.63-0.82x uWSGI to 0.79-0.92x (Flask unchanged within the noise,
// 0.95-1.30x): bench/RESULTS.md, "waking fewer workers".
//
// wakeBudget is batchBudget's bound for the same reason: the longest a
// fast request is asked to wait for the ones before it on a busy worker.
const wakeBudget = batchBudget

// hold reports whether a request arriving now should wait in the queue
// for a busy worker rather than wake an idle one: the app is fast (its
// service time is known and within wakeBudget), the queue has room
// (queue = 0 never holds), some worker is serving
// and began within wakeBudget (one stuck on a slow request does not
// count), and the queue ahead of this request, shared among those
// workers, clears within wakeBudget.
func (p *Pool) hold() bool {
	svc := p.serviceNS.Load()
	if svc == 0 || svc > int64(wakeBudget) || p.q.len() >= p.q.size-1 {
		return false // unknown or slow app, or no room to wait in
	}
	busy := p.busyFast()
	return busy > 0 && int64(p.q.len()+1)*svc <= int64(wakeBudget)*busy
}

// busyFast counts the workers serving a request they began within
// wakeBudget: those a held request may wait for.
func (p *Pool) busyFast() int64 {
	list := p.idleOrder.Load()
	if list == nil {
		return 0
	}
	var now int64 // read once a busy worker is found: an idle pool needs no clock
	n := int64(0)
	for _, s := range *list {
		if s.busy.Load() == 0 {
			continue
		}
		if now == 0 {
			now = time.Now().UnixNano()
		}
		if now-s.began.Load() < int64(wakeBudget) {
			n++
		}
	}
	return n
}

// awaitHeld waits for a held request's answer. Whichever busy worker ends
// first serves the queue (endDirect, slot.run); one that turns out slow
// after the request was held does not keep it: past wakeBudget an idle
// worker is woken for it (kick).
func (p *Pool) awaitHeld(j *job) {
	t, _ := heldTimers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(wakeBudget)
	} else {
		t.Reset(wakeBudget)
	}
	select {
	case <-j.ready:
	case <-t.C:
		p.kick()
		<-j.ready
	}
	t.Stop() // since Go 1.23 no stale tick can be left in t.C for its next user
	heldTimers.Put(t)
}

// heldTimers are awaitHeld's timers, reused: on a fast app nearly every
// request is held, and a timer each would be an allocation each.
var heldTimers sync.Pool
