package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthd/berth/cgroup"
	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
)

// Cgroups are the apps' cgroups in the subtree systemd delegated to berth
// (package cgroup): each app's workers start in a cgroup of their own,
// which holds them to the app's limits and counts their OOM kills. There
// is one per process, as the cgroup berth runs in is the process's own:
// SetupCgroups makes it before any app starts. Without a delegated
// cgroup (not under systemd, cgroup v1, in tests) workers start in
// berth's cgroup, as they always did, and limits are off.
type Cgroups struct {
	tree *cgroup.Tree // nil: no delegated cgroup
	log  *slog.Logger
	// off is why there is no tree, for the one message about limits.
	off error
	// cloneInto: workers start in their cgroup (CLONE_INTO_CGROUP);
	// otherwise berth moves each there as soon as it has started.
	cloneInto bool

	mu   sync.Mutex
	apps map[string]*appGroup
	// said are the controllers whose limits have been said to be off,
	// so that each is said once.
	said map[string]bool
}

// cgroups is the process's (SetupCgroups); nil until then, as in tests.
var cgroups atomic.Pointer[Cgroups]

// SetupCgroups finds the cgroup systemd delegated to berth, moves berth
// into its supervisor leaf and enables the memory and pids controllers
// for the apps' cgroups; the cpu controller waits for an app that sets
// cpu_weight, since it changes how the CPU is shared between berth's
// front and the workers. Without a delegated cgroup berth runs as
// before; LimitsOff says why once an app asks for limits. It returns
// the cgroups for the process.
func SetupCgroups(log *slog.Logger) *Cgroups {
	c := &Cgroups{log: log, apps: map[string]*appGroup{}, said: map[string]bool{}}
	tree, err := cgroup.Find()
	if err == nil {
		err = tree.Enter()
	}
	if err == nil {
		_, err = tree.Enable(cgroup.Memory, cgroup.Pids)
	}
	if err != nil {
		c.off = err
		log.Debug("workers run in berth's cgroup", "reason", err)
	} else {
		c.tree, c.cloneInto = tree, cgroup.CanCloneInto()
		how := "started in it"
		if !c.cloneInto {
			// Its interpreter's first milliseconds count in berth's
			// cgroup; the app is imported well after the move.
			how = "moved into it as it starts (clone3 is refused here, as systemd's RestrictNamespaces= does)"
		}
		log.Info("apps run in cgroups of their own", "cgroup", tree.Dir(), "worker", how)
	}
	cgroups.Store(c)
	return c
}

// LimitsOff logs, in one message and once for the process, the limits
// of cfg that the kernel will not enforce, and why. A reload that asks
// for a kind of limit not asked for before may add one more.
func (c *Cgroups) LimitsOff(cfg *units.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var apps, off []string
	for _, a := range cfg.Apps {
		l := a.Limits
		if !l.Set() {
			continue
		}
		apps = append(apps, a.Name+" ("+l.At+")")
		for _, need := range []struct {
			set  bool
			ctrl string
		}{{l.Memory != 0 || l.MemoryHigh != 0, cgroup.Memory}, {l.Tasks != 0, cgroup.Pids}, {l.CPUWeight != 0, cgroup.CPU}} {
			if need.set && (c.tree == nil || !c.tree.Available(need.ctrl)) && !slices.Contains(off, need.ctrl) && !c.said[need.ctrl] {
				off = append(off, need.ctrl)
			}
		}
	}
	if len(off) == 0 {
		return
	}
	for _, ctrl := range off {
		c.said[ctrl] = true
	}
	why := c.off
	if c.tree != nil {
		why = fmt.Errorf("berth's cgroup %s lacks the %s controller(s) (a hybrid cgroup hierarchy keeps them on cgroup v1)", c.tree.Dir(), strings.Join(off, ", "))
	}
	c.log.Warn(fmt.Sprintf("per-app limits are off (%s): %v", strings.Join(off, ", "), why), "apps", strings.Join(apps, ", "))
}

// appGroup is one app's cgroup, shared by the app's generations. Its
// limits are the sum of its live generations' (lifted where one has
// none): during a reload the new generation boots beside the old, and an
// app's limit that counted both would OOM-kill workers of either. Once
// the old generation has drained, the limits are the app's own again.
type appGroup struct {
	name string
	g    *cgroup.Group
	// cloneInto: workers start in g (else they are moved there).
	cloneInto bool
	// use is held while a worker is cloned into the group, and by
	// Remove, which closes the group's directory.
	use sync.RWMutex
	// gens are the live generations' pools and limits, oldest first.
	gens []*Pool
	// memory is the memory.max written last (0: none), for messages.
	memory atomic.Int64
	// oomMu guards claimed: the OOM kills already put down to a worker.
	oomMu   sync.Mutex
	claimed uint64
}

