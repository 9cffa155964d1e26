package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/front"
	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/units"
)

// A reload runs in three phases: plan (plan.go: a pure function of the
// running configuration and the new one), prepare (open the new sockets,
// boot every app's new generation, give kept sockets their new owner;
// nothing that serves is touched, and a failure undoes it all) and
// commit (switch dispatch and fronts over, retire what is dropped; it
// cannot fail, and it runs under the state lock, so Status sees the old
// configuration or the new one, never a mixture).

// Reload reads the configuration file again and applies it; see the
// package comment. The result says what happened either way.
func (s *Server) Reload(ctx context.Context) ReloadResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if phase(s.phase.Load()) == phaseDraining {
		return ReloadResult{Message: "berth is shutting down", At: time.Now()}
	}
	s.notify.Reloading()
	res := s.reload(ctx)
	s.state.Lock()
	s.reloads++
	s.metrics.Reload(res.OK)
	res.At = time.Now()
	res.Generations = s.generations()
	s.last = res
	s.state.Unlock()
	// READY either way: the old configuration serves after a failure.
	s.notify.Ready(s.statusLine())
	if res.OK {
		s.log.Info("reloaded", "result", res.Message)
	} else {
		s.log.Error("reload failed; the previous configuration keeps serving", "reason", res.Message)
		if res.Detail != "" {
			s.log.Error(res.Detail)
		}
	}
	return res
}

// reload loads the file, plans, prepares and commits.
func (s *Server) reload(ctx context.Context) ReloadResult {
	s.log.Info("reloading", "config", s.path)
	cfg, err := units.Load(s.path)
	var de *units.DiagError
	if errors.As(err, &de) {
		var b strings.Builder
		de.Format(&b)
		return ReloadResult{Message: fmt.Sprintf("%s: %d error(s) in the configuration", s.path, len(de.Diags.Errs())), Detail: strings.TrimRight(b.String(), "\n")}
	}
	if err == nil {
		err = cfg.CheckStaticDirs()
	}
	if err != nil {
		return ReloadResult{Message: err.Error()}
	}
	s.cgroups.LimitsOff(cfg)
	plan := planReload(s.cfg, s.sockets, cfg)
	p, err := s.prepare(ctx, cfg, plan)
	if err != nil {
		return failure(err)
	}
	s.state.Lock()
	changes := s.commit(cfg, plan, p)
	s.state.Unlock()
	var gens []string
	for _, name := range plan.Keep {
		gens = append(gens, fmt.Sprintf("%s generation %d", name, p.pools[name].Generation()))
	}
	return ReloadResult{OK: true, Message: "reloaded " + strings.Join(append(gens, changes...), ", ")}
}

// prepared is what a reload's prepare phase opened and booted, for commit
// to switch to or undo to throw away.
type prepared struct {
	sockets map[string]*activation.Socket // of listenerOpen and listenerMove steps
	admin   *activation.Socket            // the admin block's new socket, if it moved
	pools   map[string]*supervisor.Pool   // new generations of kept apps
	added   map[string]*supervisor.App    // apps new in the configuration, started
	owners  []string                      // what applyOwners changed
}

// undo closes and stops everything p holds; a kept app's new generation
// goes through its app (apps), which also drops its share of the app's
// cgroup limits.
func (p *prepared) undo(apps map[string]*supervisor.App) {
	closeSockets(p.sockets)
	if p.admin != nil {
		p.admin.Close()
	}
	for name, pool := range p.pools {
		apps[name].Discard(context.Background(), pool)
	}
	for _, a := range p.added {
		a.Stop(context.Background())
	}
}

// prepare carries out the part of plan that can fail, beside what serves:
// it opens the sockets, boots the apps and applies new socket owners
// last, since that is the one change visible to clients. On failure it
// undoes what it did and returns why.
func (s *Server) prepare(ctx context.Context, cfg *units.Config, plan reloadPlan) (*prepared, error) {
	p := &prepared{pools: map[string]*supervisor.Pool{}, added: map[string]*supervisor.App{}}
	var err error
	if p.sockets, err = s.openSockets(plan); err != nil {
		return nil, err
	}
	if p.admin, err = s.openAdmin(cfg); err == nil {
		err = s.bootApps(ctx, cfg, p)
	}
	if err == nil {
		p.owners, err = applyOwners(s.ownerChanges(plan))
	}
	if err != nil {
		p.undo(s.apps)
		return nil, err
	}
	return p, nil
}

