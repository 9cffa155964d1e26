package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/control"
	"github.com/berthd/berth/front"
	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/notify"
	"github.com/berthd/berth/server"
	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/units"
)

// cmdServe runs a configuration until a signal stops it: bind the
// listeners, start every app's workers (all must say ready, else exit 1
// with the reason) and serve. SIGHUP reloads; SIGTERM drains and stops;
// SIGINT and SIGQUIT stop at once.
func cmdServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	levelName := fs.String("log-level", "", "lowest level logged: debug, info, warn or error (default: the config's log block, else info)")
	controlPath := fs.String("control", "", "control socket path (default: derived from CONFIG in the runtime directory)")
	reload := fs.Bool("reload", false, "reload when the apps' Python files or CONFIG change (watch.go): for development")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: berth serve [--log-level LEVEL] [--control PATH] CONFIG")
		return 2
	}
	path := fs.Arg(0)
	tuneRuntime()
	defer startProfiles(stderr)()
	front.Software = "berth/" + versionString()
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return 1
	}
	log, code := serveLogger(cfg, *levelName, stderr)
	if log == nil {
		return code
	}
	supervisor.WorkerDir = control.RuntimeDir()
	ctlPath, err := controlSocket(path, *controlPath)
	if err != nil {
		log.Error("control socket", "err", err)
		return 1
	}

	sigs, stopSignals := watchSignals()
	defer stopSignals()
	bootCtx, cancelBoot := context.WithCancel(context.Background())
	defer cancelBoot()
	booted := make(chan struct{})
	pending := whileBooting(sigs, cancelBoot, booted, log)

	// systemd's sockets are taken once, before anything else can open a
	// file descriptor; each (re)load matches listeners to them by name.
	sockets := activation.Inherit()
	srv := server.New(path, cfg, log, sockets, notify.New(log))
	var started atomic.Bool
	// The control socket exists before any worker does: `berth reload`
	// during start-up gets a clear answer instead of "not running".
	ctl, err := control.Listen(ctlPath, controlHandler(srv, &started), log)
	if err != nil {
		log.Error("control socket", "err", err)
		return 1
	}
	defer ctl.Close()

	err = srv.Start(bootCtx)
	close(booted)
	if err != nil {
		logStartError(log, err)
		return 1
	}
	cancelBoot()
	started.Store(true)
	log.Info("ready", "version", versionString(), "control", ctl.Path())
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go srv.Run(runCtx)
	if *reload {
		go watchReload(runCtx, srv, path, log)
	}

	code = runUntilStopped(srv, sigs, pending, log)
	log.Info("stopped")
	return code
}

// serveLogger is the log of the configuration cfg, at the level the
// --log-level flag names (else the configuration's): nil and the exit
// code when either is wrong.
func serveLogger(cfg *units.Config, levelName string, stderr io.Writer) (*slog.Logger, int) {
	if levelName == "" {
		levelName = cfg.Log.Level
	}
	level, err := parseLevel(levelName)
	if err != nil {
		fmt.Fprintf(stderr, "berth: --log-level: %v\n", err)
		return nil, 2
	}
	log, err := journal.NewFormat(cfg.Log.Format, stderr, level)
	if err != nil {
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return nil, 1
	}
	return journal.WithAccessFormat(log, cfg.Log.AccessFormat, os.Stdout), 0
}

// controlHandler answers `berth reload` and `berth status` on the control
// socket, once srv has started.
func controlHandler(srv *server.Server, started *atomic.Bool) control.Handler {
	return func(ctx context.Context, command string) (any, bool, error) {
		if !started.Load() {
			return nil, false, errors.New("berth is still starting")
		}
		switch command {
		case "reload":
			res := srv.Reload(ctx)
			return res, res.OK, nil
		case "status":
			return srv.Status(), true, nil
		}
		return nil, false, fmt.Errorf("unknown command %q", command)
	}
}

// logStartError says why berth did not start: an app's traceback as its
// own record, named by the app.
func logStartError(log *slog.Logger, err error) {
	var be *supervisor.BootError
	if errors.As(err, &be) {
		log.Error(be.Error(), journal.KeyApp, be.App)
	} else {
		log.Error("starting failed", "err", err)
	}
}

func controlSocket(config, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	return control.SocketPath(config)
}

// cmdControl runs `berth reload` and `berth status`: ask the running
// instance through its control socket, print its answer.
func cmdControl(command string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	controlPath := fs.String("control", "", "control socket path (default: derived from CONFIG)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 && *controlPath == "" {
		fmt.Fprintf(stderr, "usage: berth %s [--json] [--control PATH] CONFIG\n", command)
		return 2
	}
	path, err := controlSocket(fs.Arg(0), *controlPath)
	if err != nil {
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return 1
	}
	resp, err := control.Call(path, command, controlTimeout)
	if err != nil {
		fmt.Fprintf(stderr, "berth %s: %v\n", command, err)
		return 1
	}
	if resp.Error != "" {
		fmt.Fprintf(stderr, "berth %s: %s\n", command, resp.Error)
		return 1
	}
	if command == "status" {
		// Beside berth's own figures, systemd's view of the unit, when
		// berth runs in one and D-Bus answers: {"berth": …, "systemd": …}.
		var st server.Status
		var us *unitState
		if json.Unmarshal(resp.Result, &st) == nil && st.Unit != "" {
			if us, err = systemdState(st.Unit); err != nil {
				fmt.Fprintf(stderr, "berth status: no systemd state: %v\n", err)
			}
		}
		if *asJSON {
			combined, _ := json.Marshal(statusJSON{Berth: resp.Result, Systemd: us})
			fmt.Fprintln(stdout, string(combined))
			return 0
		}
		if us != nil {
			printUnitState(stdout, us)
		}
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(resp.Result))
	} else if err := printResult(stdout, command, resp.Result); err != nil {
		fmt.Fprintf(stderr, "berth %s: %v\n", command, err)
		return 1
	}
	if !resp.OK {
		return 1
	}
	return 0
}

// statusJSON is `berth status --json`.
type statusJSON struct {
	Berth   json.RawMessage `json:"berth"`
	Systemd *unitState      `json:"systemd"`
}

func printResult(w io.Writer, command string, raw json.RawMessage) error {
	switch command {
	case "reload":
		var r server.ReloadResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		printReload(w, r)
	case "status":
		var st server.Status
		if err := json.Unmarshal(raw, &st); err != nil {
			return err
		}
		printStatus(w, st)
	}
	return nil
}
