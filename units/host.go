package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"

	"github.com/hashicorp/hcl/v2"
)

// LoadOnHost is Load plus the checks that depend on the machine rather
// than the file: each app's python exists and is executable. `berth
// check` uses it; Load does not, so that a configuration can be rendered
// into units (or packaged) on a machine other than the one that runs it.
func LoadOnHost(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return parse(path, src, true)
}

// checkPython reports an interpreter that cannot be started: a worker
// would fail at exec, after the listeners are bound, with no pointer to
// the line that named it. expr is the python attribute (null when not
// written: then the app block is pointed at, since the default is used).
func (d *decoder) checkPython(python string, expr hcl.Expression, b *hcl.Block) {
	rng := b.DefRange
	what := fmt.Sprintf("python is not set, and its default %q", python)
	if _, ok := d.value(expr); ok {
		rng = expr.Range()
		what = fmt.Sprintf("python %q", python)
	}
	if err := executable(python); err != nil {
		d.errorf(&rng, "Python not found", "%s cannot be run: %v.", what, err)
	}
}

// executable resolves python as exec does (a name through PATH, a path as
// it is) and says why it cannot be run, or nil.
func executable(python string) error {
	_, err := exec.LookPath(python)
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("no such program on PATH (%s)", os.Getenv("PATH"))
	}
	fi, serr := os.Stat(python)
	switch {
	case serr != nil:
		var pe *fs.PathError
		if errors.As(serr, &pe) {
			return pe.Err
		}
		return serr
	case fi.IsDir():
		return errors.New("it is a directory")
	case fi.Mode()&0o111 == 0:
		return fmt.Errorf("it is not executable (mode %s)", fi.Mode().Perm())
	}
	return err
}
