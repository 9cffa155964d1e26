package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/front"
	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/supervisor"
)

// gracefulTimeout bounds a shutdown: in-flight and queued requests get
// this long to finish before their workers are killed.
const gracefulTimeout = 30 * time.Second

// cmdServe runs a configuration until SIGTERM or SIGINT: bind the
// listeners, start every app's workers (all must say ready, else exit 1
// with the reason), serve, then drain and stop.
func cmdServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	levelName := fs.String("log-level", "info", "lowest level logged: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: berth serve [--log-level LEVEL] CONFIG")
		return 2
	}
	level, err := parseLevel(*levelName)
	if err != nil {
		fmt.Fprintf(stderr, "berth: --log-level: %v\n", err)
		return 2
	}
	cfg, ok := loadConfig(fs.Arg(0), stderr)
	if !ok {
		return 1
	}
	log := journal.New(stderr, level)

	// Signals are watched from the start, so that a SIGTERM while apps
	// boot stops the boot instead of killing berth mid-way.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	bootCtx, cancelBoot := context.WithCancel(context.Background())
	defer cancelBoot()
	go func() {
		select {
		case sig := <-sigs:
			log.Info("signal received during start-up; stopping", "signal", sig.String())
			cancelBoot()
		case <-bootCtx.Done():
		}
	}()

	var specs []activation.Spec
	for _, l := range cfg.Listeners {
		specs = append(specs, activation.Spec{Name: l.Name, Network: l.Network, Address: l.Address})
	}
	sockets, err := activation.Listen(specs)
	if err != nil {
		log.Error("cannot listen", "err", err)
		return 1
	}
	byName := map[string]*activation.Socket{}
	for _, s := range sockets {
		byName[s.Name] = s
	}

	var pools []*supervisor.Pool
	stopPools := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), gracefulTimeout)
		defer cancel()
		clean := true
		for _, p := range pools {
			if err := p.Stop(ctx); err != nil {
				log.Warn("stopping app", "err", err)
				clean = false
			}
		}
		return clean
	}
	for _, app := range cfg.Apps {
		p := supervisor.NewPool(app, log)
		log.Info("starting app", journal.KeyApp, app.Name, "workers", app.Workers, "python", app.Python)
		if err := p.Start(bootCtx); err != nil {
			var be *supervisor.BootError
			if errors.As(err, &be) {
				log.Error(be.Error(), journal.KeyApp, app.Name)
			} else {
				log.Error("starting app failed", journal.KeyApp, app.Name, "err", err)
			}
			stopPools()
			closeSockets(sockets)
			return 1
		}
		pools = append(pools, p)
	}
	cancelBoot()

	var fronts []*front.Server
	serveErr := make(chan error, len(pools))
	for _, p := range pools {
		app := p.App()
		l, _ := cfg.Listener(app.Listener)
		sock := byName[l.Name]
		f := front.New(l, p, log)
		fronts = append(fronts, f)
		go func() {
			if err := f.Serve(sock.Listener); err != nil {
				serveErr <- fmt.Errorf("listener %q: %w", l.Name, err)
			}
		}()
		log.Info("listening", journal.KeyListener, l.Name, "addr", sock.Addr(), journal.KeyApp, app.Name)
	}
	log.Info("ready", "apps", len(pools), "version", versionString())

	code := 0
	select {
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
	case err := <-serveErr:
		log.Error("serving failed; shutting down", "err", err)
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), gracefulTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, f := range fronts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Shutdown(ctx); err != nil {
				log.Warn("closing connections", "err", err)
			}
		}()
	}
	wg.Wait()
	if !stopPools() {
		code = 1
	}
	closeSockets(sockets)
	log.Info("stopped")
	return code
}

func closeSockets(sockets []*activation.Socket) {
	for _, s := range sockets {
		if !s.Passed {
			s.Listener.Close()
		}
	}
}
