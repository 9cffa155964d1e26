package front

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"slices"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/supervisor"
)

// routes is where a listener's requests go: its apps, most specific
// first — apps limited to hosts before the others, and within each group
// the longest mount first — so the first match is the one to take.
type routes struct {
	list []*route
	// maxBuffer is the largest buffer_body_bytes among the apps: how much
	// of a body fasthttp may read ahead before berth routes the request.
	maxBuffer int64
}

// route is one app on a listener, with its mount, hosts and limits.
type route struct {
	app        *supervisor.App
	mount      string
	hosts      []string
	maxBody    int64
	tooLarge   string // the 413's message, which names maxBody
	bufferBody int64  // bodies up to this size stay in memory
	maxSpool   int64  // max_buffered_response
	log        *slog.Logger
	shared     *sharedPool // the app's, for bodies from sharedFrom
	m          *metrics.Route
	// static is the app's static mount this route serves (static.go),
	// nil for the app's own route.
	static *staticMount
}

func newRoutes(apps []*supervisor.App, log *slog.Logger) *routes {
	rs := &routes{maxBuffer: 1}
	for _, app := range apps {
		cfg := app.Config()
		maxBody := max(cfg.MaxBodyBytes, 1)
		rt := &route{
			app:        app,
			mount:      cfg.Mount,
			hosts:      cfg.Hosts,
			maxBody:    maxBody,
			tooLarge:   fmt.Sprintf("request body too large: this app takes at most %d bytes (max_body_bytes)", maxBody),
			bufferBody: max(min(cfg.BufferBodyBytes, maxBody), 1),
			maxSpool:   cfg.MaxBufferedResponse,
			log:        log.With(journal.KeyApp, app.Name()),
		}
		rs.list = append(rs.list, rt)
		rs.list = append(rs.list, staticRoutes(rt, cfg.Static, log)...)
		rs.maxBuffer = max(rs.maxBuffer, rt.bufferBody)
	}
	sortRoutes(rs.list)
	return rs
}

// sortRoutes puts routes limited to hosts first, then the longest mounts,
// and of an app's own mount and a static one at the same path (a static
// block at the app's root, with fallthrough), the static one.
func sortRoutes(list []*route) {
	slices.SortStableFunc(list, func(a, b *route) int {
		if (len(a.hosts) > 0) != (len(b.hosts) > 0) {
			if len(a.hosts) > 0 {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(len(b.mount), len(a.mount)); c != 0 || a.static == nil == (b.static == nil) {
			return c
		}
		if a.static != nil {
			return -1
		}
		return 1
	})
}

// match returns the app for a request to host (the Host header) and
// path (percent-decoded), or nil when no app is mounted there.
func (rs *routes) match(host, path []byte) *route {
	host = hostName(host)
	for _, rt := range rs.list {
		if len(rt.hosts) > 0 && !slices.ContainsFunc(rt.hosts, func(h string) bool { return equalFold(host, h) }) {
			continue
		}
		if under(path, rt.mount) {
			return rt
		}
	}
	return nil
}

// under reports whether path is mount or below it: "/api" covers "/api"
// and "/api/x", not "/apix".
func under(path []byte, mount string) bool {
	if len(path) < len(mount) || string(path[:len(mount)]) != mount {
		return false
	}
	return len(path) == len(mount) || path[len(mount)] == '/'
}

// hostName is a Host header without its port and trailing dot.
func hostName(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i > 0 {
			return host[:i+1]
		}
		return host
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return bytes.TrimSuffix(host, []byte("."))
}
