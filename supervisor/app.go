package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/units"
)

// App is one configured app across reloads. Requests go to its current
// generation; a reload boots a new generation beside it and switches to
// it only once every new worker is ready, so no request ever meets an app
// that is not ready, and a generation that fails to boot is simply
// dropped.
type App struct {
	name string
	log  *slog.Logger
	cur  atomic.Pointer[Pool]
	// m is the app's series, kept across generations: every pool counts
	// into it, so a reload never resets a count.
	m *metrics.App

	mu       sync.Mutex // serialises Start, Reload and Stop
	gen      int
	draining sync.WaitGroup // old generations finishing their requests
}

// NewApp returns an app that serves nothing until Start; its pools count
// into m (nil: they count nothing).
func NewApp(cfg units.App, log *slog.Logger, m *metrics.App) *App {
	a := &App{name: cfg.Name, log: log, m: m}
	a.cur.Store(a.newPool(cfg, 0))
	return a
}

// newPool returns generation gen of the app, counting into its series.
func (a *App) newPool(cfg units.App, gen int) *Pool {
	p := NewPool(cfg, gen, a.log)
	p.m = a.m
	return p
}

// Name is the app's name.
func (a *App) Name() string { return a.name }

// Current is the generation serving requests.
func (a *App) Current() *Pool { return a.cur.Load() }

// Config is the configuration of the current generation.
func (a *App) Config() units.App { return a.cur.Load().App() }

// Start boots generation 1.
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen = 1
	p := a.newPool(a.cur.Load().App(), a.gen)
	begin(p)
	if err := p.Start(ctx); err != nil {
		end(p)
		return err
	}
	a.cur.Store(p)
	return nil
}

// Prepare boots the next generation with cfg beside the current one and
// returns it once all its workers are ready; nothing is switched yet. If
// it fails to boot, the current generation is untouched. Either Commit
// the result or Stop it.
func (a *App) Prepare(ctx context.Context, cfg units.App) (*Pool, error) {
	a.mu.Lock()
	gen := a.gen + 1
	a.mu.Unlock()
	p := a.newPool(cfg, gen)
	begin(p)
	if err := p.Start(ctx); err != nil {
		end(p)
		return nil, fmt.Errorf("generation %d of app %q did not start; generation %d keeps serving: %w", gen, a.name, gen-1, err)
	}
	return p, nil
}

// Commit makes a prepared generation current in one step; the old
// generation finishes its queued and in-flight requests (at most its
// graceful_timeout) in the background.
func (a *App) Commit(p *Pool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen = p.gen
	old := a.cur.Swap(p)
	a.retire(old)
}

// retire drains an old generation in the background.
func (a *App) retire(old *Pool) {
	a.draining.Add(1)
	go func() {
		defer a.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), old.App().GracefulTimeout)
		defer cancel()
		if err := old.Stop(ctx); err != nil {
			a.log.Warn("old generation drained by force", "err", err)
		} else {
			old.log.Info("old generation drained")
		}
		end(old)
	}()
}

// Discard stops a generation that Prepare booted and that is not to be
// committed (another app's failed to boot).
func (a *App) Discard(ctx context.Context, p *Pool) error {
	err := p.Stop(ctx)
	end(p)
	return err
}

// Do sends a request to the current generation. A generation retired
// between picking it and queueing on it refuses the request; Do then
// retries on the generation that replaced it.
func (a *App) Do(r Request) (*Exchange, error) {
	for {
		p := a.cur.Load()
		ex, err := p.Do(r)
		if errors.Is(err, ErrStopped) && a.cur.Load() != p {
			continue
		}
		if err != nil {
			a.countRefusal(err)
		}
		return ex, err
	}
}

// Stop drains the current generation within ctx (workers still busy at
// its end are killed), and waits for old generations still draining, each
// bounded by its own graceful_timeout.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.cur.Load()
	err := p.Stop(ctx)
	end(p)
	a.draining.Wait()
	return err
}

// countRefusal counts a request Do refused with 503.
func (a *App) countRefusal(err error) {
	switch {
	case errors.Is(err, ErrQueueFull):
		a.m.Rejected(metrics.RejectFull)
	case errors.Is(err, ErrQueueTimeout):
		a.m.Rejected(metrics.RejectTimeout)
	case errors.Is(err, ErrStopped):
		a.m.Rejected(metrics.RejectStopping)
	}
}

// Live is the app's state now, for the metrics that are states: its
// current generation's workers by state and its queue. Unlike Status, it
// reads no /proc file.
func (a *App) Live() metrics.Live {
	p := a.cur.Load()
	l := metrics.Live{App: a.name, Generation: p.gen, Queued: p.q.len()}
	p.slotsMu.Lock()
	slots := make([]*slot, 0, len(p.slots))
	for s := range p.slots {
		slots = append(slots, s)
	}
	p.slotsMu.Unlock()
	for _, s := range slots {
		switch {
		case s.current() == nil:
			l.Booting++
		case s.busy.Load() > 0:
			l.Busy++
		default:
			l.Idle++
		}
	}
	// Workers being added by scaling, and recycles' replacements booting.
	l.Booting += max(int(p.nslots.Load())-len(slots), 0) + int(p.replaces.Load())
	return l
}
