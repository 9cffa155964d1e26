package supervisor

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/berthd/berth/internal/fakeworker"
	"github.com/berthd/berth/units"
)

// TestSpawnFiles: spawn gives a worker its files where wire's
// WorkerFDLayout says, for one thread and several. The worker is the
// fake one, which checks each file's place, kind and size before it says
// hello (worker.py is held to the same layout by wire's TestWorkerFDs).
func TestSpawnFiles(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, threads := range []int{1, 2, 4} {
		app := &units.App{
			Name: "fds", Module: "fake", Python: exe, Threads: threads, BootTimeout: 10 * time.Second,
			Env: map[string]string{fakeworker.EnvVar: "1", "GORACE": "atexit_sleep_ms=0"},
		}
		p, err := spawn(context.Background(), app, 1, log, nil)
		if err != nil {
			t.Errorf("%d threads: %v", threads, err)
			continue
		}
		if len(p.lanes) != threads {
			t.Errorf("%d threads: %d lanes", threads, len(p.lanes))
		}
		p.stop(time.Second)
	}
}
