// Package notify tells systemd the truth about berth's state over the
// sd_notify protocol: READY only once every app's workers are ready,
// RELOADING and READY around a reload, STOPPING on shutdown, a one-line
// STATUS, EXTEND_TIMEOUT while slow apps boot, and WATCHDOG pings only
// while berth is healthy. Without NOTIFY_SOCKET every call does nothing.
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends state changes to systemd.
type Notifier struct {
	enabled bool
	log     *slog.Logger
}

// New returns a notifier for this process; it is active when systemd
// gave berth a notification socket.
func New(log *slog.Logger) *Notifier {
	return &Notifier{enabled: os.Getenv("NOTIFY_SOCKET") != "", log: log}
}

// Enabled reports whether systemd listens.
func (n *Notifier) Enabled() bool { return n.enabled }

func (n *Notifier) send(state string) {
	if !n.enabled {
		return
	}
	// The environment is kept: berth notifies for its whole life. Workers
	// get an environment without NOTIFY_SOCKET (see supervisor).
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// Ready says every app serves, with the status line.
func (n *Notifier) Ready(status string) {
	n.send(daemon.SdNotifyReady + "\nSTATUS=" + status)
}

// Reloading says a reload began. MONOTONIC_USEC lets systemd ≥ 253 pair
// it with the READY that ends it (Type=notify-reload); go-systemd ends
// that line with its newline (or gives "" without a monotonic clock).
func (n *Notifier) Reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec() + "STATUS=reloading")
}

// Stopping says berth is draining and will exit.
func (n *Notifier) Stopping(status string) {
	n.send(daemon.SdNotifyStopping + "\nSTATUS=" + status)
}

// Status replaces the one-line status systemctl shows.
func (n *Notifier) Status(status string) {
	n.send("STATUS=" + status)
}

// ExtendTimeout asks systemd for d more before it gives up on a start.
func (n *Notifier) ExtendTimeout(d time.Duration) {
	n.send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", d.Microseconds()))
}

// Watchdog pings systemd at half of WatchdogSec for as long as ctx
// lives, but only while healthy() holds: a wedged berth must go quiet so
// that systemd restarts it. It returns at once when the watchdog is off.
func (n *Notifier) Watchdog(ctx context.Context, healthy func() error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 || !n.enabled {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	quiet := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := healthy(); err != nil {
			if !quiet {
				n.log.Error("unhealthy: withholding the watchdog ping", "err", err)
			}
			quiet = true
			continue
		}
		quiet = false
		n.send(daemon.SdNotifyWatchdog)
	}
}
