package main

import (
	"os"
	"strings"
	"syscall"
)

// The Go runtime's monitor thread (sysmon) sleeps deeply whenever every P
// is idle, and the next goroutine to enter a system call wakes it through a
// futex, after which it polls every 20 µs until it finds every P idle again
// and sleeps once more (runtime/proc.go: sysmon, entersyscallWakeSysmon).
// A front that hands each request between nginx and a worker is idle
// between requests many thousand times a second, so it paid that cycle —
// a futex wake, two thread switches and a nanosleep — about once a
// request: behind nginx, 10% of berth's profile was that futex alone, and
// berth's process took 23–27 µs a request against 14–19 with the monitor
// kept awake (bench/cpu.py nginx-hello, four runs; bench/RESULTS.md,
// "Keeping the runtime's monitor awake").
//
// The runtime keeps its monitor out of deep sleep only while schedtrace is
// set, and reads that setting from GODEBUG once, at start; so `berth
// serve` starts itself again with it set (execve: same process, same
// descriptors, so systemd's sockets and notify socket are untouched), to a
// period long enough never to print (2^31-1 ms, 24.8 days: a host up
// longer than that gets one scheduler line on stderr at start and then one
// every 24.8 days). The monitor then sleeps at most 10 ms at a time, as it
// does on any busy Go program. The GODEBUG berth was given is restored
// once running, so that the workers and anything they start inherit the
// environment berth was started with.
const (
	sysmonSetting = "schedtrace=2147483647"
	// sysmonMark carries the GODEBUG berth was started with across its
	// own execve: "+" and the value, or "-" when it had none. Set, it
	// says the execve happened.
	sysmonMark = "BERTH_GODEBUG_BEFORE"
)

// awakeSysmon starts berth again with the runtime's monitor kept awake
// (see above) unless it already is, or GODEBUG sets schedtrace itself. It
// returns only when the execve fails, and then berth runs as it was.
func awakeSysmon() {
	if before, ok := os.LookupEnv(sysmonMark); ok {
		restoreGodebug(before)
		return
	}
	godebug, set := os.LookupEnv("GODEBUG")
	if strings.Contains(godebug, "schedtrace=") {
		return
	}
	mark, value := "-", sysmonSetting
	if set {
		mark = "+" + godebug
		if godebug != "" {
			value = godebug + "," + sysmonSetting
		}
	}
	env := []string{sysmonMark + "=" + mark, "GODEBUG=" + value}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	// Only an error returns: berth then serves with the runtime as is.
	_ = syscall.Exec("/proc/self/exe", os.Args, env)
}

// restoreGodebug puts GODEBUG back as berth was started with it. The
// runtime read schedtrace at start and keeps it: only the settings it can
// change while running follow the environment.
func restoreGodebug(mark string) {
	os.Unsetenv(sysmonMark)
	if value, ok := strings.CutPrefix(mark, "+"); ok {
		os.Setenv("GODEBUG", value)
	} else {
		os.Unsetenv("GODEBUG")
	}
}
