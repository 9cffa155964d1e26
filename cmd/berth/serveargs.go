package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// serveArgs is what `berth serve` was given. Its flags follow Gunicorn's
// names, and like Gunicorn's they may come before or after the module or
// file: people arrive typing `gunicorn -w 4 app:app`.
type serveArgs struct {
	target string // CONFIG, or MODULE[:CALLABLE] (quick.go)

	// App flags: they describe the app served without a file, and are
	// refused beside a file, which says all of these itself.
	binds              []string
	workers, threads   int
	python, chdir      string
	pythonPath         []string
	timeout, graceful  time.Duration
	maxRequests        int
	maxRequestsJitter  int
	env                []string // NAME=VALUE
	printConfig        bool
	appFlags           []string // the app flags given, as typed, for errors
	logLevel, control  string   // as cmdServe takes them
	reload, configFlag bool
}

// serveFlag is one flag of `berth serve`: its names, whether it takes a
// value, and what it sets.
type serveFlag struct {
	names []string
	// arg names the flag's value ("" for a switch, which has none).
	arg, help string
	// app marks a flag that describes the app (refused with a file).
	app bool
	// set takes the value (ignored by a switch, which has no value).
	set func(a *serveArgs, v string) error
}

// serveFlags are the flags of `berth serve`.
var serveFlags = []serveFlag{
	{[]string{"-b", "--bind"}, "ADDR", "listen on ADDR: HOST:PORT or unix:PATH; repeatable (default 127.0.0.1:8000)", true,
		func(a *serveArgs, v string) error { a.binds = append(a.binds, v); return nil }},
	{[]string{"-w", "--workers"}, "N", "worker processes (default: one per core)", true,
		func(a *serveArgs, v string) error { return count(&a.workers, v, 1, 1024) }},
	{[]string{"--threads"}, "N", "threads per worker (default 1)", true,
		func(a *serveArgs, v string) error { return count(&a.threads, v, 1, 256) }},
	{[]string{"--python"}, "PATH", "the interpreter (default: $VIRTUAL_ENV/bin/python in an active venv, else python3 on PATH)", true,
		func(a *serveArgs, v string) error { a.python = v; return nil }},
	{[]string{"--chdir"}, "DIR", "the workers' directory, where the module is imported from (default: the current one)", true,
		func(a *serveArgs, v string) error { a.chdir = v; return nil }},
	{[]string{"--pythonpath"}, "DIRS", "comma-separated directories put first on sys.path", true,
		func(a *serveArgs, v string) error {
			a.pythonPath = append(a.pythonPath, strings.Split(v, ",")...)
			return nil
		}},
	{[]string{"-t", "--timeout"}, "SECONDS", "a request's longest time in a worker (504 past it; default 30; \"1m\" works too)", true,
		func(a *serveArgs, v string) error { return parseSeconds(&a.timeout, v) }},
	{[]string{"--graceful-timeout"}, "SECONDS", "how long stopping and reloading wait for requests in flight (default 30)", true,
		func(a *serveArgs, v string) error { return parseSeconds(&a.graceful, v) }},
	{[]string{"--max-requests"}, "N", "recycle a worker after N requests (default 0: never)", true,
		func(a *serveArgs, v string) error { return count(&a.maxRequests, v, 0, 1<<40) }},
	{[]string{"--max-requests-jitter"}, "N", "add up to N to each worker's max-requests", true,
		func(a *serveArgs, v string) error { return count(&a.maxRequestsJitter, v, 0, 1<<40) }},
	{[]string{"-e", "--env"}, "NAME=VALUE", "set a variable in the workers' environment; repeatable", true,
		func(a *serveArgs, v string) error { return envPair(a, v) }},
	{[]string{"--print-config"}, "", "print the configuration file these flags amount to, and exit", true,
		func(a *serveArgs, _ string) error { a.printConfig = true; return nil }},
	{[]string{"-c", "--config"}, "FILE", "serve the configuration FILE (as `berth serve FILE`)", false,
		func(a *serveArgs, v string) error { a.configFlag = true; return a.setTarget(v) }},
	{[]string{"--reload"}, "", "reload when the apps' .py files or the configuration change: for development only", false,
		func(a *serveArgs, _ string) error { a.reload = true; return nil }},
	{[]string{"--log-level"}, "LEVEL", "debug, info, warn or error (default: the file's log block, else info)", false,
		func(a *serveArgs, v string) error { a.logLevel = v; return nil }},
	{[]string{"--control"}, "PATH", "the control socket (default: derived from the file's path)", false,
		func(a *serveArgs, v string) error { a.control = v; return nil }},
}

// isSwitch reports whether f takes no value.
func (f serveFlag) isSwitch() bool { return f.arg == "" }

