// Package server runs one configuration: it opens the listeners, serves
// each with a front, runs every app's worker generations, and applies a
// new configuration on reload without refusing or failing a request.
//
// A reload is all or nothing. Every app's new generation boots beside the
// old one; only when all of them are ready does dispatch switch, app by
// app, in one step. If the file does not validate, a listener cannot be
// opened or any new generation fails to boot, everything new is thrown
// away and the old configuration keeps serving, untouched.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/admin"
	"github.com/berthd/berth/front"
	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/notify"
	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/units"
)

// Server is a running configuration.
type Server struct {
	path   string
	log    *slog.Logger
	set    *activation.Set
	notify *notify.Notifier

	mu sync.Mutex // serialises Start, Reload and Shutdown
	// phase is the server's phase of life (ready.go): starting until
	// READY, serving, draining once a stop begins.
	phase        atomic.Int32
	adminHandler *admin.Handler

	// state guards the maps below, which a reload changes in its last,
	// quick phase; Status and the health check read them under it, so
	// they never wait for a reload's boot phase.
	state    sync.RWMutex
	cfg      *units.Config
	sockets  map[string]*activation.Socket // by listener name
	fronts   map[string]*front.Server      // by listener name
	apps     map[string]*supervisor.App    // by app name
	serveErr chan error
	started  time.Time
	reloads  int
	last     ReloadResult
	closing  sync.WaitGroup // fronts and apps retired by reloads
	// adminSock and adminSrv are the admin listener (admin.go), nil
	// without an admin block.
	adminSock *activation.Socket
	adminSrv  *admin.Server

	// metrics outlives every reload (metrics.go).
	metrics *metrics.Registry
	// cgroups are the apps' cgroups, set up at Start.
	cgroups *supervisor.Cgroups

	heartbeat atomic.Int64 // unix nanos of the supervision loop's last turn
	wedge     chan struct{}
}

// ReloadResult is the outcome of one reload, as `berth reload` prints it.
type ReloadResult struct {
	OK bool `json:"ok"`
	// Message is one line: what changed, or why nothing did.
	Message string `json:"message"`
	// Detail is the configuration's diagnostics or a Python traceback.
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
	// Generations maps each app to the generation serving after the reload.
	Generations map[string]int `json:"generations,omitempty"`
}

// New returns a server for the configuration cfg, read from path (which
// Reload reads again). Its listeners come from set — the sockets systemd
// passed, matched by name — or are bound by berth; n hears of every
// change of state.
func New(path string, cfg *units.Config, log *slog.Logger, set *activation.Set, n *notify.Notifier) *Server {
	s := &Server{
		path: path, cfg: cfg, log: log, set: set, notify: n, wedge: make(chan struct{}, 1),
		sockets:  map[string]*activation.Socket{},
		fronts:   map[string]*front.Server{},
		apps:     map[string]*supervisor.App{},
		serveErr: make(chan error, 16),
	}
	s.adminHandler = admin.NewHandler(admin.Checks{Healthy: s.Healthy, Ready: s.Ready})
	s.initMetrics()
	return s
}

// Errors reports listeners that stopped serving on their own.
func (s *Server) Errors() <-chan error { return s.serveErr }

