package units

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// Limits are what the kernel holds an app's workers to, through a cgroup
// of the app's own below berth's delegated one (package cgroup): one app
// cannot starve the others of memory, CPU or processes. A zero field is
// no limit.
type Limits struct {
	// Memory is memory.max: past it the kernel reclaims, then OOM-kills
	// a worker of the app (the largest), which berth reports as such.
	Memory int64
	// MemoryHigh is memory.high: past it the kernel reclaims and slows
	// the app's allocations down. Off unless set: without swap an app's
	// own memory cannot be reclaimed, so throttling only turns a worker
	// that would be OOM-killed (a 502 at once, and a replacement) into
	// one that crawls until its request times out; page cache is
	// reclaimed at Memory anyway before any kill.
	MemoryHigh int64
	// CPUWeight is cpu.weight (1-10000; the kernel's default is 100):
	// the app's share of the CPU against the other apps and berth
	// itself when the CPU is contended. It is no cap.
	CPUWeight int
	// Tasks is pids.max: processes and threads of the app's workers,
	// with the threads and subprocesses the app starts.
	Tasks int64
	// At is where the configuration declares them (file:line), for
	// messages.
	At string
}

// Set reports whether the app declares any limit.
func (l Limits) Set() bool {
	return l.Memory != 0 || l.MemoryHigh != 0 || l.CPUWeight != 0 || l.Tasks != 0
}

// Bounds of the limits' values.
const (
	// MinMemoryLimit: a Python worker alone takes about 10 MiB.
	MinMemoryLimit = 8 << 20
	// MaxCPUWeight and MinCPUWeight are the kernel's bounds of cpu.weight.
	MinCPUWeight = 1
	MaxCPUWeight = 10000
	// MaxTasks is the kernel's PID_MAX_LIMIT.
	MaxTasks = 1 << 22
	// workerTasks is a worker's own threads beyond its request threads:
	// the main thread and the one that answers berth's flush asks.
	workerTasks = 2
)

// limitsSchema pulls an app's limits block out of its body.
var limitsSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "limits"}}}

type rawLimits struct {
	Memory     hcl.Expression `hcl:"memory,optional"`
	MemoryHigh hcl.Expression `hcl:"memory_high,optional"`
	CPUWeight  hcl.Expression `hcl:"cpu_weight,optional"`
	Tasks      hcl.Expression `hcl:"tasks,optional"`
}

// limits decodes an app's limits block, after its workers: tasks must
// leave room for every worker's threads.
func (d *decoder) limits(a *App, blocks hcl.Blocks) {
	if len(blocks) > 1 {
		d.errorf(&blocks[1].DefRange, "Duplicate limits block", "App %q has more than one limits block.", a.Name)
	}
	if len(blocks) == 0 {
		return
	}
	b := blocks[0]
	var raw rawLimits
	diags := gohcl.DecodeBody(b.Body, d.ctx, &raw)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return
	}
	l := Limits{
		Memory:     d.size(raw.Memory, 0, MinMemoryLimit, 1<<50),
		MemoryHigh: d.size(raw.MemoryHigh, 0, MinMemoryLimit, 1<<50),
		CPUWeight:  int(d.integer(raw.CPUWeight, 0, MinCPUWeight, MaxCPUWeight)),
		Tasks:      d.integer(raw.Tasks, 0, 1, MaxTasks),
		At:         fmt.Sprintf("%s:%d", b.DefRange.Filename, b.DefRange.Start.Line),
	}
	if l.Memory != 0 && l.MemoryHigh > l.Memory {
		rng := raw.MemoryHigh.Range()
		d.errorf(&rng, "memory_high above memory", "memory_high (%d bytes) is above memory (%d bytes): the kernel would kill before it throttles. Set it below memory, or leave it out.", l.MemoryHigh, l.Memory)
	}
	if need := int64(a.MaxWorkers * (a.Threads + workerTasks)); l.Tasks != 0 && l.Tasks < need {
		rng := raw.Tasks.Range()
		d.errorf(&rng, "tasks too low", "tasks = %d leaves app %q's workers no room: %d workers × (%d threads + %d of the worker's own) need %d, before any thread or subprocess the app starts.", l.Tasks, a.Name, a.MaxWorkers, a.Threads, workerTasks, need)
	}
	a.Limits = l
}

// LimitsNote is what `berth check` says of per-app limits: where they are
// enforced, which a configuration cannot show; "" when no app sets any.
func (c *Config) LimitsNote() string {
	for _, a := range c.Apps {
		if a.Limits.Set() {
			return "per-app limits are enforced where berth runs in a cgroup v2 subtree delegated to it (the units `berth units` renders: Delegate=yes) with the memory, cpu and pids controllers; elsewhere berth serves without them and logs why once"
		}
	}
	return ""
}
