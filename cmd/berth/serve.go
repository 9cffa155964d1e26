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
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/control"
	"github.com/berthd/berth/front"
	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/notify"
	"github.com/berthd/berth/server"
	"github.com/berthd/berth/supervisor"
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
	if os.Getenv("GOGC") == "" {
		// berth's live heap is mostly per-connection buffers; the default
		// GOGC=100 lets the heap reach twice that. At 1,000 keep-alive
		// connections (bench/ hello-c1000) GOGC=50 took berth's RSS from
		// 65 MiB to 51 MiB at the same throughput, and hello c50 lost
		// nothing. GOGC in the environment still wins.
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// The front shares the machine with its Python workers (one per
		// core by default), so its Go code runs on half the CPUs berth
		// may use, at least one. A P more than the front needs spins and
		// wakes threads each time it runs dry, and that CPU is the
		// workers'. On 2 cores (bench/, 8 interleaved rounds of hello c50)
		// one P instead of two: median 24.5k -> 28.2k req/s, berth's CPU
		// 41 -> 31 us per request; Flask, 256 KiB and c1000 3-5% faster.
		// GOMAXPROCS in the environment still wins.
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/2))
	}
	if prof := os.Getenv("BERTH_CPUPROFILE"); prof != "" {
		// For bench/: a CPU profile of the whole run, written at exit.
		if stop, err := startProfile(prof); err != nil {
			fmt.Fprintf(stderr, "berth: BERTH_CPUPROFILE: %v\n", err)
		} else {
			defer stop()
		}
	}
	if prof := os.Getenv("BERTH_MEMPROFILE"); prof != "" {
		// For bench/: where the run's allocations came from (every one
		// sampled), written at exit; each is work for the GC, whose
		// cycles show in the latency tail.
		runtime.MemProfileRate = 1
		defer writeMemProfile(prof, stderr)
	}
	front.Software = "berth/" + versionString()
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return 1
	}
	if *levelName == "" {
		*levelName = cfg.Log.Level
	}
	level, err := parseLevel(*levelName)
	if err != nil {
		fmt.Fprintf(stderr, "berth: --log-level: %v\n", err)
		return 2
	}
	log, err := journal.NewFormat(cfg.Log.Format, stderr, level)
	if err != nil {
		fmt.Fprintf(stderr, "berth: %v\n", err)
		return 1
	}
	log = journal.WithAccessFormat(log, cfg.Log.AccessFormat, os.Stdout)
	supervisor.WorkerDir = control.RuntimeDir()
	ctlPath, err := controlSocket(path, *controlPath)
	if err != nil {
		log.Error("control socket", "err", err)
		return 1
	}

	// Signals are watched from the start, so that a SIGTERM while apps
	// boot stops the boot instead of killing berth mid-way.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	bootCtx, cancelBoot := context.WithCancel(context.Background())
	defer cancelBoot()
	// During start-up a stop signal cancels the boot and is handed on to
	// the main loop; a reload has nothing to reload yet and is ignored.
	pending := make(chan os.Signal, 1)
	booted := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP || sig == syscall.SIGUSR2 {
					log.Warn("signal ignored: still starting", "signal", sig.String())
					continue
				}
				log.Info("signal received during start-up; stopping", "signal", sig.String())
				cancelBoot()
				pending <- sig
				return
			case <-booted:
				return
			}
		}
	}()

	// systemd's sockets are taken once, before anything else can open a
	// file descriptor; each (re)load matches listeners to them by name.
	sockets := activation.Inherit()
	notifier := notify.New(log)
	srv := server.New(path, cfg, log, sockets, notifier)
	var started atomic.Bool
	// The control socket exists before any worker does: `berth reload`
	// during start-up gets a clear answer instead of "not running".
	ctl, err := control.Listen(ctlPath, func(ctx context.Context, command string) (any, bool, error) {
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
	}, log)
	if err != nil {
		log.Error("control socket", "err", err)
		return 1
	}
	defer ctl.Close()

	err = srv.Start(bootCtx)
	close(booted)
	if err != nil {
		var be *supervisor.BootError
		if errors.As(err, &be) {
			log.Error(be.Error(), journal.KeyApp, be.App)
		} else {
			log.Error("starting failed", "err", err)
		}
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

	code := runUntilStopped(srv, sigs, pending, log)
	log.Info("stopped")
	return code
}

// runUntilStopped serves until a stop signal, or a listener that fails,
// and stops srv accordingly; it returns the exit code. SIGHUP reloads.
func runUntilStopped(srv *server.Server, sigs, pending <-chan os.Signal, log *slog.Logger) int {
	for {
		var sig os.Signal
		select {
		case sig = <-pending:
		case sig = <-sigs:
		case err := <-srv.Errors():
			log.Error("serving failed; shutting down", "err", err)
			srv.Shutdown(false)
			return 1
		}
		switch sig {
		case syscall.SIGHUP:
			// In the background, so that a SIGTERM is heard while new
			// workers boot; reloads queue behind each other.
			go srv.Reload(context.Background())
		case syscall.SIGUSR2:
			srv.Wedge() // a test hook, inert unless BERTH_TEST_HOOKS=1
		case syscall.SIGTERM:
			// Stragglers killed at the end of graceful_timeout are
			// logged, but the stop itself succeeded: exit 0, so that
			// systemd does not mark the unit failed.
			log.Info("shutting down: finishing requests in flight", "signal", sig.String())
			if now := drain(srv, sigs, log); now != nil {
				log.Info("shutting down now", "signal", now.String())
				srv.Shutdown(true)
				return 0
			}
			srv.Shutdown(false)
			return 0
		default:
			log.Info("shutting down now", "signal", sig.String())
			srv.Shutdown(true)
			return 0
		}
	}
}

// drain begins a graceful stop: readiness fails at once, and srv serves
// on as before for the admin block's drain_delay, so that load balancers
// stop sending before berth stops accepting. SIGINT or SIGQUIT meanwhile
// cuts it short and is returned, to stop at once; other signals are
// ignored (a reload would be refused).
func drain(srv *server.Server, sigs <-chan os.Signal, log *slog.Logger) os.Signal {
	delay := srv.BeginDrain()
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGINT || sig == syscall.SIGQUIT {
				return sig
			}
			log.Warn("signal ignored: draining", "signal", sig.String())
		}
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

// writeMemProfile writes the allocations profile to path, after a
// collection so that it is current (the profile is as of the last one).
// It misses what was allocated before BERTH_MEMPROFILE took effect.
func writeMemProfile(path string, stderr io.Writer) {
	runtime.GC()
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "berth: BERTH_MEMPROFILE: %v\n", err)
	}
}

// startProfile writes a CPU profile to path until the returned stop.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
