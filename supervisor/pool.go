package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/units"
)

// Errors returned by Do; the front maps each to its HTTP status.
var (
	// ErrQueueFull: every worker is busy and the queue is at its limit (503).
	ErrQueueFull = errors.New("all workers busy and the queue is full")
	// ErrQueueTimeout: no worker became idle within queue_timeout (503).
	ErrQueueTimeout = errors.New("no worker became idle within queue_timeout")
	// ErrWorkerDied: the worker exited while it held the request (502).
	ErrWorkerDied = errors.New("worker died while serving the request")
	// ErrTimeout: the request ran past the app's timeout (504).
	ErrTimeout = errors.New("request timed out")
	// ErrAborted: the app failed after its response had started; the
	// client connection must be closed.
	ErrAborted = errors.New("app failed mid-response")
	// ErrStopped: the pool is shutting down (503).
	ErrStopped = errors.New("app is stopping")
)

// A job's state: queued, then taken by a slot, or abandoned by
// Pool.expire when it waited past queue_timeout.
const (
	jobQueued int32 = iota
	jobTaken
	jobAbandoned
)

// Request is one request as the worker gets it: its frame (wire's
// RequestEncoder), then either the body bytes, or, for a body spilled to
// disk or in shared memory (the frame says which), the file whose
// descriptor travels with the frame, or, for a body waiting in the
// client's socket (wire.FlagBodySocket), its first bytes and that socket.
// The caller keeps the file or socket open until Do returns.
type Request struct {
	Frame, Body []byte
	BodyFile    *os.File
	BodySocket  syscall.Conn
}

// fd is the descriptor that travels with the request's frame, or nil.
func (r *Request) fd() syscall.Conn {
	switch {
	case r.BodyFile != nil:
		return r.BodyFile
	case r.BodySocket != nil:
		return r.BodySocket
	}
	return nil
}

// job is one request on its way through the queue to a worker.
type job struct {
	Request
	state   atomic.Int32
	ready   chan struct{} // a response head or an error is available
	release chan struct{} // the front is done with the exchange
	queued  int64         // unix nanos when it was queued
	wait    time.Duration // how long it waited, once taken
	ex      Exchange
	err     error
}

// Pool is one generation of one app: its workers and its request queue.
type Pool struct {
	// Fixed when the pool is made (NewPool, Start), read by all.
	app     units.App
	gen     int
	log     *slog.Logger
	q       *queue // has its own lock
	started time.Time
	// m is the app's series, which outlive the pool (nil: not counted).
	m *metrics.App

	// Stop's: stop and ctx end when it begins (workers still booting,
	// respawns, recycles, scale-ups, are not waited for); drained is
	// closed when it has seen every slot end.
	stop    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	drained chan struct{}

	// Guarded by mu, which orders Do against Stop: once Stop holds it,
	// no request can be queued any more, so every queued request is one
	// the draining slots will see.
	mu      sync.RWMutex
	stopped bool

	// The slots: the set under slotsMu, and idleOrder, rebuilt from it
	// under slotsMu (orderSlots) and read by Do without a lock: the
	// slots in the order Do tries their workers for a direct request
	// (see direct.go). wg counts the slots' goroutines and scale's.
	wg        sync.WaitGroup
	slotsMu   sync.Mutex
	slots     map[*slot]struct{}
	idleOrder atomic.Pointer[[]*slot]

	// Atomics, read and written by Do, the slots and scale without a
	// lock.
	nslots   atomic.Int32 // slots running or being added
	nextID   atomic.Int32
	replaces atomic.Int32 // recycles in progress, to stagger them
	served   atomic.Int64 // requests answered by workers of this pool
	lastTake atomic.Int64 // unix nanos when a slot last took a request
	// serviceNS is a moving average of the time a worker takes per
	// request, in nanoseconds; it sizes batches and decides holding
	// (wake.go).
	serviceNS atomic.Int64
}

