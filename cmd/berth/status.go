package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/berthd/berth/server"
)

// controlTimeout bounds waiting for the running instance: a reload waits
// for new workers to boot, which can take as long as an app's import.
const controlTimeout = 10 * time.Minute

func printReload(w io.Writer, r server.ReloadResult) {
	if r.OK {
		fmt.Fprintf(w, "ok: %s\n", r.Message)
	} else {
		fmt.Fprintf(w, "failed: %s\n", r.Message)
	}
	if r.Detail != "" {
		fmt.Fprintln(w, strings.TrimRight(r.Detail, "\n"))
	}
}

func printStatus(w io.Writer, st server.Status) {
	last := "ok"
	if !st.LastReload.OK {
		last = "failed: " + st.LastReload.Message
	}
	fmt.Fprintf(w, "berth serving %s, up %s, %d reload(s), last: %s\n", st.Config, seconds(st.Uptime), st.Reloads, last)
	fmt.Fprintf(w, "totals: %d workers, %d busy, %d queued, %d requests served by the current generations\n", st.Workers, st.Busy, st.Queued, st.Served)
	printSinceStart(w, st, "")
	printReadiness(w, st)
	for _, l := range st.Listeners {
		app := strings.Join(l.Apps, ", ")
		if app == "" {
			app = "(no app)"
		}
		how := "bound by berth"
		if l.Passed {
			how = "passed by systemd"
		}
		fmt.Fprintf(w, "listener %s on %s (%s) -> %s\n", l.Name, l.Addr, how, app)
	}
	sort.Slice(st.Apps, func(i, j int) bool { return st.Apps[i].Name < st.Apps[j].Name })
	for _, a := range st.Apps {
		size := fmt.Sprint(a.MaxWorkers)
		if a.MinWorkers != a.MaxWorkers {
			size = fmt.Sprintf("%d-%d", a.MinWorkers, a.MaxWorkers)
		}
		fmt.Fprintf(w, "app %s (%s) generation %d, up %s: %d/%s workers, %d busy, queue %d/%d, %d served\n",
			a.Name, a.Module, a.Generation, seconds(a.Uptime), len(a.Workers), size, a.Busy, a.Queued, a.QueueSize, a.Served)
		printSinceStart(w, st, a.Name)
		for _, wk := range a.Workers {
			if wk.PID == 0 {
				fmt.Fprintf(w, "  worker    -  %-8s\n", wk.State)
				continue
			}
			fmt.Fprintf(w, "  worker %6d  %-5s  %8d served  %6.1f MiB  up %s\n", wk.PID, wk.State, wk.Served, float64(wk.RSS)/(1<<20), seconds(wk.Uptime))
		}
	}
}

// printReadiness prints what /readyz answers ("readiness: draining
// (berth is stopping)"), and where the admin listener is.
func printReadiness(w io.Writer, st server.Status) {
	line := "readiness: " + st.Readiness
	if st.ReadyReason != "" {
		line += " (" + strings.TrimPrefix(st.ReadyReason, st.Readiness+": ") + ")"
	}
	if st.Admin != "" {
		line += "; admin on " + st.Admin
	}
	fmt.Fprintln(w, line)
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
