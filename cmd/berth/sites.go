package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/berthd/berth/control"
	"github.com/berthd/berth/server"
)

// siteRow is one berth instance in `berth sites`: systemd's view of its
// unit (D-Bus) and, while it runs, its own (its control socket).
type siteRow struct {
	Unit     string `json:"unit"`
	Config   string `json:"config"`
	State    string `json:"state"` // ActiveState/SubState
	Memory   uint64 `json:"memory_bytes,omitempty"`
	Workers  int    `json:"workers"`
	Busy     int    `json:"busy"`
	Requests int64  `json:"requests"`
	Reload   string `json:"last_reload,omitempty"`
}

// cmdSites prints every berth instance systemd knows of, in one table.
func cmdSites(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sites", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the table as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rows, err := listSites()
	if err != nil {
		fmt.Fprintf(stderr, "berth sites: %v\n", err)
		return 1
	}
	if *asJSON {
		b, _ := json.Marshal(rows)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "UNIT\tSTATE\tWORKERS\tBUSY\tMEMORY\tREQUESTS\tLAST RELOAD")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Unit, r.State, dash(r.Workers, r.State), dash(r.Busy, r.State), memory(r.Memory), dash64(r.Requests, r.State), orDash(r.Reload))
	}
	w.Flush()
	return 0
}

// listSites finds the services that run `berth serve` (any name: the
// template's instances and what `berth units` rendered) among the units
// systemd has loaded, and asks each running one for its figures.
func listSites() ([]siteRow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd over D-Bus: %w", err)
	}
	defer conn.Close()
	units, err := conn.ListUnitsByPatternsContext(ctx, nil, []string{"*.service"})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	var rows []siteRow
	for _, u := range units {
		p, err := conn.GetUnitTypePropertyContext(ctx, u.Name, "Service", "ExecStart")
		if err != nil {
			continue
		}
		config, ok := berthConfig(p.Value.Value())
		if !ok {
			continue
		}
		r := siteRow{Unit: u.Name, Config: config, State: u.ActiveState + "/" + u.SubState}
		if m, err := conn.GetUnitTypePropertyContext(ctx, u.Name, "Service", "MemoryCurrent"); err == nil {
			r.Memory, _ = m.Value.Value().(uint64)
		}
		if u.ActiveState == "active" || u.ActiveState == "reloading" {
			r.fill()
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Unit < rows[j].Unit })
	return rows, nil
}

// berthConfig is the configuration of an ExecStart= that runs `berth
// serve CONFIG` (D-Bus gives it as an array of (path, argv, ...)).
func berthConfig(execStart any) (string, bool) {
	cmds, _ := execStart.([][]any)
	for _, c := range cmds {
		if len(c) < 2 {
			continue
		}
		argv, _ := c[1].([]string)
		if len(argv) >= 3 && filepath.Base(argv[0]) == "berth" && argv[1] == "serve" {
			return argv[len(argv)-1], true
		}
	}
	return "", false
}

// fill adds the running instance's own figures from its control socket.
func (r *siteRow) fill() {
	path, err := control.SocketPath(r.Config)
	if err != nil {
		return
	}
	resp, err := control.Call(path, "status", 5*time.Second)
	if err != nil || resp.Error != "" {
		r.Reload = "no answer on the control socket"
		return
	}
	var st server.Status
	if json.Unmarshal(resp.Result, &st) != nil {
		return
	}
	r.Workers, r.Busy, r.Requests = st.Workers, st.Busy, st.Served
	if r.Memory == 0 || r.Memory == ^uint64(0) {
		// No memory accounting for the unit (MemoryAccounting= off, or
		// no memory controller): the workers' resident memory instead.
		r.Memory = 0
		for _, a := range st.Apps {
			for _, w := range a.Workers {
				r.Memory += uint64(w.RSS)
			}
		}
	}
	outcome := "ok"
	if !st.LastReload.OK {
		outcome = "failed"
	}
	r.Reload = fmt.Sprintf("%s %s: %s", outcome, st.LastReload.At.Format(time.DateTime), st.LastReload.Message)
}

func memory(b uint64) string {
	if b == 0 || b == ^uint64(0) {
		return "-"
	}
	return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
}

func dash(n int, state string) string { return dash64(int64(n), state) }

func dash64(n int64, state string) string {
	if n == 0 && !strings.HasPrefix(state, "active") {
		return "-"
	}
	return fmt.Sprint(n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
