package supervisor

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berthd/berth/cgroup"
	"github.com/berthd/berth/units"
)

// TestGenerationLimits: an app's cgroup holds the sum of its live
// generations' limits (a reload's new generation boots beside the old),
// and the app's own once the old has ended; one generation without a
// limit lifts it. The cgroup is a directory standing in for the kernel's:
// this tests what berth writes (package cgroup's TestRealCgroup, what the
// kernel makes of it).
func TestGenerationLimits(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cgroup.controllers", "cgroup.subtree_control", "cgroup.procs"} {
		os.WriteFile(filepath.Join(dir, f), []byte("memory pids cpu\n"), 0o644)
	}
	if err := unix.Setxattr(dir, "user.delegate", []byte("1"), 0); err != nil {
		t.Skipf("the stand-in cgroup needs user extended attributes: %v", err)
	}
	tree, err := cgroup.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree.Enable(cgroup.Memory, cgroup.Pids)
	app := filepath.Join(dir, "app-shop")
	os.Mkdir(app, 0o755)
	for _, f := range []string{"memory.max", "memory.high", "pids.max", "cpu.weight", "cgroup.procs"} {
		os.WriteFile(filepath.Join(app, f), nil, 0o644)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cgroups.Store(&Cgroups{tree: tree, log: log, apps: map[string]*appGroup{}, said: map[string]bool{}})
	defer cgroups.Store(nil)

	pool := func(gen int, l units.Limits) *Pool {
		return NewPool(units.App{Name: "shop", Limits: l}, gen, log)
	}
	read := func(f string) string {
		b, _ := os.ReadFile(filepath.Join(app, f))
		return string(b)
	}
	g1 := pool(1, units.Limits{Memory: 64 << 20, Tasks: 10, CPUWeight: 50})
	g2 := pool(2, units.Limits{Memory: 96 << 20, Tasks: 20})
	g3 := pool(3, units.Limits{Tasks: 20})
	for _, step := range []struct {
		what              string
		do                func()
		memory, pids, cpu string
	}{
		{"generation 1", func() { begin(g1) }, "67108864", "10", "50"},
		{"a reload boots generation 2 beside it", func() { begin(g2) }, "167772160", "30", "100"},
		{"generation 1 drained", func() { end(g1) }, "100663296", "20", "100"},
		{"generation 3 has no memory limit", func() { begin(g3) }, "max", "40", "100"},
		{"generation 2 drained", func() { end(g2) }, "max", "20", "100"},
	} {
		step.do()
		if m, p, c := read("memory.max"), read("pids.max"), read("cpu.weight"); m != step.memory || p != step.pids || c != step.cpu {
			t.Errorf("%s: memory.max %s pids.max %s cpu.weight %s; want %s %s %s", step.what, m, p, c, step.memory, step.pids, step.cpu)
		}
		if groupOf("shop") == nil {
			t.Errorf("%s: no group", step.what)
		}
	}
	end(g3)
	if groupOf("shop") != nil {
		t.Errorf("the group outlived the app's last generation")
	}
}
