// Package supervisor runs each app's pool of Python workers: it spawns
// them, waits until they are ready, dispatches requests from one central
// queue to idle workers only, times requests out, and replaces workers that
// die.
//
// One goroutine per worker slot owns that worker's socket. A slot takes a
// request from the app's queue only when its worker is idle, so the queue
// is the only place requests wait and a slow request never holds up
// another one behind it on the same worker.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
	"github.com/berthd/berth/wire"
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

const (
	jobQueued int32 = iota
	jobTaken
	jobAbandoned
)

// job is one request on its way through the queue to a worker.
type job struct {
	frame, body []byte
	state       atomic.Int32
	ready       chan struct{} // a response head or an error is available
	release     chan struct{} // the front is done with the exchange
	ex          Exchange
	err         error
}

// Pool is one app's workers and its request queue.
type Pool struct {
	app     units.App
	log     *slog.Logger
	queue   chan *job
	stop    chan struct{}
	stopped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	procs   map[*process]struct{} // live workers, for a forced stop
}

// NewPool returns a pool for app; nothing runs until Start.
func NewPool(app units.App, log *slog.Logger) *Pool {
	return &Pool{
		app:   app,
		log:   log.With(journal.KeyApp, app.Name),
		queue: make(chan *job, app.QueueSize),
		stop:  make(chan struct{}),
		procs: map[*process]struct{}{},
	}
}

// App is the configuration the pool runs.
func (p *Pool) App() units.App { return p.app }

// Start spawns every worker and returns once all have imported the app and
// said hello. If any worker fails to boot, Start stops the others and
// returns that failure (a *BootError carries Python's traceback): an app
// that cannot import is an error at start-up, not a crash loop.
func (p *Pool) Start(ctx context.Context) error {
	type result struct {
		proc *process
		err  error
	}
	results := make(chan result, p.app.Workers)
	for i := 0; i < p.app.Workers; i++ {
		go func() {
			proc, err := spawn(ctx, &p.app, p.log)
			results <- result{proc, err}
		}()
	}
	var procs []*process
	var firstErr error
	for i := 0; i < p.app.Workers; i++ {
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
		p.track(proc, true)
		p.wg.Add(1)
		go p.runSlot(proc)
	}
	p.log.Info("workers ready", "workers", len(procs), "module", p.app.Module)
	return nil
}

func (p *Pool) track(proc *process, live bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if live {
		p.procs[proc] = struct{}{}
	} else {
		delete(p.procs, proc)
	}
}

// Do queues one request — frame is its encoded request frame (see
// wire.RequestEncoder), body follows it on the wire — and waits for an idle
// worker to answer. On success the caller owns the returned Exchange and
// must Close it; the worker stays reserved until then.
func (p *Pool) Do(frame, body []byte) (*Exchange, error) {
	if p.stopped.Load() {
		return nil, ErrStopped
	}
	j := &job{frame: frame, body: body, ready: make(chan struct{}), release: make(chan struct{})}
	select {
	case p.queue <- j:
	default:
		return nil, ErrQueueFull
	}
	t := time.NewTimer(p.app.QueueTimeout)
	select {
	case <-j.ready:
		t.Stop()
	case <-t.C:
		if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
			return nil, ErrQueueTimeout
		}
		<-j.ready
	}
	if j.err != nil {
		return nil, j.err
	}
	return &j.ex, nil
}

