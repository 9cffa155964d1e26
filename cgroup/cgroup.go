// Package cgroup is the cgroup v2 subtree that systemd delegates to berth
// (Delegate=yes in its units): berth moves itself into a leaf of it and
// gives each app a cgroup of its own, in which the kernel holds the app's
// workers to its limits (memory.max, memory.high, cpu.weight, pids.max)
// and counts the workers it OOM-kills.
//
// The layout follows systemd's delegation rules (systemd.io's "Control
// Group APIs and Delegation"): a cgroup with children holds no processes,
// so berth runs in Supervisor and each app in "app-NAME" beside it, names
// that cannot clash with the kernel's files; berth touches nothing above
// the cgroup it was started in, and only when systemd marked that cgroup
// delegated (the user.delegate attribute, systemd 251 and later).
//
// It is a few files written rather than containerd's or runc's cgroup
// libraries: those manage whole container cgroups (devices through eBPF,
// freezing, systemd's D-Bus) and bring cilium/ebpf, logrus and the OCI
// runtime spec with them; berth needs four files, two counters and one
// move.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Supervisor is the leaf berth moves itself into.
const Supervisor = "supervisor"

// appPrefix starts an app's cgroup name: the kernel's files are named
// "cgroup.*", "memory.*" and the like, so no app can clash with one.
const appPrefix = "app-"

// Controllers berth uses.
const (
	Memory = "memory"
	CPU    = "cpu"
	Pids   = "pids"
)

// Tree is the cgroup delegated to berth.
type Tree struct {
	dir string
	// available is cgroup.controllers: what the parent lets this subtree
	// use (none in the hybrid hierarchy, whose controllers are all on
	// cgroup v1).
	available []string

	mu      sync.Mutex // guards enabled and cgroup.subtree_control
	enabled []string
}

// Find returns the cgroup v2 subtree systemd delegated to this process,
// or an error saying why there is none, in a sentence for the log.
func Find() (*Tree, error) {
	mount, err := v2Mount()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("reading berth's cgroup: %w", err)
	}
	own, err := ownCgroup(b)
	if err != nil {
		return nil, err
	}
	return Open(filepath.Join(mount, own))
}

// v2Mount is where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup
// (unified), else /sys/fs/cgroup/unified (systemd's hybrid mode, whose
// controllers are on cgroup v1: berth can group its apps there, and
// limit none).
func v2Mount() (string, error) {
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir, nil
		}
	}
	return "", errors.New("this machine has no cgroup v2 hierarchy (cgroup v1 only)")
}

// ownCgroup is the cgroup v2 path in the contents of /proc/self/cgroup:
// the line "0::PATH".
func ownCgroup(procSelf []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(procSelf))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
				return "", fmt.Errorf("berth's cgroup %q is outside its cgroup namespace", p)
			}
			return p, nil
		}
	}
	return "", errors.New("berth is in no cgroup v2 (no 0:: line in /proc/self/cgroup)")
}

// CanCloneInto reports whether a process can be started straight into a
// cgroup (clone3 with CLONE_INTO_CGROUP, Linux 5.7). systemd refuses
// clone3 with ENOSYS to a service with RestrictNamespaces= (its seccomp
// filter cannot see clone3's flags), as the units berth renders have; the
// probe passes clone3 no arguments, which the kernel refuses with EINVAL,
// so no process is made.
func CanCloneInto() bool {
	_, _, errno := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	return errno != unix.ENOSYS
}

// Open returns the tree at dir, a cgroup v2 directory, if systemd
// delegated it (its user.delegate or trusted.delegate attribute is "1")
// and this process may write it.
func Open(dir string) (*Tree, error) {
	if !delegated(dir) {
		return nil, fmt.Errorf("berth's cgroup %s is not delegated to it: run it under systemd with Delegate=yes (as the units `berth units` renders and the packaged berth@.service do)", dir)
	}
	for _, f := range []string{"", "cgroup.procs", "cgroup.subtree_control"} {
		if err := unix.Access(filepath.Join(dir, f), unix.W_OK); err != nil {
			return nil, fmt.Errorf("berth's delegated cgroup %s is not writable by uid %d: %w", filepath.Join(dir, f), os.Geteuid(), err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("reading the controllers of berth's cgroup: %w", err)
	}
	t := &Tree{dir: dir, available: strings.Fields(string(b))}
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control")); err == nil {
		t.enabled = strings.Fields(string(b))
	}
	return t, nil
}

// delegated reports whether systemd marked dir as delegated. user.delegate
// is readable by the service's own user; trusted.delegate only by root.
func delegated(dir string) bool {
	for _, attr := range []string{"user.delegate", "trusted.delegate"} {
		buf := make([]byte, 8)
		if n, err := unix.Getxattr(dir, attr, buf); err == nil && string(buf[:n]) == "1" {
			return true
		}
	}
	return false
}

// Dir is the delegated cgroup's directory.
func (t *Tree) Dir() string { return t.dir }

// Available reports whether controller c may be enabled for the apps.
func (t *Tree) Available(c string) bool { return slices.Contains(t.available, c) }

// Enabled reports whether controller c is enabled for the apps' cgroups.
func (t *Tree) Enabled(c string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Contains(t.enabled, c)
}

// Enter moves the calling process, every thread of it, into the
// Supervisor leaf: the delegated cgroup becomes an inner node, which may
// then hold no process (and so enable controllers for its children).
// Its children (workers started before) stay where they are.
func (t *Tree) Enter() error {
	leaf := filepath.Join(t.dir, Supervisor)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating berth's cgroup: %w", err)
	}
	if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
		return fmt.Errorf("moving berth into %s: %w", leaf, err)
	}
	return nil
}

// Enable turns the controllers cs on for the apps' cgroups, those of them
// that are available; it returns those that are not (nil: all are on).
// The delegated cgroup must hold no process (Enter).
func (t *Tree) Enable(cs ...string) (missing []string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var add []string
	for _, c := range cs {
		switch {
		case slices.Contains(t.enabled, c):
		case !slices.Contains(t.available, c):
			missing = append(missing, c)
		default:
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return missing, nil
	}
	if err := writeFile(filepath.Join(t.dir, "cgroup.subtree_control"), strings.Join(add, " ")); err != nil {
		return missing, fmt.Errorf("enabling %s in %s: %w", strings.Join(add, " "), t.dir, err)
	}
	for _, c := range add {
		t.enabled = append(t.enabled, c[1:])
	}
	return missing, nil
}

// writeFile writes one value to a cgroup file, which takes it in one
// write(2) or refuses it (the error is the kernel's reason).
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Machine says why this machine cannot enforce per-app limits, or nil:
// they need the unified cgroup v2 hierarchy with the memory, pids and
// cpu controllers. (Whether berth's own cgroup is delegated only berth
// under systemd can tell: Find.)
func Machine() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return errors.New("its controllers are on cgroup v1 (a legacy or hybrid hierarchy; systemd.unified_cgroup_hierarchy=1 on the kernel's command line makes it cgroup v2)")
	}
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return fmt.Errorf("reading its cgroup controllers: %w", err)
	}
	have := strings.Fields(string(b))
	var missing []string
	for _, c := range []string{Memory, Pids, CPU} {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("its cgroup v2 lacks the %s controller(s)", strings.Join(missing, ", "))
	}
	return nil
}