// noEquivalent are Gunicorn's flags that berth does not take, each with
// the reason, so that a command copied from a Gunicorn setup fails saying
// what to do instead of "unknown flag".
var noEquivalent = []struct {
	names  []string
	reason string
}{
	{[]string{"-k", "--worker-class"}, "berth's workers are processes that run the app on --threads threads; gthread is --threads N, and there is no gevent or eventlet worker (the Go front already holds slow and idle clients)"},
	{[]string{"-D", "--daemon"}, "berth stays in the foreground: run it under systemd (berth units writes the units)"},
	{[]string{"-p", "--pid"}, "systemd tracks berth's pid, and berth status shows it"},
	{[]string{"-u", "--user", "-g", "--group"}, "run berth as the user in systemd's User= and Group= (berth units), not with a switch of its own"},
	{[]string{"--preload"}, "each worker imports the app itself (there is no master process to fork from); berth check --import shows an app's import"},
	{[]string{"--worker-connections"}, "it is for async workers, which berth has not: the front holds the connections"},
	{[]string{"--access-logfile", "--error-logfile", "--log-file"}, "berth logs to the journal or stderr, access records included (log { access = true })"},
	{[]string{"--certfile", "--keyfile"}, "berth speaks plain HTTP: TLS belongs to nginx or a load balancer in front (berth nginx writes the nginx site)"},
	{[]string{"--keep-alive"}, "set idle_timeout in a listener block of a configuration file (--print-config writes one)"},
	{[]string{"--forwarded-allow-ips"}, "set trusted_proxies in a listener block of a configuration file (loopback and Unix peers are trusted already)"},
	{[]string{"--limit-request-line", "--limit-request-field_size"}, "set max_uri_bytes and max_header_bytes in a listener block of a configuration file"},
}

// reasonFor is why berth has no flag like Gunicorn's flag.
func reasonFor(flag string) (string, bool) {
	for _, n := range noEquivalent {
		for _, name := range n.names {
			if name == flag {
				return n.reason, true
			}
		}
	}
	return "", false
}

// errHelp is --help: the usage, on stdout, and success.
var errHelp = errors.New("help")

// parseServeArgs reads `berth serve`'s arguments in any order: flags
// before and after the target, --name=value and --name value, -wN and
// -w N, Go-style -name for the long ones, and "--" before a target that
// starts with "-".
func parseServeArgs(args []string) (*serveArgs, error) {
	a := &serveArgs{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "-h" || arg == "--help" || arg == "-help" {
			return nil, errHelp
		}
		if arg == "--" {
			for _, t := range args[i+1:] {
				if err := a.setTarget(t); err != nil {
					return nil, err
				}
			}
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if err := a.setTarget(arg); err != nil {
				return nil, err
			}
			continue
		}
		f, name, value, hasValue := lookupFlag(arg)
		if f == nil {
			if r, ok := reasonFor(name); ok {
				return nil, fmt.Errorf("%s has no equivalent in berth: %s", name, r)
			}
			return nil, fmt.Errorf("unknown flag %s", name)
		}
		if f.isSwitch() && hasValue {
			return nil, fmt.Errorf("%s takes no value", name)
		}
		if !f.isSwitch() && !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("%s needs a value: %s", name, f.arg)
			}
			i++
			value = args[i]
		}
		if err := f.set(a, value); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if f.app {
			a.appFlags = append(a.appFlags, name)
		}
	}
	if a.target == "" {
		return nil, fmt.Errorf("serve what? Give a module (berth serve hello:app) or a configuration file (berth serve site.hcl)")
	}
	return a, nil
}

// lookupFlag finds the flag arg names. name is the flag as written,
// without a value; value and hasValue are a value attached to it
// (--bind=ADDR, -bADDR).
func lookupFlag(arg string) (f *serveFlag, name, value string, hasValue bool) {
	name = arg
	if k, v, ok := strings.Cut(arg, "="); ok {
		name, value, hasValue = k, v, true
	}
	long := name
	if !strings.HasPrefix(long, "--") && len(long) > 2 {
		long = "-" + long // Go's flag package spells long flags -name
	}
	for i := range serveFlags {
		for _, n := range serveFlags[i].names {
			if n == name || (n == long && len(n) > 2) {
				return &serveFlags[i], name, value, hasValue
			}
		}
	}
	// A short flag with its value attached: -w4, -b127.0.0.1:8000.
	if !strings.HasPrefix(arg, "--") && len(arg) > 2 {
		for i := range serveFlags {
			for _, n := range serveFlags[i].names {
				if len(n) == 2 && strings.HasPrefix(arg, n) && !serveFlags[i].isSwitch() {
					return &serveFlags[i], n, arg[2:], true
				}
			}
		}
	}
	return nil, name, "", false
}

func (a *serveArgs) setTarget(t string) error {
	if a.target != "" && a.target != t {
		return fmt.Errorf("serve one thing: got both %q and %q", a.target, t)
	}
	a.target = t
	return nil
}

// count parses a whole number from min to max.
func count(dst *int, v string, min, max int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return fmt.Errorf("want a whole number from %d to %d; got %q", min, max, v)
	}
	*dst = n
	return nil
}

// parseSeconds parses Gunicorn's whole seconds ("30") or a Go duration
// ("1m30s"). Zero is refused: Gunicorn's --timeout 0 means none, and
// berth always bounds a request.
func parseSeconds(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive number of seconds, such as 30, or a duration such as \"1m30s\"; got %q", v)
	}
	*dst = d
	return nil
}

func envPair(a *serveArgs, v string) error {
	name, _, ok := strings.Cut(v, "=")
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("want NAME=VALUE; got %q", v)
	}
	a.env = append(a.env, v)
	return nil
}

// serveUsage lists the flags of `berth serve`.
func serveUsage() string {
	var b strings.Builder
	b.WriteString("usage: berth serve [FLAGS] MODULE[:CALLABLE]   serve a WSGI app, no file needed\n")
	b.WriteString("       berth serve [--reload] [--log-level LEVEL] [--control PATH] CONFIG\n\nflags:\n")
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, f := range serveFlags {
		fmt.Fprintf(tw, "  %s %s\t%s\n", strings.Join(f.names, ", "), f.arg, f.help)
	}
	tw.Flush()
	return b.String()
}
