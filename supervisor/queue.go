package supervisor

import (
	"sync"
	"sync/atomic"
	"time"
)

// queue holds a pool's requests waiting for a worker, oldest first.
//
// It is a ring under a mutex rather than a channel so that the oldest
// request can be looked at without taking it: queue_timeout is enforced
// by one timer per pool (Pool.expire) instead of one per queued request,
// and a waiting request is a plain channel receive instead of a select on
// its answer and its timer. At 1,000 connections that select, the timer
// and the timer heap were ~3.5% of berth's samples, Pool.Do 7.2% in all
// (4.5% with this queue); without them berth served more in 7 of 8
// interleaved bench/ab.sh rounds, mostly by 3-5%. A batch is also taken
// under one lock rather than by one channel receive per request.
type queue struct {
	mu      sync.Mutex
	ring    []*job // grows by doubling up to size
	head, n int
	size    int

	// length is n, for the many readers that only need to know whether
	// requests wait.
	length atomic.Int32
	// avail holds a token while requests may be waiting and lanes of
	// threaded workers wait for one (Pool.next).
	avail chan struct{}
	// lanes counts the lanes blocked for a request: with queue = 0 a
	// request still goes to one of them rather than being refused.
	lanes atomic.Int32
}

func newQueue(size int) *queue {
	return &queue{size: size, avail: make(chan struct{}, 1)}
}

// push adds j at the tail. It reports false when the queue is full.
func (q *queue) push(j *job) bool {
	q.mu.Lock()
	if q.n >= max(q.size, int(q.lanes.Load())) {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = j
	q.n++
	q.length.Store(int32(q.n))
	q.mu.Unlock()
	if q.lanes.Load() > 0 {
		q.signal()
	}
	return true
}

// grow doubles the ring, keeping the order. mu is held.
func (q *queue) grow() {
	ring := make([]*job, max(16, 2*len(q.ring)))
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// signal leaves a token for a blocked lane, unless one is there already.
func (q *queue) signal() {
	select {
	case q.avail <- struct{}{}:
	default:
	}
}

// pop takes the oldest request, or returns nil when none waits.
func (q *queue) pop() *job {
	if q.length.Load() == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil
	}
	return q.popLocked()
}

func (q *queue) popLocked() *job {
	j := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.length.Store(int32(q.n))
	return j
}

// take appends up to n of the oldest requests to jobs, under one lock.
func (q *queue) take(jobs []*job, n int) []*job {
	if n <= 0 || q.length.Load() == 0 {
		return jobs
	}
	q.mu.Lock()
	for ; n > 0 && q.n > 0; n-- {
		jobs = append(jobs, q.popLocked())
	}
	q.mu.Unlock()
	return jobs
}

// expired takes the requests queued before cutoff (unix nanos) and
// returns them, with the queueing time of the oldest request left (0 when
// none is).
func (q *queue) expired(cutoff int64) (old []*job, next int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n > 0 && q.ring[q.head].queued < cutoff {
		old = append(old, q.popLocked())
	}
	if q.n > 0 {
		next = q.ring[q.head].queued
	}
	return old, next
}

// next waits for a queued request for a lane of a threaded worker, or
// returns nil when the lane must end: stop or exited is closed, or the pool
// stops and nothing is left queued.
//
// The lane counts itself as waiting before it looks at the queue: a push
// that saw no lane waiting put its request where this look finds it, and
// one that saw it leaves a token. A waiting lane is also room for one
// request in a queue of size 0.
func (p *Pool) next(stop, exited <-chan struct{}) *job {
	for {
		select {
		case <-stop:
			return nil
		case <-exited:
			return nil
		default:
		}
		p.q.lanes.Add(1)
		j := p.q.pop()
		if j == nil {
			select {
			case <-p.q.avail:
				j = p.q.pop() // nil when another lane was quicker
			case <-stop:
			case <-exited:
			case <-p.stop:
				if j = p.q.pop(); j == nil {
					p.q.lanes.Add(-1)
					return nil
				}
			}
		}
		p.q.lanes.Add(-1)
		if j != nil {
			if p.q.len() > 0 {
				p.q.signal() // for the next waiting lane
			}
			return j
		}
	}
}

// len is how many requests wait.
func (q *queue) len() int { return int(q.length.Load()) }

// expire answers ErrQueueTimeout to every request that waited longer than
// queue_timeout, until the pool has stopped (its slots may drain the
// queue for a while after Stop begins). It sleeps until the oldest
// request's time is up, or an eighth of the timeout while none waits.
func (p *Pool) expire() {
	limit := p.app.QueueTimeout
	idle := max(limit/8, 10*time.Millisecond)
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case <-p.drained:
			return
		case <-t.C:
		}
		now := time.Now()
		old, next := p.q.expired(now.Add(-limit).UnixNano())
		for _, j := range old {
			if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
				p.m.QueueWait(time.Duration(now.UnixNano() - j.queued))
				j.err = ErrQueueTimeout
				close(j.ready)
			}
		}
		wait := idle
		if next != 0 {
			wait = max(time.Until(time.Unix(0, next).Add(limit)), 0)
		}
		t.Reset(wait)
	}
}
