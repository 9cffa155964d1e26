package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/berthd/berth/server"
	"github.com/berthd/berth/units"
)

// reloadDebounce is how long `serve --reload` waits after the last change
// before it reloads: an editor's save, a `git checkout` or a formatter
// touches several files in a burst, and one reload should take them all.
const reloadDebounce = 300 * time.Millisecond

// maxWatchedDirs bounds the directories --reload watches, so that an app
// whose chdir is / or a home directory does not exhaust inotify watches
// or take minutes to walk; past it, the rest is not watched (and berth
// says so).
const maxWatchedDirs = 2000

// watchReload is `berth serve --reload`, for development: it watches the
// configuration file and the .py files under each app's chdir and
// pythonpath, and after a change reloads through the server's normal
// reload. That reload is all or nothing, so code that fails to import
// leaves the last good generation serving (its traceback is logged) and
// the next save tries again. It returns when ctx ends.
func watchReload(ctx context.Context, srv *server.Server, config string, log *slog.Logger) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Error("--reload: cannot watch files; serving without reloading", "err", err)
		return
	}
	defer w.Close()
	abs, _ := filepath.Abs(config)
	watched := map[string]bool{}
	watchTree(w, watched, filepath.Dir(abs), false, log)
	watchApps(w, watched, abs, log)
	log.Warn("--reload: reloading when Python files or the configuration change; for development only", "dirs", len(watched))
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.Errors:
			log.Warn("--reload: watching files", "err", err)
		case ev := <-w.Events:
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					watchTree(w, watched, ev.Name, true, log)
				}
			}
			if ev.Name == abs || isSource(ev.Name) {
				log.Debug("--reload: changed", "file", ev.Name, "op", ev.Op.String())
				timer = time.After(reloadDebounce)
			}
		case <-timer:
			timer = nil
			if res := srv.Reload(ctx); res.OK {
				watchApps(w, watched, abs, log) // the new configuration's apps
			}
		}
	}
}

// isSource reports whether a change to name should reload: Python source,
// not the bytecode the workers write nor an editor's swap and backup files.
func isSource(name string) bool {
	base := filepath.Base(name)
	return strings.HasSuffix(base, ".py") && !strings.HasPrefix(base, ".")
}

// watchApps adds the chdir and pythonpath trees of the apps in the
// configuration at config (read again, so that a reload's new apps and
// paths are watched too).
func watchApps(w *fsnotify.Watcher, watched map[string]bool, config string, log *slog.Logger) {
	cfg, err := units.Load(config)
	if err != nil {
		return // the reload reported it
	}
	for _, a := range cfg.Apps {
		watchTree(w, watched, a.Chdir, true, log)
		for _, p := range a.PythonPath {
			watchTree(w, watched, p, true, log)
		}
	}
}

// watchTree watches dir, and with deep every directory under it but
// those Python code does not live in: hidden ones, __pycache__, virtual
// environments (the installed packages do not change while developing)
// and node_modules.
func watchTree(w *fsnotify.Watcher, watched map[string]bool, dir string, deep bool, log *slog.Logger) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if path != dir && skipDir(path, d.Name()) {
			return filepath.SkipDir
		}
		if !watched[path] {
			if len(watched) >= maxWatchedDirs {
				log.Warn(fmt.Sprintf("--reload: watching %d directories already; %s and the rest are not watched", maxWatchedDirs, path))
				return filepath.SkipAll
			}
			if err := w.Add(path); err != nil {
				log.Warn("--reload: cannot watch", "dir", path, "err", err)
				return filepath.SkipDir
			}
			watched[path] = true
		}
		if !deep {
			return filepath.SkipDir
		}
		return nil
	})
}

func skipDir(path, name string) bool {
	if strings.HasPrefix(name, ".") || name == "__pycache__" || name == "node_modules" {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "pyvenv.cfg"))
	return err == nil
}
