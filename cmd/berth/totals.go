package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/server"
)

// `berth status` prints an app's counts since berth started beside its
// current generation's, which a reload sets back to 0. They are read from
// the status's metric families, the same gathering /metrics renders, so
// the two never disagree.

// sinceStart is the since-start line of app (every app when app is ""):
// served, refused, timed out, workers ended and why.
func sinceStart(fs []metrics.Family, app string) string {
	match := map[string]string{}
	if app != "" {
		match["app"] = app
	}
	count := func(name string, extra ...string) int64 {
		m := map[string]string{}
		for k, v := range match {
			m[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return int64(metrics.Total(fs, name, m))
	}
	parts := []string{
		fmt.Sprintf("%d served", count("berth_served_total")),
		fmt.Sprintf("%d refused (503)", count("berth_queue_rejections_total")),
		fmt.Sprintf("%d timed out", count("berth_request_timeouts_total")),
	}
	var exits []string
	for _, c := range []string{"crash", "timeout", "max_requests", "max_lifetime", "max_rss", "scale_down"} {
		if n := count("berth_worker_exits_total", "cause", c); n > 0 {
			exits = append(exits, fmt.Sprintf("%d %s", n, c))
		}
	}
	if len(exits) > 0 {
		parts = append(parts, "workers ended: "+strings.Join(exits, ", "))
	}
	return "since start: " + strings.Join(parts, ", ")
}

// printSinceStart prints the since-start line under an app's line, or
// nothing when the status has no metrics (an older berth answered).
func printSinceStart(w io.Writer, st server.Status, app string) {
	if len(st.Metrics) > 0 {
		fmt.Fprintf(w, "  %s\n", sinceStart(st.Metrics, app))
	}
}
