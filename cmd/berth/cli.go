package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/berthd/berth/units"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `berth — a systemd-native application server for Python WSGI apps

Usage:
  berth serve [FLAGS] MODULE:CALLABLE      serve a WSGI app, no file needed (berth serve --help: the flags)
  berth serve [--reload] [--log-level LEVEL] CONFIG
                                           serve CONFIG: SIGHUP reloads, SIGTERM drains and stops
  berth check [--import] CONFIG            validate CONFIG; with --import, import each app in a worker
  berth reload [--json] CONFIG             reload the instance serving CONFIG; wait for the outcome
  berth status [--json] CONFIG             show the live state of the instance serving CONFIG
  berth units [--name NAME] CONFIG         print the systemd .socket and .service units for CONFIG
  berth nginx [--listen ADDR] [--tls-cert FILE --tls-key FILE] CONFIG
                                           print an nginx configuration that proxies to CONFIG's listeners
  berth version                            print the version
  berth help                               print this text
`

// run is the whole CLI with its inputs and outputs injected, so tests call
// it without a process. It returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCommand(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "reload", "status":
		return cmdControl(args[0], args[1:], stdout, stderr)
	case "units":
		return cmdUnits(args[1:], stdout, stderr)
	case "nginx":
		return cmdNginx(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "berth", versionString())
		return 0
	case "help", "--help", "-h", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "berth: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// loadConfig loads path, printing its diagnostics with source lines on
// failure.
func loadConfig(path string, stderr io.Writer) (*units.Config, bool) {
	return loadConfigWith(units.Load, path, stderr)
}

// loadConfigWith is loadConfig with load reading the file.
func loadConfigWith(load func(string) (*units.Config, error), path string, stderr io.Writer) (*units.Config, bool) {
	cfg, err := load(path)
	var de *units.DiagError
	switch {
	case errors.As(err, &de):
		de.Format(stderr)
		fmt.Fprintf(stderr, "%s: %d error(s)\n", path, len(de.Diags.Errs()))
		return nil, false
	case err != nil:
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return nil, false
	}
	return cfg, true
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}
