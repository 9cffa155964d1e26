package supervisor

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
)

// TestDiesBeforeHello: a worker that exits before its hello (here its
// "python" is /bin/false) is reported at once, by EOF on its socket,
// not after boot_timeout: berth keeps none of the worker's ends open
// while it waits.
func TestDiesBeforeHello(t *testing.T) {
	app := &units.App{Name: "gone", Module: "app:app", Python: "/bin/false", Threads: 2, BootTimeout: 20 * time.Second}
	start := time.Now()
	p, err := spawn(context.Background(), app, 1, journal.New(io.Discard, slog.LevelInfo), nil)
	if p != nil || err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("spawn of a worker that exits at once: %v, %v", p, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the worker's exit was seen after %v; want at once", d)
	}
}