// runSlot owns one worker slot: it serves requests from the queue on its
// worker, and replaces the worker when it dies.
func (p *Pool) runSlot(proc *process) {
	defer p.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		if proc == nil {
			if p.stopped.Load() {
				return
			}
			var err error
			proc, err = spawn(context.Background(), &p.app, p.log)
			if err != nil {
				p.log.Error("replacing worker failed; retrying", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-p.stop:
					return
				}
				backoff = min(backoff*2, 30*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			p.track(proc, true)
			proc.log.Info("worker started")
		}
		select {
		case j := <-p.queue:
			if !p.serve(proc, j) {
				p.track(proc, false)
				proc = nil
			}
		case <-proc.exited:
			proc.log.Warn("worker exited unexpectedly; replacing it", "status", proc.exitStatus())
			p.track(proc, false)
			proc.conn.Close()
			proc = nil
		case <-p.stop:
			// Serve what is still queued, then let the worker go.
			for {
				select {
				case j := <-p.queue:
					if !p.serve(proc, j) {
						p.track(proc, false)
						return
					}
					continue
				default:
				}
				break
			}
			if proc.stop(5 * time.Second) {
				proc.log.Warn("worker did not exit after its socket closed; killed it")
			}
			p.track(proc, false)
			return
		}
	}
}

// serve runs one job on proc. It reports whether proc is still usable.
func (p *Pool) serve(proc *process, j *job) bool {
	if !j.state.CompareAndSwap(jobQueued, jobTaken) {
		return true // its client gave up waiting
	}
	_ = proc.conn.SetDeadline(time.Now().Add(p.app.Timeout))
	bufs := net.Buffers{j.frame, j.body}
	if _, err := bufs.WriteTo(proc.conn); err != nil {
		return p.fail(proc, j, err)
	}
	f, err := proc.next()
	if err != nil {
		return p.fail(proc, j, err)
	}
	ex := &j.ex
	*ex = Exchange{proc: proc, PID: proc.pid, release: j.release}
	switch f.Type {
	case wire.TypeResponse:
		ex.more = f.Flags&wire.FlagMore != 0
		if err := wire.ParseHead(f.Payload, &ex.Head); err != nil {
			proc.log.Error("app sent an invalid response", "err", err)
			ex.Invalid = err
		}
	default:
		proc.log.Error("worker broke the protocol; killing it", "frame", f.Type.String())
		j.err = ErrWorkerDied
		close(j.ready)
		proc.kill()
		return false
	}
	close(j.ready)
	<-j.release
	if ex.broken {
		proc.kill()
		return false
	}
	return true
}

// fail ends a job whose worker could not answer: a timeout kills the
// worker after a stack dump (504), anything else means the worker is gone
// (502). Either way the worker is replaced and only this job fails.
func (p *Pool) fail(proc *process, j *job, err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		proc.log.Error("request timed out; dumping the worker's stack and killing it", "timeout", p.app.Timeout)
		proc.dumpAndKill()
		j.err = ErrTimeout
	} else {
		proc.kill()
		proc.log.Error("worker died while serving a request; replacing it", "status", proc.exitStatus(), "err", err)
		j.err = ErrWorkerDied
	}
	close(j.ready)
	return false
}

// Stop stops taking requests, lets every queued and in-flight request
// finish, and stops the workers. When ctx ends first, the workers still
// running are killed and Stop says how many.
func (p *Pool) Stop(ctx context.Context) error {
	if p.stopped.Swap(true) {
		return nil
	}
	close(p.stop)
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	var left []*process
	for proc := range p.procs {
		left = append(left, proc)
	}
	p.mu.Unlock()
	for _, proc := range left {
		proc.kill()
	}
	<-done
	return fmt.Errorf("app %q: killed %d worker(s) still busy at the end of the graceful timeout", p.app.Name, len(left))
}

// Exchange is a worker's answer to one request. Head is valid until Close.
// When the response is longer than one frame, Next returns the rest of the
// body.
type Exchange struct {
	Head wire.Head
	// PID is the worker that answered.
	PID int
	// Invalid is set when the app's status or headers cannot be sent as
	// HTTP; the client gets a 500 instead.
	Invalid error
	proc    *process
	more    bool
	broken  bool
	release chan struct{}
}

// More reports whether body frames follow the head.
func (e *Exchange) More() bool { return e.more }

// Next returns the next part of the body, valid until the next call, and
// io.EOF after the last. ErrAborted means the app failed mid-response.
func (e *Exchange) Next() ([]byte, error) {
	for e.more {
		f, err := e.proc.next()
		if err != nil {
			e.more, e.broken = false, true
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, ErrTimeout
			}
			return nil, fmt.Errorf("%w: %v", ErrWorkerDied, err)
		}
		switch f.Type {
		case wire.TypeBody:
			e.more = f.Flags&wire.FlagMore != 0
			if len(f.Payload) == 0 {
				continue
			}
			return f.Payload, nil
		case wire.TypeAbort:
			e.more = false
			return nil, fmt.Errorf("%w: %s", ErrAborted, f.Payload)
		default:
			e.more, e.broken = false, true
			return nil, fmt.Errorf("%w: unexpected %s frame in a response body", ErrWorkerDied, f.Type)
		}
	}
	return nil, io.EOF
}

// Close releases the worker. A body not read to its end is read and
// dropped first, so the worker's socket is in step for the next request.
func (e *Exchange) Close() {
	for e.more {
		if _, err := e.Next(); err != nil {
			break
		}
	}
	close(e.release)
}
