package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOwnCgroup: the cgroup v2 path is the 0:: line of /proc/self/cgroup,
// in the unified and the hybrid layouts; anything else is no cgroup v2.
func TestOwnCgroup(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"0::/system.slice/berth@shop.service\n", "/system.slice/berth@shop.service", ""},
		{"9:name=systemd:/system.slice/x.service\n4:memory:/\n0::/system.slice/x.service\n", "/system.slice/x.service", ""},
		{"0::/\n", "/", ""},
		{"4:memory:/x\n1:cpu:/x\n", "", "no cgroup v2"},
		{"0::/..\n", "", "outside its cgroup namespace"},
		{"", "", "no cgroup v2"},
	} {
		got, err := ownCgroup([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// fakeCgroup makes a directory standing in for a cgroup v2 directory: the
// files the kernel would show, and systemd's delegation mark when
// delegated. It tests what berth decides and writes, not the kernel
// (TestRealCgroup does that, where berth is delegated one).
func fakeCgroup(t *testing.T, controllers string, delegated bool) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"cgroup.controllers": controllers + "\n", "cgroup.subtree_control": "", "cgroup.procs": ""}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if delegated {
		if err := unix.Setxattr(dir, "user.delegate", []byte("1"), 0); err != nil {
			t.Skipf("the fake cgroup needs user extended attributes in %s: %v", dir, err)
		}
	}
	return dir
}

// TestOpen: a cgroup is berth's only when systemd marked it delegated.
func TestOpen(t *testing.T) {
	if _, err := Open(fakeCgroup(t, "memory pids", false)); err == nil || !strings.Contains(err.Error(), "not delegated") {
		t.Errorf("an undelegated cgroup: %v, want not delegated", err)
	}
	tree, err := Open(fakeCgroup(t, "cpu memory pids", true))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{CPU, Memory, Pids} {
		if !tree.Available(c) || tree.Enabled(c) {
			t.Errorf("%s: available %v enabled %v; want available, not enabled", c, tree.Available(c), tree.Enabled(c))
		}
	}
}

// TestEnable: controllers available are enabled for the children, in one
// write; those not available are reported, and none is enabled twice.
func TestEnable(t *testing.T) {
	for _, tc := range []struct {
		name, available string
		enable          []string
		wantWrite       string
		wantMissing     []string
	}{
		{"all there", "cpu memory pids io", []string{Memory, Pids}, "+memory +pids", nil},
		{"hybrid: none", "", []string{Memory, Pids}, "", []string{Memory, Pids}},
		{"some", "pids", []string{Memory, Pids, CPU}, "+pids", []string{Memory, CPU}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fakeCgroup(t, tc.available, true)
			tree, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			missing, err := tree.Enable(tc.enable...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(missing, " ") != strings.Join(tc.wantMissing, " ") {
				t.Errorf("missing %v, want %v", missing, tc.wantMissing)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
			if string(b) != tc.wantWrite {
				t.Errorf("subtree_control %q, want %q", b, tc.wantWrite)
			}
			os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), nil, 0o644)
			tree.Enable(tc.enable...)
			if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control")); len(b) != 0 {
				t.Errorf("enabled again: %q", b)
			}
		})
	}
}

// TestSet: each limit goes to its file, "max" (or weight 100) when not
// set, and only the files of enabled controllers are written.
func TestSet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		enabled []string
		limits  Limits
		want    map[string]string // file -> content; "-" not written
	}{
		{"all", []string{Memory, Pids, CPU}, Limits{MemoryMax: 64 << 20, MemoryHigh: 60 << 20, PidsMax: 128, CPUWeight: 50},
			map[string]string{"memory.max": "67108864", "memory.high": "62914560", "pids.max": "128", "cpu.weight": "50"}},
		{"none set", []string{Memory, Pids, CPU}, Limits{},
			map[string]string{"memory.max": "max", "memory.high": "max", "pids.max": "max", "cpu.weight": "100"}},
		{"cpu not enabled", []string{Memory, Pids}, Limits{MemoryMax: 1 << 30, CPUWeight: 50},
			map[string]string{"memory.max": "1073741824", "memory.high": "max", "pids.max": "max", "cpu.weight": "-"}},
		{"no controllers", nil, Limits{MemoryMax: 1 << 30, PidsMax: 10},
			map[string]string{"memory.max": "-", "memory.high": "-", "pids.max": "-", "cpu.weight": "-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fakeCgroup(t, "cpu memory pids", true)
			tree, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			tree.Enable(tc.enabled...)
			g, err := tree.Group("shop")
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.Dir() != filepath.Join(dir, "app-shop") {
				t.Errorf("group at %s", g.Dir())
			}
			for file := range tc.want {
				os.WriteFile(filepath.Join(g.Dir(), file), []byte("-"), 0o644)
			}
			if err := g.Set(tc.limits); err != nil {
				t.Fatal(err)
			}
			for file, want := range tc.want {
				if b, _ := os.ReadFile(filepath.Join(g.Dir(), file)); string(b) != want {
					t.Errorf("%s: %q, want %q", file, b, want)
				}
			}
		})
	}
}

// TestOOMKills reads memory.events' oom_kill counter.
func TestOOMKills(t *testing.T) {
	dir := fakeCgroup(t, "memory", true)
	tree, _ := Open(dir)
	g, err := tree.Group("shop")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.OOMKills(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("without memory.events: %v", err)
	}
	os.WriteFile(filepath.Join(g.Dir(), "memory.events"), []byte("low 0\nhigh 3\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"), 0o644)
	if n, err := g.OOMKills(); n != 2 || err != nil {
		t.Errorf("oom_kill %d, %v; want 2", n, err)
	}
}
