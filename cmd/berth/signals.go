package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berthd/berth/server"
)

// berth's signals: SIGHUP reloads; SIGTERM drains and stops; SIGINT and
// SIGQUIT stop at once; SIGUSR2 is a test hook (server.Wedge). They are
// watched from before anything starts, so that a SIGTERM while apps boot
// stops the boot instead of killing berth mid-way.

// watchSignals starts listening for berth's signals, until stop.
func watchSignals() (sigs chan os.Signal, stop func()) {
	sigs = make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR2)
	return sigs, func() { signal.Stop(sigs) }
}

// whileBooting handles signals until booted closes: a stop signal cancels
// the boot and is handed on through the returned channel to the main
// loop (runUntilStopped); a reload has nothing to reload yet and is
// ignored.
func whileBooting(sigs <-chan os.Signal, cancelBoot context.CancelFunc, booted <-chan struct{}, log *slog.Logger) <-chan os.Signal {
	pending := make(chan os.Signal, 1)
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
	return pending
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
