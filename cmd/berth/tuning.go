package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
)

// tuneRuntime sets the Go runtime for a front that shares the machine
// with its Python workers. GOGC and GOMAXPROCS in the environment win.
func tuneRuntime() {
	if os.Getenv("GOGC") == "" {
		// berth's live heap is mostly per-connection buffers; the default
		// GOGC=100 lets the heap reach twice that. At 1,000 keep-alive
		// connections (bench/ hello-c1000) GOGC=50 took berth's RSS from
		// 65 MiB to 51 MiB at the same throughput, and hello c50 lost
		// nothing.
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// The front shares the machine with its Python workers (one per
		// core by default), so its Go code runs on half the CPUs berth
		// may use, at least one. A P more than the front needs spins and
		// wakes threads each time it runs dry, and that CPU is the
		// workers'. On 2 cores (bench/, 8 interleaved rounds of hello c50)
		// one P instead of two: median 24.5k -> 28.2k req/s, berth's CPU
		// 41 -> 31 us per request; Flask, 256 KiB and c1000 3-5% faster.
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/2))
	}
}

// startProfiles starts the profiles bench/ asks for in the environment
// and returns what writes them at exit: a CPU profile of the whole run
// (BERTH_CPUPROFILE), and where the run's allocations came from, every
// one sampled (BERTH_MEMPROFILE; each is work for the GC, whose cycles
// show in the latency tail). A profile that cannot start is reported on
// stderr and berth serves without it.
func startProfiles(stderr io.Writer) (stop func()) {
	var stops []func()
	if prof := os.Getenv("BERTH_CPUPROFILE"); prof != "" {
		if stop, err := startProfile(prof); err != nil {
			fmt.Fprintf(stderr, "berth: BERTH_CPUPROFILE: %v\n", err)
		} else {
			stops = append(stops, stop)
		}
	}
	if prof := os.Getenv("BERTH_MEMPROFILE"); prof != "" {
		runtime.MemProfileRate = 1
		stops = append(stops, func() { writeMemProfile(prof, stderr) })
	}
	return func() {
		// Last started, first written: the allocations profile, then
		// the CPU profile.
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
}

// writeMemProfile writes the allocations profile to path, after a
// collection so that it is current (the profile is as of the last one).
// It misses what was allocated before BERTH_MEMPROFILE took effect.
func writeMemProfile(path string, stderr io.Writer) {
	runtime.GC()
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "berth: BERTH_MEMPROFILE: %v\n", err)
	}
}

// startProfile writes a CPU profile to path until the returned stop.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
