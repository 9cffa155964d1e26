package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Group is one app's cgroup, "app-NAME" in the tree.
type Group struct {
	tree *Tree
	dir  string
	// fd is the open directory that workers are cloned into
	// (CLONE_INTO_CGROUP): the worker is in the group before it runs
	// anything, with no window in which its memory counts elsewhere.
	fd int
}

// Limits are the values of a group's files. Zero is no limit: "max"
// (for CPUWeight, the kernel's default weight, 100).
type Limits struct {
	MemoryMax, MemoryHigh, PidsMax int64
	CPUWeight                      int
}

// DefaultCPUWeight is the kernel's cpu.weight of a new cgroup.
const DefaultCPUWeight = 100

// Group returns the cgroup of the app called name, made if it is not
// there yet (it may be, from an earlier generation of the app).
func (t *Tree) Group(name string) (*Group, error) {
	dir := filepath.Join(t.dir, appPrefix+name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating app %q's cgroup: %w", name, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening app %q's cgroup: %w", name, err)
	}
	return &Group{tree: t, dir: dir, fd: fd}, nil
}

// Dir is the group's directory.
func (g *Group) Dir() string { return g.dir }

// FD is the group's directory for syscall.SysProcAttr.CgroupFD.
func (g *Group) FD() int { return g.fd }

// Set writes l into the files of the controllers the tree enabled; a
// limit whose controller is not enabled is not written (Enable says
// which are missing). Every enabled file is written, "max" for no limit,
// so that a reload that drops a limit lifts it.
func (g *Group) Set(l Limits) error {
	var errs []error
	write := func(file, value string) {
		if err := writeFile(filepath.Join(g.dir, file), value); err != nil {
			errs = append(errs, fmt.Errorf("writing %s to %s: %w", value, file, err))
		}
	}
	if g.tree.Enabled(Memory) {
		write("memory.high", orMax(l.MemoryHigh))
		write("memory.max", orMax(l.MemoryMax))
	}
	if g.tree.Enabled(Pids) {
		write("pids.max", orMax(l.PidsMax))
	}
	if g.tree.Enabled(CPU) {
		w := l.CPUWeight
		if w == 0 {
			w = DefaultCPUWeight
		}
		write("cpu.weight", strconv.Itoa(w))
	}
	return errors.Join(errs...)
}

func orMax(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// OOMKills is the number of the group's processes the kernel's OOM
// killer has killed (memory.events' oom_kill). The kernel counts a kill
// before it sends the SIGKILL, so a worker reaped after one is counted.
// It fails without the memory controller.
func (g *Group) OOMKills() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(g.dir, "memory.events"))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("memory.events has no oom_kill line")
}

// Memory is the group's memory use in bytes (memory.current): its
// workers' memory, page cache they brought in and kernel memory charged
// to them. It fails without the memory controller.
func (g *Group) Memory() (int64, error) {
	b, err := os.ReadFile(filepath.Join(g.dir, "memory.current"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// Move moves the process pid, every thread of it, into the group: for
// where a process cannot be started in it (CanCloneInto).
func (g *Group) Move(pid int) error {
	if err := writeFile(filepath.Join(g.dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("moving process %d into %s: %w", pid, g.dir, err)
	}
	return nil
}

// Close closes the group's directory; its cgroup stays. A second Close
// does nothing (the descriptor's number may be another file's by then).
func (g *Group) Close() error {
	if g.fd < 0 {
		return nil
	}
	err := unix.Close(g.fd)
	g.fd = -1
	return err
}

// Remove closes the group and removes its cgroup, which must be empty:
// the kernel refuses (EBUSY) while a process is in it.
func (g *Group) Remove() error {
	g.Close()
	if err := unix.Rmdir(g.dir); err != nil {
		return fmt.Errorf("removing cgroup %s: %w", g.dir, err)
	}
	return nil
}
