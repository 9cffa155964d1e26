package server

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/units"
)

// TestPlanReload: what a reload does to each listener and app, for each
// kind of change between two configurations.
func TestPlanReload(t *testing.T) {
	tcp := func(name, addr string) units.Listener {
		return units.Listener{Name: name, Network: "tcp", Address: addr, IdleTimeout: 5 * time.Second}
	}
	unix := func(name, path string, mode uint32) units.Listener {
		l := units.Listener{Name: name, Network: "unix", Address: path, IdleTimeout: 5 * time.Second}
		l.Socket.Mode = mode
		return l
	}
	slow := tcp("http", ":8000")
	slow.IdleTimeout = time.Minute
	app := func(name string) units.App { return units.App{Name: name} }
	cases := []struct {
		name     string
		old, new []units.Listener
		passed   []string // listeners of old whose socket systemd passed
		oldApps  []units.App
		newApps  []units.App
		want     string // the plan, as summary writes it
	}{
		{"nothing changed",
			[]units.Listener{tcp("http", ":8000")}, []units.Listener{tcp("http", ":8000")}, nil,
			[]units.App{app("shop")}, []units.App{app("shop")},
			"http keep; keep shop"},
		{"new settings",
			[]units.Listener{tcp("http", ":8000")}, []units.Listener{slow}, nil, nil, nil,
			"http restart"},
		{"new socket mode only: the front is kept",
			[]units.Listener{unix("u", "/run/a.sock", 0o660)}, []units.Listener{unix("u", "/run/a.sock", 0o666)}, nil, nil, nil,
			"u keep owner 666"},
		{"new socket mode and new settings",
			[]units.Listener{unix("u", "/run/a.sock", 0o660)},
			[]units.Listener{func() units.Listener { l := unix("u", "/run/a.sock", 0o666); l.MaxURIBytes = 100; return l }()}, nil, nil, nil,
			"u restart owner 666"},
		{"a listener added",
			[]units.Listener{tcp("http", ":8000")}, []units.Listener{tcp("http", ":8000"), tcp("admin", ":9000")}, nil, nil, nil,
			"http keep; admin open"},
		{"a listener dropped",
			[]units.Listener{tcp("http", ":8000"), tcp("admin", ":9000")}, []units.Listener{tcp("http", ":8000")}, nil, nil, nil,
			"http keep; close admin"},
		{"moved",
			[]units.Listener{tcp("http", ":8000")}, []units.Listener{tcp("http", ":8001")}, nil, nil, nil,
			"http move"},
		{"same address, another network",
			[]units.Listener{tcp("http", "a")}, []units.Listener{unix("http", "a", 0)}, nil, nil, nil,
			"http move"},
		{"renamed: the socket is kept",
			[]units.Listener{tcp("http", ":8000")}, []units.Listener{tcp("web", ":8000")}, nil, nil, nil,
			"web rename from http"},
		{"renamed with a new socket mode",
			[]units.Listener{unix("u", "/run/a.sock", 0o660)}, []units.Listener{unix("v", "/run/a.sock", 0o600)}, nil, nil, nil,
			"v rename from u owner 600"},
		{"renamed, systemd's socket: matched by name, so opened anew",
			[]units.Listener{tcp("http", ":8000")}, []units.Listener{tcp("web", ":8000")}, []string{"http"}, nil, nil,
			"web open; close http"},
		{"a kept name takes a dropped listener's address: its own socket goes",
			[]units.Listener{tcp("a", ":8000"), tcp("b", ":8001")}, []units.Listener{tcp("a", ":8001")}, nil, nil, nil,
			"a rename from b; close a"},
		{"two listeners swap addresses: both move",
			[]units.Listener{tcp("a", ":8000"), tcp("b", ":8001")}, []units.Listener{tcp("a", ":8001"), tcp("b", ":8000")}, nil, nil, nil,
			"a move; b move"},
		{"apps kept, started and stopped, in the files' order",
			[]units.Listener{tcp("http", ":8000")}, []units.Listener{tcp("http", ":8000")}, nil,
			[]units.App{app("a"), app("b"), app("c")}, []units.App{app("d"), app("c"), app("a")},
			"http keep; keep c a; start d; stop b"},
		{"everything new",
			nil, []units.Listener{tcp("http", ":8000")}, nil, nil, []units.App{app("shop")},
			"http open; start shop"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := &units.Config{Listeners: tc.old, Apps: tc.oldApps}
			cfg := &units.Config{Listeners: tc.new, Apps: tc.newApps}
			sockets := map[string]*activation.Socket{}
			for _, l := range tc.old {
				sockets[l.Name] = &activation.Socket{Name: l.Name, Spec: spec(l), Passed: slices.Contains(tc.passed, l.Name)}
			}
			if got := summary(planReload(old, sockets, cfg)); got != tc.want {
				t.Errorf("plan:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// summary writes plan in one line: each listener's step, then the
// listeners closed and the apps kept, started and stopped.
func summary(p reloadPlan) string {
	var parts []string
	for _, s := range p.Listeners {
		part := s.Listener.Name + " " + s.Action.String()
		if s.From != "" {
			part += " from " + s.From
		}
		if s.Owner != nil {
			part += fmt.Sprintf(" owner %o", s.Owner.Mode)
		}
		parts = append(parts, part)
	}
	for _, list := range []struct {
		word  string
		names []string
	}{{"close", p.Close}, {"keep", p.Keep}, {"start", p.Start}, {"stop", p.Stop}} {
		if len(list.names) > 0 {
			parts = append(parts, list.word+" "+strings.Join(list.names, " "))
		}
	}
	return strings.Join(parts, "; ")
}
