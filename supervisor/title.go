package supervisor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/berthd/berth/wire"
)

// WorkerDir is the directory where berth writes the worker program for
// the workers to run (berth serve sets it to its runtime directory, where
// the control socket is). Empty: a directory of berth's own under $TMPDIR.
var WorkerDir string

// A worker runs the program from a file, as
//
//	/usr/bin/python3 -u /run/berth/worker-1a2b3c4d5e6f/berth-worker shop gen 3
//
// so that ps and top show which app and generation each worker serves,
// rather than `python3 -c` and the whole 30 KiB program. The interpreter
// stays argv[0], as the app's python setting names it: Python finds a
// virtualenv from it (pyvenv.cfg beside it), so a venv's packages still
// import. The module and thread count go in the environment
// (BERTH_MODULE, BERTH_THREADS), which the worker takes out of os.environ
// before the app is imported.

// workerArgs returns the worker's command line after the interpreter.
func workerArgs(app string, gen int) ([]string, error) {
	path, err := workerFile()
	if err != nil {
		return nil, err
	}
	return []string{"-u", path, app, "gen", strconv.Itoa(gen)}, nil
}

var workerOnce struct {
	sync.Mutex
	dir, path string
}

// workerFile writes the worker program where WorkerDir says, once per
// directory, and returns its path. The file's directory is named after the
// program's hash, so berth builds with different workers that share a
// runtime directory never run each other's, and a file found there already
// is used only if it holds this program.
func workerFile() (string, error) {
	w := &workerOnce
	w.Lock()
	defer w.Unlock()
	dir := WorkerDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("berth-%d", os.Geteuid()))
	}
	if w.path != "" && w.dir == dir {
		return w.path, nil
	}
	sum := sha256.Sum256([]byte(wire.WorkerSource))
	sub := filepath.Join(dir, "worker-"+hex.EncodeToString(sum[:6]))
	path := filepath.Join(sub, "berth-worker")
	if err := privateDir(sub); err != nil {
		return "", err
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, []byte(wire.WorkerSource)) {
		if err := writeAtomic(path, []byte(wire.WorkerSource)); err != nil {
			return "", err
		}
	}
	w.dir, w.path = dir, path
	return path, nil
}

// privateDir makes sub (and its parents) and checks that berth's user
// owns it and its parent, and that no one else may write in them: the
// workers run what is there. (Above those, /run or /tmp are not berth's to
// judge.)
func privateDir(sub string) error {
	if err := os.MkdirAll(sub, 0o700); err != nil {
		return fmt.Errorf("making the worker program's directory: %w", err)
	}
	for _, d := range []string{filepath.Dir(sub), sub} {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("checking the worker program's directory: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("the worker program's directory %s must be berth's user's and written by no one else (mode %v)", d, fi.Mode().Perm())
		}
	}
	return nil
}

// writeAtomic writes b to path through a temporary file and a rename, so
// that a worker starting meanwhile (another berth sharing the directory)
// reads the whole program or the one before.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".berth-worker-*")
	if err != nil {
		return fmt.Errorf("writing the worker program: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing the worker program: %w", err)
	}
	return nil
}

// spawn starts one worker of the pool (see the package-level spawn),
// titled with the app and generation, in the app's cgroup and counted in
// the app's series.
func (p *Pool) spawn(ctx context.Context) (*process, error) {
	proc, err := spawn(ctx, &p.app, p.gen, p.log, groupOf(p.app.Name))
	if err == nil {
		proc.m = p.m
	}
	return proc, err
}