// observe folds one request's service time into serviceNS (an EWMA with
// weight 1/8; concurrent updates may lose one, which an average forgives).
func (p *Pool) observe(d time.Duration) {
	old := p.serviceNS.Load()
	if old == 0 {
		p.serviceNS.Store(int64(d))
		return
	}
	p.serviceNS.Store(old + (int64(d)-old)/8)
}

// Healthy reports a pool whose dispatch has stopped moving: requests
// queued and none taken for longer than a request may take.
func (p *Pool) Healthy() error {
	if p.q.len() == 0 {
		return nil
	}
	limit := 2 * max(p.app.Timeout, p.app.QueueTimeout)
	if since := time.Since(time.Unix(0, p.lastTake.Load())); since > limit {
		return fmt.Errorf("%d requests queued and none dispatched for %s", p.q.len(), since.Round(time.Second))
	}
	return nil
}

// NewPool returns generation gen of app; nothing runs until Start.
func NewPool(app units.App, gen int, log *slog.Logger) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{
		ctx:     ctx,
		cancel:  cancel,
		app:     app,
		gen:     gen,
		log:     log.With(journal.KeyApp, app.Name, "generation", gen),
		q:       newQueue(app.QueueSize),
		stop:    make(chan struct{}),
		drained: make(chan struct{}),
		slots:   map[*slot]struct{}{},
	}
}

// App is the configuration the pool runs.
func (p *Pool) App() units.App { return p.app }

// Generation is the pool's generation number.
func (p *Pool) Generation() int { return p.gen }

// Start spawns the app's initial workers and returns once all have
// imported the app and said hello. If any fails to boot, Start stops the
// others and returns that failure (a *BootError carries Python's
// traceback): an app that cannot import is an error, not a crash loop.
func (p *Pool) Start(ctx context.Context) error {
	p.started = time.Now()
	type result struct {
		proc *process
		err  error
	}
	n := p.app.Workers
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			proc, err := p.spawn(ctx)
			results <- result{proc, err}
		}()
	}
	var procs []*process
	var firstErr error
	for i := 0; i < n; i++ {
		r := <-results
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		procs = append(procs, r.proc)
	}
	if firstErr != nil {
		for _, proc := range procs {
			proc.stop(time.Second)
		}
		return firstErr
	}
	for _, proc := range procs {
		p.nslots.Add(1)
		p.addSlot(proc)
	}
	if p.app.MaxWorkers > p.app.MinWorkers {
		p.wg.Add(1)
		go p.scale()
	}
	go p.expire()
	p.log.Info("workers ready", "workers", len(procs), "module", p.app.Module)
	return nil
}

// addSlot starts the goroutine that owns proc. The caller has counted
// the slot in nslots.
func (p *Pool) addSlot(proc *process) {
	s := &slot{pool: p, id: int(p.nextID.Add(1)), handback: make(chan handback, 1)}
	s.overdue = time.AfterFunc(time.Hour, s.batchOverdue)
	s.overdue.Stop()
	s.setProc(proc)
	p.slotsMu.Lock()
	p.slots[s] = struct{}{}
	p.orderSlots()
	p.slotsMu.Unlock()
	p.wg.Add(1)
	go s.run()
}

func (p *Pool) removeSlot(s *slot) {
	p.slotsMu.Lock()
	delete(p.slots, s)
	p.orderSlots()
	p.slotsMu.Unlock()
}

// orderSlots rebuilds idleOrder, oldest slot first. slotsMu is held.
func (p *Pool) orderSlots() {
	list := make([]*slot, 0, len(p.slots))
	for s := range p.slots {
		list = append(list, s)
	}
	slices.SortFunc(list, func(a, b *slot) int { return cmp.Compare(a.id, b.id) })
	p.idleOrder.Store(&list)
}