// openSockets opens the sockets of the listeners plan opens or moves. On
// failure it closes what it opened.
func (s *Server) openSockets(plan reloadPlan) (map[string]*activation.Socket, error) {
	opened := map[string]*activation.Socket{}
	for _, step := range plan.Listeners {
		if step.Action != listenerOpen && step.Action != listenerMove {
			continue
		}
		socks, err := s.set.Listen([]activation.Spec{spec(step.Listener)})
		if err != nil {
			closeSockets(opened)
			return nil, err
		}
		opened[step.Listener.Name] = socks[0]
	}
	return opened, nil
}

// bootApps boots a new generation of each app cfg keeps and starts each
// app it adds, in cfg's order, into p.
func (s *Server) bootApps(ctx context.Context, cfg *units.Config, p *prepared) error {
	for _, a := range cfg.Apps {
		if old, ok := s.apps[a.Name]; ok {
			pool, err := old.Prepare(ctx, a)
			if err != nil {
				return &appError{a.Name, err}
			}
			p.pools[a.Name] = pool
			continue
		}
		app := supervisor.NewApp(a, s.log, s.appMetrics(a.Name))
		if err := app.Start(ctx); err != nil {
			return &appError{a.Name, err}
		}
		p.added[a.Name] = app
	}
	return nil
}

// ownerChange is a kept socket's new mode and owner.
type ownerChange struct {
	sock  *activation.Socket
	owner activation.Owner
}

// ownerChanges are the new socket owners of plan, on the running sockets.
func (s *Server) ownerChanges(plan reloadPlan) []ownerChange {
	var oc []ownerChange
	for _, step := range plan.Listeners {
		if step.Owner == nil {
			continue
		}
		name := step.Listener.Name
		if step.Action == listenerRename {
			name = step.From
		}
		oc = append(oc, ownerChange{s.sockets[name], *step.Owner})
	}
	return oc
}

// applyOwners gives kept sockets their new mode and owner. It is all or
// nothing, like the rest of a reload: on a failure the sockets already
// changed get their old mode and owner back.
func applyOwners(changes []ownerChange) ([]string, error) {
	var said []string
	var done []ownerChange // with the owner each had before
	for _, c := range changes {
		before := c.sock.Spec.Owner
		if err := c.sock.SetOwner(c.owner); err != nil {
			for _, d := range done {
				_ = d.sock.SetOwner(d.owner) // best effort: it held these a moment ago
			}
			return nil, err
		}
		done = append(done, ownerChange{c.sock, before})
		if c.sock.Passed {
			said = append(said, "listener "+c.sock.Name+" keeps the mode and owner of the socket systemd passed (SocketMode=, SocketUser=, SocketGroup=)")
		} else {
			said = append(said, "new socket mode or owner for listener "+c.sock.Name)
		}
	}
	return said, nil
}

// commit switches the server to cfg as plan says, with what prepare made
// ready, and returns what changed, for the reload's message. Nothing in
// it can fail. The caller holds s.state.
func (s *Server) commit(cfg *units.Config, plan reloadPlan, p *prepared) []string {
	changes := p.owners
	for _, name := range plan.Keep {
		s.apps[name].Commit(p.pools[name])
	}
	for _, name := range plan.Start {
		s.apps[name] = p.added[name]
		changes = append(changes, "added app "+name)
	}
	var closed []string
	for _, name := range plan.Close {
		// First: a renamed listener may take the name.
		s.retireFront(name, s.sockets[name])
		delete(s.sockets, name)
		if _, kept := cfg.Listener(name); !kept {
			closed = append(closed, "closed listener "+name)
		}
	}
	for _, step := range plan.Listeners {
		if change := s.commitListener(cfg, step, p.sockets[step.Listener.Name]); change != "" {
			changes = append(changes, change)
		}
	}
	changes = append(changes, closed...)
	for _, name := range plan.Stop {
		s.stopApp(name)
		changes = append(changes, "removed app "+name)
	}
	if change := s.commitAdmin(cfg, p.admin); change != "" {
		changes = append(changes, change)
	}
	s.cfg = cfg
	s.metrics.SetOn(cfg.MetricsOn())
	return changes
}

