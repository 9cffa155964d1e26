package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/berthd/berth/cgroup"
	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/units"
)

// cmdCheck is `berth check [--import] CONFIG`: the file is valid and
// what it names can run here (each app's python, at its line), with what
// it read from the environment; with --import, each app's module imports
// in a worker started as serving would start it, as Gunicorn's
// --check-config does. Exit 0 when all is well, 1 when not.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	doImport := fs.Bool("import", false, "start one worker per app and import the app: interpreter, version, import time, or the traceback")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: berth check CONFIG, or berth check --import CONFIG")
		return 2
	}
	path := fs.Arg(0)
	cfg, ok := loadConfigWith(units.LoadOnHost, path, stderr)
	if !ok {
		return 1
	}
	fmt.Fprintln(stdout, cfg.Summary())
	for _, line := range cfg.Resolved() {
		fmt.Fprintf(stdout, "  %s\n", line)
	}
	if note := cfg.IdleExitNote(); note != "" {
		fmt.Fprintln(stderr, "warning: "+note)
	}
	if note := cfg.LimitsNote(); note != "" {
		fmt.Fprintln(stderr, "warning: "+note)
		if err := cgroup.Machine(); err != nil {
			fmt.Fprintf(stderr, "warning: this machine cannot enforce them: %v\n", err)
		}
	}
	if !*doImport {
		return 0
	}
	code := 0
	for _, a := range cfg.Apps {
		if !checkImport(a, stdout, stderr) {
			code = 1
		}
	}
	return code
}

// checkImport imports app a in one worker and reports how it went: on
// stdout when it imported, on stderr with the traceback when not.
func checkImport(a units.App, stdout, stderr io.Writer) bool {
	// The worker's own output (an app that prints while importing) goes
	// to stderr, apart from the report.
	log, err := journal.NewFormat("text", stderr, slog.LevelWarn)
	if err != nil {
		fmt.Fprintf(stderr, "berth check: %v\n", err)
		return false
	}
	res, err := supervisor.Probe(context.Background(), a, log.With(journal.KeyApp, a.Name))
	if err == nil {
		fmt.Fprintf(stdout, "app %s: imported %s in %s with %s (Python %s)\n", a.Name, a.Module, res.Took.Round(time.Millisecond), res.Python, res.Version)
		return true
	}
	var be *supervisor.BootError
	if errors.As(err, &be) {
		fmt.Fprintf(stderr, "app %s: importing %s with %s failed (chdir %s):\n%s\n", a.Name, a.Module, res.Python, a.Chdir, strings.TrimRight(be.Traceback, "\n"))
	} else {
		fmt.Fprintf(stderr, "app %s: %v\n", a.Name, err)
	}
	return false
}