// Do queues one request — frame is its encoded request frame (see
// wire.RequestEncoder), body follows it on the wire — and waits for an idle
// worker to answer. On success the caller owns the returned Exchange and
// must Close it; the worker stays reserved until then.
func (p *Pool) Do(r Request) (*Exchange, error) {
	p.mu.RLock()
	if p.stopped {
		p.mu.RUnlock()
		return nil, ErrStopped
	}
	hold := p.hold()
	if p.q.len() == 0 && !hold {
		// A worker is idle and nobody waits before this request: it is
		// served on this goroutine (direct.go).
		if s := p.takeIdle(); s != nil {
			p.mu.RUnlock()
			if ex, err, ok := s.direct(r); ok {
				return ex, err
			}
			// The worker was gone: the request waits in the queue for
			// its replacement, like any other.
			p.mu.RLock()
			if p.stopped {
				p.mu.RUnlock()
				return nil, ErrStopped
			}
		}
	}
	j := &job{Request: r, ready: make(chan struct{}), release: make(chan struct{}), queued: time.Now().UnixNano()}
	if !p.q.push(j) {
		p.mu.RUnlock()
		return nil, ErrQueueFull
	}
	p.mu.RUnlock()
	// A slot answers, or Pool.expire with ErrQueueTimeout.
	// A held request whose busy workers all ended while it was queued
	// wakes one after all: they may have looked at the queue before it
	// was in (they look again after going idle, and kick finds them).
	if hold && p.busyFast() > 0 {
		p.awaitHeld(j)
	} else {
		p.kick()
		<-j.ready
	}
	if j.err != nil {
		return nil, j.err
	}
	return &j.ex, nil
}

// scale adds a worker when requests have waited in the queue for
// SpawnAfter, up to MaxWorkers; slots retire themselves when idle.
func (p *Pool) scale() {
	defer p.wg.Done()
	tick := time.NewTicker(max(p.app.SpawnAfter/4, 5*time.Millisecond))
	defer tick.Stop()
	var waitingSince time.Time
	var spawning atomic.Bool
	for {
		select {
		case <-p.stop:
			return
		case now := <-tick.C:
			if p.q.len() == 0 || p.idleWorkers() > 0 {
				// Nothing waits, or it waits for a busy worker by choice
				// (wake.go) while another is idle: no worker is missing.
				waitingSince = time.Time{}
				continue
			}
			if waitingSince.IsZero() {
				waitingSince = now
				continue
			}
			if now.Sub(waitingSince) < p.app.SpawnAfter || spawning.Load() {
				continue
			}
			if n := p.nslots.Load(); int(n) >= p.app.MaxWorkers || !p.nslots.CompareAndSwap(n, n+1) {
				continue
			}
			spawning.Store(true)
			waitingSince = now
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer spawning.Store(false)
				proc, err := p.spawn(p.ctx)
				if err != nil {
					p.nslots.Add(-1)
					if !p.isStopped() {
						p.log.Error("adding a worker failed", "err", err)
					}
					return
				}
				p.mu.RLock()
				stopped := p.stopped
				p.mu.RUnlock()
				if stopped {
					p.nslots.Add(-1)
					proc.stop(time.Second)
					return
				}
				p.addSlot(proc)
				proc.log.Info("worker added: requests were waiting", "workers", p.nslots.Load())
			}()
		}
	}
}

// Stop stops taking requests, lets every queued and in-flight request
// finish, and stops the workers. When ctx ends first, the workers still
// running are killed and Stop says how many.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	close(p.stop)
	p.cancel()
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		// Whatever is still queued (its worker died while draining) is
		// refused at once; App.Do sends it to the next generation.
		for j := p.q.pop(); j != nil; j = p.q.pop() {
			p.refuse(j)
		}
		close(p.drained)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	p.slotsMu.Lock()
	var left []*process
	for s := range p.slots {
		if proc := s.current(); proc != nil {
			left = append(left, proc)
		}
	}
	p.slotsMu.Unlock()
	for _, proc := range left {
		proc.setCause(metrics.CauseStop)
		proc.kill()
	}
	<-done
	return fmt.Errorf("app %q generation %d: killed %d worker(s) still running at the end of graceful_timeout", p.app.Name, p.gen, len(left))
}

// refuse answers a job no worker of this pool will serve with ErrStopped.
func (p *Pool) refuse(j *job) {
	if j.state.Load() == jobTaken || j.state.CompareAndSwap(jobQueued, jobTaken) {
		j.err = ErrStopped
		close(j.ready)
	}
}