// group is the cgroup of the app called name, if it has one.
func groupOf(name string) *appGroup {
	c := cgroups.Load()
	if c == nil || c.tree == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apps[name]
}

// begin counts pool p as a live generation of its app, making the app's
// cgroup on its first, and writes the limits; the pool's workers may
// then start. Failing that, the workers start in berth's own cgroup.
func begin(p *Pool) {
	c := cgroups.Load()
	if c == nil || c.tree == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ag := c.apps[p.app.Name]
	if ag == nil {
		g, err := c.tree.Group(p.app.Name)
		if err != nil {
			c.log.Error("the app's workers run in berth's cgroup", journal.KeyApp, p.app.Name, "err", err)
			return
		}
		ag = &appGroup{name: p.app.Name, g: g, cloneInto: c.cloneInto}
		ag.claimed, _ = g.OOMKills()
		c.apps[p.app.Name] = ag
	}
	if p.app.Limits.CPUWeight != 0 && c.tree.Available(cgroup.CPU) && !c.tree.Enabled(cgroup.CPU) {
		if _, err := c.tree.Enable(cgroup.CPU); err != nil {
			c.log.Error("cpu_weight is off", journal.KeyApp, p.app.Name, "err", err)
		}
	}
	ag.gens = append(ag.gens, p)
	c.apply(ag)
}

// end forgets pool p, which has stopped: its app's limits shrink back,
// and the cgroup of an app with no generation left is removed.
func end(p *Pool) {
	c := cgroups.Load()
	if c == nil || c.tree == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ag := c.apps[p.app.Name]
	if ag == nil {
		return
	}
	before := len(ag.gens)
	ag.gens = deletePool(ag.gens, p)
	switch {
	case len(ag.gens) == before:
	case len(ag.gens) > 0:
		c.apply(ag)
	default:
		delete(c.apps, ag.name)
		go c.remove(ag)
	}
}

func deletePool(pools []*Pool, p *Pool) []*Pool {
	out := pools[:0]
	for _, q := range pools {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

// apply writes the sum of the live generations' limits; the newest
// generation's cpu_weight.
func (c *Cgroups) apply(ag *appGroup) {
	var l cgroup.Limits
	sum := func(total *int64, n int64, first bool) {
		switch {
		case first:
			*total = n
		case n == 0 || *total == 0:
			*total = 0 // one generation without a limit lifts it
		default:
			*total += n
		}
	}
	for i, p := range ag.gens {
		a := p.app.Limits
		sum(&l.MemoryMax, a.Memory, i == 0)
		sum(&l.MemoryHigh, a.MemoryHigh, i == 0)
		sum(&l.PidsMax, a.Tasks, i == 0)
		l.CPUWeight = a.CPUWeight
	}
	ag.memory.Store(l.MemoryMax)
	if err := ag.g.Set(l); err != nil {
		c.log.Error("writing the app's limits", journal.KeyApp, ag.name, "err", err)
	}
}

// remove removes the cgroup of an app that has no generation left, once
// the last of its workers has gone: a recycled worker may still be
// finishing its atexit handlers. It gives up, leaving the cgroup, when
// the app has come back meanwhile (begin has opened the same directory
// for its new generation).
func (c *Cgroups) remove(ag *appGroup) {
	ag.use.Lock()
	defer ag.use.Unlock()
	var err error
	for range 100 {
		if err = c.removeUnlessBack(ag); err == nil {
			return
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.log.Warn("the removed app's cgroup stays: processes it started are still in it", journal.KeyApp, ag.name, "err", err)
}

// removeUnlessBack removes ag's cgroup under c.mu, so that begin cannot
// open it meanwhile, unless the app is back; then it is nil too.
func (c *Cgroups) removeUnlessBack(ag *appGroup) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apps[ag.name] != nil {
		ag.g.Close()
		return nil
	}
	return ag.g.Remove()
}

// claimOOM reports whether an OOM kill in the group, not yet put down to
// a worker, is there to put down to one that died of SIGKILL: the kernel
// counts a kill (memory.events) before it sends the signal, so the
// count is in by the time the worker is reaped.
func (ag *appGroup) claimOOM() bool {
	n, err := ag.g.OOMKills()
	if err != nil {
		return false
	}
	ag.oomMu.Lock()
	defer ag.oomMu.Unlock()
	if n <= ag.claimed {
		return false
	}
	ag.claimed++
	return true
}

// oomNote says what limit a worker the OOM killer ended was under.
func (ag *appGroup) oomNote() string {
	if m := ag.memory.Load(); m > 0 {
		return "memory limit " + formatSize(m)
	}
	return "the app has no memory limit (the service's or the machine's memory ran out)"
}

// formatSize writes n bytes as the configuration would: "64MiB".
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
