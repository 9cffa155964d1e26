package server

import (
	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/units"
)

// reloadPlan is what a reload changes, worked out from the running
// configuration and the new one before anything is opened, booted or
// stopped (planReload). It is a value, so the decisions a reload makes —
// which socket a listener keeps, when a front is replaced, which apps
// boot a new generation — are tested as a table (plan_test.go) apart
// from the sockets and workers that carry them out (reload.go).
type reloadPlan struct {
	// Listeners has one step for each listener of the new configuration,
	// in its order.
	Listeners []listenerStep
	// Close are running listeners whose socket and front go: those the
	// new configuration drops (unless a renamed listener takes their
	// socket), and those whose name a renamed listener takes while they
	// listen elsewhere.
	Close []string
	// Keep are running apps the new configuration keeps: each boots a new
	// generation beside its current one.
	Keep []string
	// Start are the apps new in the configuration.
	Start []string
	// Stop are the running apps the new configuration drops.
	Stop []string
}

// listenerAction is what a reload does to one listener's socket and front.
type listenerAction int

const (
	// listenerKeep: same socket, same settings; the front goes on serving
	// and only learns the new configuration's apps.
	listenerKeep listenerAction = iota
	// listenerRestart: same socket, new settings (limits, timeouts,
	// trust): a new front takes the socket over and the old one finishes
	// the connections it has.
	listenerRestart
	// listenerOpen: a new listener: its socket is bound or taken from
	// systemd's.
	listenerOpen
	// listenerMove: a listener at a new address: a new socket is opened
	// there, the old front and socket retire.
	listenerMove
	// listenerRename: a new name at the address of a listener the new
	// configuration drops: it takes that socket (binding the address again
	// would fail) under a new front.
	listenerRename
)

var actionNames = [...]string{"keep", "restart", "open", "move", "rename"}

func (a listenerAction) String() string { return actionNames[a] }

// listenerStep is one listener's part of a reloadPlan.
type listenerStep struct {
	Listener units.Listener
	Action   listenerAction
	// From is the running listener whose socket a listenerRename takes.
	From string
	// Owner, when set, is the mode and owner the kept socket takes in
	// place (socket_mode, socket_user, socket_group changed).
	Owner *activation.Owner
}

// planReload plans the move from the running configuration old, whose
// listeners have the sockets in sockets (by name), to cfg. It reads only
// the sockets' Spec and Passed.
func planReload(old *units.Config, sockets map[string]*activation.Socket, cfg *units.Config) reloadPlan {
	var p reloadPlan
	taken := map[string]bool{} // running listeners a renamed one takes the socket of
	for _, l := range cfg.Listeners {
		step := planListener(old, sockets, cfg, l)
		if step.Action == listenerRename {
			taken[step.From] = true
			if _, ok := sockets[l.Name]; ok {
				// The name listened elsewhere: that socket goes.
				p.Close = append(p.Close, l.Name)
			}
		}
		p.Listeners = append(p.Listeners, step)
	}
	for _, l := range old.Listeners {
		if _, kept := cfg.Listener(l.Name); !kept && !taken[l.Name] {
			p.Close = append(p.Close, l.Name)
		}
	}
	running := map[string]bool{}
	for _, a := range old.Apps {
		running[a.Name] = true
	}
	for _, a := range cfg.Apps {
		if running[a.Name] {
			p.Keep = append(p.Keep, a.Name)
			delete(running, a.Name)
		} else {
			p.Start = append(p.Start, a.Name)
		}
	}
	for _, a := range old.Apps {
		if running[a.Name] {
			p.Stop = append(p.Stop, a.Name)
		}
	}
	return p
}

// planListener is the step for listener l of the new configuration cfg.
func planListener(old *units.Config, sockets map[string]*activation.Socket, cfg *units.Config, l units.Listener) listenerStep {
	step := listenerStep{Listener: l, Action: listenerOpen}
	sock, ok := sockets[l.Name]
	if ok && sameAddress(sock, l) {
		before, _ := old.Listener(l.Name)
		before.Socket = l.Socket // applied to the socket in place; the front is unaffected
		if !before.Equal(l) {
			step.Action = listenerRestart
		} else {
			step.Action = listenerKeep
		}
		step.Owner = newOwner(sock, l)
		return step
	}
	if ok {
		step.Action = listenerMove
	}
	// A listener renamed (same address, a name the new configuration
	// drops) keeps its socket. A socket systemd passed is matched by name
	// instead, so it is never renamed.
	for _, ol := range old.Listeners {
		from, found := sockets[ol.Name]
		if _, kept := cfg.Listener(ol.Name); !found || kept || from.Passed || !sameAddress(from, l) {
			continue
		}
		step.Action, step.From, step.Owner = listenerRename, ol.Name, newOwner(from, l)
	}
	return step
}

// sameAddress reports whether sock is bound where listener l says: then
// a reload keeps it, whatever else of l changed.
func sameAddress(sock *activation.Socket, l units.Listener) bool {
	return sock.Spec.Network == l.Network && sock.Spec.Address == l.Address
}

// newOwner is the mode and owner sock takes for listener l, or nil
// when they are those it has.
func newOwner(sock *activation.Socket, l units.Listener) *activation.Owner {
	if o := spec(l).Owner; sock.Spec.Owner != o {
		return &o
	}
	return nil
}