// Start opens the admin listener and the listeners, boots every app (all
// must be ready) and starts serving. On failure nothing is left running.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = time.Now()
	if err := s.cfg.CheckStaticDirs(); err != nil {
		return err
	}
	// Before any worker starts: berth leaves the cgroup its apps' go
	// beside (supervisor/cgroup.go).
	s.cgroups = supervisor.SetupCgroups(s.log)
	s.cgroups.LimitsOff(s.cfg)
	s.state.Lock()
	err := s.startAdmin()
	s.state.Unlock()
	if err != nil {
		return err
	}
	var specs []activation.Spec
	for _, l := range s.cfg.Listeners {
		specs = append(specs, spec(l))
	}
	sockets, err := s.set.Listen(specs)
	if err != nil {
		s.stopAll(context.Background())
		return err
	}
	for _, sock := range sockets {
		s.sockets[sock.Name] = sock
	}
	if unused := s.set.Unused(); len(unused) > 0 {
		s.log.Warn("systemd passed sockets that no listener uses; name listeners after their FileDescriptorName=", "unused", strings.Join(unused, ","))
	}
	// While apps boot, ask systemd for more time, a little at a time: a
	// slow import is not a hung start, and boot_timeout bounds each worker.
	booting, stopExtending := context.WithCancel(ctx)
	defer stopExtending()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			s.notify.ExtendTimeout(15 * time.Second)
			select {
			case <-booting.Done():
				return
			case <-t.C:
			}
		}
	}()
	for i, cfg := range s.cfg.Apps {
		app := supervisor.NewApp(cfg, s.log, s.appMetrics(cfg.Name))
		s.log.Info("starting app", journal.KeyApp, cfg.Name, "workers", cfg.Workers, "python", cfg.Python)
		s.notify.Status(fmt.Sprintf("starting app %s (%d of %d): %d workers", cfg.Name, i+1, len(s.cfg.Apps), cfg.Workers))
		if err := app.Start(ctx); err != nil {
			s.stopAll(context.Background())
			return err
		}
		s.apps[cfg.Name] = app
	}
	for _, l := range s.cfg.Listeners {
		if err := s.serve(l, s.appsOn(s.cfg, l.Name)); err != nil {
			s.stopAll(context.Background())
			return err
		}
	}
	s.dropStrayClients()
	s.last = ReloadResult{OK: true, Message: "started", At: time.Now(), Generations: s.generations()}
	s.heartbeat.Store(time.Now().UnixNano())
	// Unless a stop began meanwhile: draining is never undone.
	s.phase.CompareAndSwap(int32(phaseStarting), int32(phaseServing))
	s.notify.Ready(s.statusLine())
	go s.watchIdle()
	return nil
}

// spec is what activation needs of a listener.
func spec(l units.Listener) activation.Spec {
	o := activation.Owner{Mode: os.FileMode(l.Socket.Mode), User: l.Socket.User, Group: l.Socket.Group}
	return activation.Spec{Name: l.Name, Network: l.Network, Address: l.Address, Owner: o}
}

// appsOn are the apps that cfg mounts on listener name.
func (s *Server) appsOn(cfg *units.Config, name string) []*supervisor.App {
	var apps []*supervisor.App
	for _, a := range cfg.Apps {
		if a.On(name) {
			apps = append(apps, s.apps[a.Name])
		}
	}
	return apps
}

// serve starts a front for listener l on its socket.
func (s *Server) serve(l units.Listener, apps []*supervisor.App) error {
	sock := s.sockets[l.Name]
	ln, err := sock.Listener()
	if err != nil {
		return err
	}
	f := front.New(l, apps, s.log, s.cfg.Log.Access)
	s.prepareHandOver(f, l, sock)
	f.SetMetrics(s.metrics.Listener(l.Name))
	s.fronts[l.Name] = f
	go func() {
		if err := f.Serve(ln); err != nil {
			s.serveErr <- fmt.Errorf("listener %q: %w", l.Name, err)
		}
	}()
	args := []any{journal.KeyListener, l.Name, "addr", sock.Addr()}
	for _, app := range apps {
		if m := app.Config().Mount; m != "" {
			args = append(args, journal.KeyApp, app.Name(), "mount", m)
		} else {
			args = append(args, journal.KeyApp, app.Name())
		}
	}
	s.log.Info("listening", args...)
	return nil
}

func (s *Server) generations() map[string]int {
	g := map[string]int{}
	for name, a := range s.apps {
		g[name] = a.Current().Generation()
	}
	return g
}

