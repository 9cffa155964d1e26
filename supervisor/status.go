package supervisor

import (
	"sort"
	"time"
)

// WorkerStatus is one worker as `berth status` shows it.
type WorkerStatus struct {
	PID   int    `json:"pid"`
	State string `json:"state"` // "idle", "busy" or "starting"
	// Threads is the worker's threads; BusyThreads how many serve now.
	Threads     int     `json:"threads"`
	BusyThreads int     `json:"busy_threads"`
	Served      int64   `json:"served"`
	RSS         int64   `json:"rss_bytes"`
	Uptime      float64 `json:"uptime_seconds"`
}

// AppStatus is one app's live figures.
type AppStatus struct {
	Name       string         `json:"name"`
	Module     string         `json:"module"`
	Generation int            `json:"generation"`
	MinWorkers int            `json:"min_workers"`
	MaxWorkers int            `json:"max_workers"`
	Workers    []WorkerStatus `json:"workers"`
	Busy       int            `json:"busy"`
	Queued     int            `json:"queued"`
	QueueSize  int            `json:"queue_size"`
	Served     int64          `json:"served"`
	Uptime     float64        `json:"uptime_seconds"`
}

// Status reports the current generation's workers and queue.
func (a *App) Status() AppStatus {
	return a.cur.Load().Status()
}

// Status reports the pool's workers and queue.
func (p *Pool) Status() AppStatus {
	st := AppStatus{
		Name: p.app.Name, Module: p.app.Module, Generation: p.gen,
		MinWorkers: p.app.MinWorkers, MaxWorkers: p.app.MaxWorkers,
		Queued: p.q.len(), QueueSize: p.q.size, Served: p.served.Load(),
		Workers: []WorkerStatus{},
	}
	if !p.started.IsZero() {
		st.Uptime = time.Since(p.started).Seconds()
	}
	p.slotsMu.Lock()
	slots := make([]*slot, 0, len(p.slots))
	for s := range p.slots {
		slots = append(slots, s)
	}
	p.slotsMu.Unlock()
	sort.Slice(slots, func(i, j int) bool { return slots[i].id < slots[j].id })
	for _, s := range slots {
		s.mu.Lock()
		proc, since := s.proc, s.since
		s.mu.Unlock()
		w := WorkerStatus{State: "starting"}
		if proc != nil {
			w = WorkerStatus{PID: proc.pid, State: "idle", Threads: len(proc.lanes), Served: s.served.Load(), RSS: proc.rss(), Uptime: time.Since(since).Seconds()}
			if n := int(s.busy.Load()); n > 0 {
				w.State, w.BusyThreads = "busy", n
				st.Busy++
			}
		}
		st.Workers = append(st.Workers, w)
	}
	return st
}

// ReadyWorkers counts the pool's workers that have imported the app and
// can take a request now (busy or idle); a worker booting, or replacing
// one that died, does not count. It reads no /proc file, unlike Status,
// so a readiness probe may ask it often.
func (p *Pool) ReadyWorkers() int {
	p.slotsMu.Lock()
	slots := make([]*slot, 0, len(p.slots))
	for s := range p.slots {
		slots = append(slots, s)
	}
	p.slotsMu.Unlock()
	n := 0
	for _, s := range slots {
		if s.current() != nil {
			n++
		}
	}
	return n
}
