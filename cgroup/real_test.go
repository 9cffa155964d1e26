package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRealCgroup runs against the kernel, in the cgroup systemd delegated
// to the test: it moves the test process into the supervisor leaf, so it
// is meant to run as a service of its own with Delegate=yes (the systemd
// test TestLimitsSystemd runs it so, in its container). Elsewhere it
// skips, saying why.
func TestRealCgroup(t *testing.T) {
	tree, err := Find()
	if err != nil {
		t.Skipf("no delegated cgroup: %v", err)
	}
	if err := tree.Enter(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("/proc/self/cgroup")
	if !strings.Contains(string(b), "/"+Supervisor+"\n") {
		t.Fatalf("after Enter, /proc/self/cgroup says:\n%s", b)
	}
	missing, err := tree.Enable(Memory, Pids, CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("controllers available %q, missing %q", tree.available, missing)
	g, err := tree.Group("real")
	if err != nil {
		t.Fatal(err)
	}
	limits := Limits{MemoryMax: 32 << 20, MemoryHigh: 30 << 20, PidsMax: 64, CPUWeight: 50}
	if err := g.Set(limits); err != nil {
		t.Fatal(err)
	}
	t.Run("files", func(t *testing.T) { checkFiles(t, tree, g, limits) })
	t.Run("clone into", func(t *testing.T) {
		if !CanCloneInto() {
			t.Skip("clone3 is refused here (ENOSYS)")
		}
		checkCloneInto(t, g)
	})
	t.Run("move", func(t *testing.T) { checkMove(t, g) })
	t.Run("oom", func(t *testing.T) { checkOOM(t, g) })
	if err := g.Remove(); err != nil {
		t.Errorf("removing the empty group: %v", err)
	}
	if _, err := os.Stat(g.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the group is still there: %v", err)
	}
}

// checkFiles: the kernel holds the values written, for the controllers
// it has.
func checkFiles(t *testing.T, tree *Tree, g *Group, l Limits) {
	want := map[string]string{}
	if tree.Enabled(Memory) {
		want["memory.max"], want["memory.high"] = fmt.Sprint(l.MemoryMax), fmt.Sprint(l.MemoryHigh)
	}
	if tree.Enabled(Pids) {
		want["pids.max"] = fmt.Sprint(l.PidsMax)
	}
	if tree.Enabled(CPU) {
		want["cpu.weight"] = fmt.Sprint(l.CPUWeight)
	}
	if len(want) == 0 {
		t.Skip("the delegated cgroup has none of the memory, pids and cpu controllers (a hybrid hierarchy: they are on cgroup v1)")
	}
	for file, v := range want {
		b, err := os.ReadFile(filepath.Join(g.Dir(), file))
		if err != nil || strings.TrimSpace(string(b)) != v {
			t.Errorf("%s: %q, %v; want %s", file, b, err, v)
		}
	}
}

// checkCloneInto: a process started with the group's fd is in the group
// from its first instruction, and the group cannot be removed while it
// is there.
func checkCloneInto(t *testing.T, g *Group) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if !strings.Contains(string(b), "/"+appPrefix+"real\n") {
		t.Errorf("the child's cgroup:\n%s", b)
	}
	if err := unix.Rmdir(g.Dir()); !errors.Is(err, unix.EBUSY) {
		t.Errorf("rmdir with a process in it: %v, want EBUSY", err)
	}
}

// checkOOM: a process that outgrows memory.max is killed by the kernel,
// and memory.events counts it.
func checkOOM(t *testing.T, g *Group) {
	before, err := g.OOMKills()
	if err != nil {
		t.Skipf("no memory controller in the delegated cgroup: %v", err)
	}
	cmd := exec.Command("python3", "-c", "b = b'x' * (128 << 20)")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}
	start := time.Now()
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("python allocating 128 MiB under a 32 MiB limit: %v, want killed", err)
	}
	after, err := g.OOMKills()
	if err != nil || after != before+1 {
		t.Errorf("oom_kill went from %d to %d (%v), want one more", before, after, err)
	}
	t.Logf("OOM-killed %s after its start", time.Since(start).Round(time.Millisecond))
}

// checkMove: a process started elsewhere is moved into the group.
func checkMove(t *testing.T, g *Group) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if err := g.Move(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if !strings.Contains(string(b), "/"+appPrefix+"real\n") {
		t.Errorf("the moved process's cgroup:\n%s", b)
	}
}