// Shutdown stops accepting, lets in-flight and queued requests finish
// within the apps' graceful_timeout (responses on keep-alive connections
// carry Connection: close), stops the workers and closes the sockets.
// With quick set, requests in flight are not waited for. It reports
// whether everything ended in time.
func (s *Server) Shutdown(quick bool) bool {
	s.phase.Store(int32(phaseDraining))
	s.notify.Stopping("stopping: finishing requests in flight")
	s.mu.Lock()
	defer s.mu.Unlock()
	grace := time.Duration(0)
	for _, a := range s.apps {
		grace = max(grace, a.Config().GracefulTimeout)
	}
	if quick {
		grace = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return s.stopAll(ctx)
}

// stopAll stops everything within ctx and reports whether every app
// stopped in time.
func (s *Server) stopAll(ctx context.Context) bool {
	var late atomic.Bool // written by the apps' stops, which run at once
	// Refuse new connections at once on sockets berth owns; a socket
	// systemd passed keeps queueing them for the next instance.
	for _, sock := range s.sockets {
		sock.Close()
	}
	var wg sync.WaitGroup
	var handed atomic.Int64
	for _, f := range s.fronts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handOverIdle(ctx, f, &handed)
			if err := f.Shutdown(ctx); err != nil {
				s.log.Warn("connections still open at the end of graceful_timeout", "err", err)
			}
		}()
	}
	wg.Wait()
	s.handedOver(&handed)
	for _, a := range s.apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Stop(ctx); err != nil {
				s.log.Warn("stopping app", "err", err)
				late.Store(true)
			}
		}()
	}
	wg.Wait()
	// Last: a load balancer reads "draining" until berth is gone.
	s.state.Lock()
	s.closeAdmin()
	s.state.Unlock()
	s.closing.Wait()
	return !late.Load()
}

// Status is a snapshot of the running server.
type Status struct {
	Config string `json:"config"`
	// Unit is the systemd service berth runs in, if any.
	Unit   string  `json:"unit,omitempty"`
	Uptime float64 `json:"uptime_seconds"`
	// Readiness is what /readyz answers, in a word: Ready, Starting,
	// Draining or NotReady; ReadyReason says why it is not Ready.
	Readiness   string `json:"readiness"`
	ReadyReason string `json:"ready_reason,omitempty"`
	// Admin is the admin listener's address, if there is one.
	Admin      string                 `json:"admin,omitempty"`
	Reloads    int                    `json:"reloads"`
	LastReload ReloadResult           `json:"last_reload"`
	Listeners  []ListenerStatus       `json:"listeners"`
	Apps       []supervisor.AppStatus `json:"apps"`
	Workers    int                    `json:"workers"`
	Busy       int                    `json:"busy"`
	Queued     int                    `json:"queued"`
	Served     int64                  `json:"served"`
	// Metrics is berth's metric families, as /metrics has them: the
	// counts since berth started, across reloads.
	Metrics []metrics.Family `json:"metrics"`
}

// ListenerStatus is one listener in Status.
type ListenerStatus struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Passed bool   `json:"passed_by_systemd"`
	// Apps are the apps mounted on the listener: "name", "name at
	// /mount", "name for host ...".
	Apps []string `json:"apps,omitempty"`
}

// Status reports the server's live figures.
func (s *Server) Status() Status {
	// Before the state lock: Ready and the metrics' live series take it too.
	ready := s.Ready()
	fams := s.metricFamilies()
	s.state.RLock()
	defer s.state.RUnlock()
	st := Status{Config: s.path, Unit: ownUnit(), Uptime: time.Since(s.started).Seconds(), Reloads: s.reloads, LastReload: s.last, Metrics: fams}
	st.Readiness = readinessWord(ready)
	if ready != nil {
		st.ReadyReason = ready.Error()
	}
	if s.adminSock != nil {
		st.Admin = s.adminSock.Addr()
	}
	for _, l := range s.cfg.Listeners {
		ls := ListenerStatus{Name: l.Name}
		if sock, ok := s.sockets[l.Name]; ok {
			ls.Addr, ls.Passed = sock.Addr(), sock.Passed
		}
		for _, a := range s.cfg.Apps {
			if !a.On(l.Name) {
				continue
			}
			route := a.Name
			if a.Mount != "" {
				route += " at " + a.Mount
			}
			if len(a.Hosts) > 0 {
				route += " for " + strings.Join(a.Hosts, " ")
			}
			ls.Apps = append(ls.Apps, route)
		}
		st.Listeners = append(st.Listeners, ls)
	}
	for _, a := range s.cfg.Apps {
		as := s.apps[a.Name].Status()
		st.Apps = append(st.Apps, as)
		st.Workers += len(as.Workers)
		st.Busy += as.Busy
		st.Queued += as.Queued
		st.Served += as.Served
	}
	return st
}