// commitListener carries out step, with opened the socket prepare opened
// for it (if any), and says what changed ("" for nothing).
func (s *Server) commitListener(cfg *units.Config, step listenerStep, opened *activation.Socket) string {
	l := step.Listener
	var change string
	switch step.Action {
	case listenerKeep:
		s.fronts[l.Name].SetApps(s.appsOn(cfg, l.Name))
		return ""
	case listenerRestart:
		// New limits or timeouts: a new front takes over the same
		// socket; the old one finishes its connections.
		s.retireFrontOnly(s.fronts[l.Name])
		change = "new settings for listener " + l.Name
	case listenerRename:
		sock := s.sockets[step.From]
		s.retireFrontOnly(s.fronts[step.From])
		delete(s.fronts, step.From)
		delete(s.sockets, step.From)
		sock.Name = l.Name
		s.sockets[l.Name] = sock
		change = "renamed listener " + step.From + " to " + l.Name
	case listenerMove:
		s.retireFront(l.Name, s.sockets[l.Name])
		s.sockets[l.Name] = opened
		change = "moved listener " + l.Name + " to " + opened.Addr()
	case listenerOpen:
		s.sockets[l.Name] = opened
		change = "opened listener " + l.Name + " on " + opened.Addr()
	}
	if err := s.serve(l, s.appsOn(cfg, l.Name)); err != nil {
		// Only for want of file descriptors: the socket stays open.
		s.log.Error("listener not served after the reload", "listener", l.Name, "err", err)
	}
	return change
}

// stopApp takes app name out of service and stops it in the background,
// letting its requests finish within its graceful_timeout.
func (s *Server) stopApp(name string) {
	app := s.apps[name]
	delete(s.apps, name)
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		ctx, cancel := context.WithTimeout(context.Background(), app.Config().GracefulTimeout)
		defer cancel()
		app.Stop(ctx)
	}()
}

func closeSockets(socks map[string]*activation.Socket) {
	for _, sock := range socks {
		sock.Close()
	}
}

// appError is an app that failed to boot in a reload's prepare phase.
type appError struct {
	app string
	err error
}

func (e *appError) Error() string { return fmt.Sprintf("app %q: %v", e.app, e.err) }
func (e *appError) Unwrap() error { return e.err }

// failure is the result of a reload whose prepare phase failed with err.
func failure(err error) ReloadResult {
	var ae *appError
	var be *supervisor.BootError
	if errors.As(err, &ae) && errors.As(err, &be) {
		return ReloadResult{Message: fmt.Sprintf("app %q failed to boot its new generation", ae.app), Detail: be.Traceback}
	}
	return ReloadResult{Message: err.Error()}
}

// retireFront shuts the front of listener name down in the background,
// then closes its socket.
func (s *Server) retireFront(name string, sock *activation.Socket) {
	f := s.fronts[name]
	delete(s.fronts, name)
	grace := s.grace()
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		if f != nil {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			f.Shutdown(ctx)
		}
		sock.Close()
	}()
}

// retireFrontOnly shuts a front down in the background, keeping its
// socket, which a new front already serves.
func (s *Server) retireFrontOnly(f *front.Server) {
	grace := s.grace()
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		f.Shutdown(ctx)
	}()
}

// grace is the longest graceful_timeout of the configuration.
func (s *Server) grace() time.Duration {
	g := units.DefaultGraceful
	for _, a := range s.cfg.Apps {
		g = max(g, a.GracefulTimeout)
	}
	return g
}
