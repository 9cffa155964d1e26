package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/berthd/berth/units"
)

// Probed is what one worker's import of an app showed.
type Probed struct {
	// Python is the interpreter's path, as berth found it.
	Python string
	// Version is the version the interpreter reported ("3.11.2").
	Version string
	// Took is the time from starting the worker to its hello: the
	// interpreter's start and the app's import.
	Took time.Duration
}

// Probe starts one worker of app, as serving would (its interpreter,
// chdir, pythonpath and env, one thread), waits until it has imported the
// app, and stops it. It is `berth check --import`: the same spawn as
// serving, so what it reports is what serving would meet. An app that
// fails to import returns a *BootError with Python's traceback.
func Probe(ctx context.Context, app units.App, log *slog.Logger) (Probed, error) {
	app.Threads = 1
	res := Probed{Python: app.Python}
	if p, err := exec.LookPath(app.Python); err == nil {
		res.Python, _ = filepath.Abs(p)
	}
	start := time.Now()
	proc, err := spawn(ctx, &app, 0, log, nil) // generation 0: no generation serves
	if err != nil {
		return res, fmt.Errorf("importing app %q: %w", app.Name, err)
	}
	res.Took = time.Since(start)
	res.Version = proc.version
	proc.stop(app.GracefulTimeout)
	return res, nil
}
