package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/berthd/berth/control"
	"github.com/berthd/berth/units"
)

// defaultBind is where `berth serve MODULE` listens without -b: a
// laptop's loopback, Gunicorn's port.
const defaultBind = "127.0.0.1:8000"

// serveCommand is `berth serve`. Given a configuration file it serves
// it; given a module (`berth serve hello:app`, the way Gunicorn is
// started) it writes the configuration the flags amount to and serves
// that, so that both paths are one: reload, status and --print-config
// see a real file.
func serveCommand(args []string, stdout, stderr io.Writer) int {
	a, err := parseServeArgs(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, serveUsage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "berth serve: %v (berth serve --help lists the flags)\n", err)
		return 2
	}
	if m, ok := strings.CutSuffix(a.target, ".py"); ok && !a.configFlag {
		fmt.Fprintf(stderr, "berth serve: %s is a Python file; berth serves a module and its callable, as Gunicorn does: berth serve %s:app\n", a.target, filepath.Base(m))
		return 2
	}
	if a.configFlag || !isModule(a.target) {
		if len(a.appFlags) > 0 {
			fmt.Fprintf(stderr, "berth serve: %s: these flags describe an app served without a file; %s is a configuration file, which sets all of that itself (berth serve MODULE --print-config writes one from flags)\n", strings.Join(a.appFlags, ", "), a.target)
			return 2
		}
		return cmdServe(a.passOn(a.target), stderr)
	}
	src, err := quickConfig(a, append([]string{"berth", "serve"}, args...))
	if err != nil {
		fmt.Fprintf(stderr, "berth serve: %v\n", err)
		return 2
	}
	if a.printConfig {
		_, _ = stdout.Write(src)
		return 0
	}
	path, err := writeQuickConfig(src)
	if err != nil {
		fmt.Fprintf(stderr, "berth serve: %v\n", err)
		return 1
	}
	defer os.Remove(path)
	return cmdServe(a.passOn(path), stderr)
}

// passOn is cmdServe's arguments for serving path.
func (a *serveArgs) passOn(path string) []string {
	var out []string
	if a.logLevel != "" {
		out = append(out, "--log-level", a.logLevel)
	}
	if a.control != "" {
		out = append(out, "--control", a.control)
	}
	if a.reload {
		out = append(out, "--reload")
	}
	return append(out, "--", path)
}

// isModule tells a module from a configuration file: an existing file, a
// path with a "/" or a name ending in .hcl is a file (so a mistyped file
// name says "no such file", not "no module"); anything else spelled like
// a module (hello, hello:app, shop.wsgi:application, app:create_app())
// is a module.
func isModule(target string) bool {
	if fi, err := os.Stat(target); err == nil && !fi.IsDir() {
		return false
	}
	if strings.Contains(target, "/") || strings.HasSuffix(target, ".hcl") {
		return false
	}
	return units.ValidModule(target)
}

// quickConfig is the configuration file that a's flags amount to: what
// --print-config prints and what is served. Paths in it are absolute, so
// that it means the same wherever it is put. It is validated here, so a
// bad flag value is reported before anything starts.
func quickConfig(a *serveArgs, argv []string) ([]byte, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("finding the current directory: %w", err)
	}
	python, err := defaultPython(a.python)
	if err != nil {
		return nil, err
	}
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	binds := a.binds
	if len(binds) == 0 {
		binds = []string{defaultBind}
	}
	var names []string
	for i, b := range binds {
		name := "http"
		if i > 0 {
			name = fmt.Sprintf("http-%d", i+1)
		}
		names = append(names, name)
		l := body.AppendNewBlock("listener", []string{name}).Body()
		l.SetAttributeValue("address", cty.StringVal(absBind(b, wd)))
		body.AppendNewline()
	}
	app := body.AppendNewBlock("app", []string{appName(a.target)}).Body()
	if len(names) > 1 {
		app.SetAttributeValue("listener", cty.ListVal(strs(names)))
	}
	app.SetAttributeValue("module", cty.StringVal(a.target))
	app.SetAttributeValue("python", cty.StringVal(python))
	app.SetAttributeValue("chdir", cty.StringVal(absFrom(wd, or(a.chdir, "."))))
	if len(a.pythonPath) > 0 {
		var ps []string
		for _, p := range a.pythonPath {
			ps = append(ps, absFrom(wd, p))
		}
		app.SetAttributeValue("pythonpath", cty.ListVal(strs(ps)))
	}
	setQuickNumbers(app, a)
	if len(a.env) > 0 {
		app.SetAttributeValue("env", envValue(a.env))
	}
	head := "# Written by: " + strings.Join(quoteArgs(argv), " ") + "\n# Serve it with: berth serve FILE\n\n"
	src := append([]byte(head), bytes.TrimRight(f.Bytes(), "\n")...)
	src = append(src, '\n')
	if _, err := units.Parse("berth-serve-flags.hcl", src); err != nil {
		return nil, fmt.Errorf("the flags make a configuration that is not valid:\n%v\n\nthe configuration:\n%s", err, src)
	}
	return src, nil
}

// setQuickNumbers writes the app's sizes and times: each always, so that
// the printed file shows the values in force and where to change them.
func setQuickNumbers(app *hclwrite.Body, a *serveArgs) {
	workers := a.workers
	if workers == 0 {
		workers = units.DefaultWorkers()
	}
	app.SetAttributeValue("workers", cty.NumberIntVal(int64(workers)))
	app.SetAttributeValue("threads", cty.NumberIntVal(int64(max(a.threads, 1))))
	app.SetAttributeValue("timeout", cty.StringVal(durationOr(a.timeout, units.DefaultTimeout)))
	app.SetAttributeValue("graceful_timeout", cty.StringVal(durationOr(a.graceful, units.DefaultGraceful)))
	if a.maxRequests > 0 {
		app.SetAttributeValue("max_requests", cty.NumberIntVal(int64(a.maxRequests)))
	}
	if a.maxRequestsJitter > 0 {
		app.SetAttributeValue("max_requests_jitter", cty.NumberIntVal(int64(a.maxRequestsJitter)))
	}
}

// defaultPython is --python, else the active virtualenv's interpreter
// (what `python` means in that shell even when PATH was not changed),
// else python3 on PATH; resolved to a path, so that the printed file
// names the interpreter it was tried with.
func defaultPython(flag string) (string, error) {
	if flag != "" {
		if strings.Contains(flag, "/") {
			return filepath.Abs(flag)
		}
		p, err := exec.LookPath(flag)
		if err != nil {
			return "", fmt.Errorf("--python %s: %w", flag, err)
		}
		return filepath.Abs(p)
	}
	if venv := os.Getenv("VIRTUAL_ENV"); venv != "" {
		p := filepath.Join(venv, "bin", "python")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("VIRTUAL_ENV is %s, but it has no bin/python: activate another venv or give --python", venv)
	}
	p, err := exec.LookPath(units.DefaultPython)
	if errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("no %s on PATH: install Python 3 (apt-get install python3) or give --python", units.DefaultPython)
	}
	if err != nil {
		return "", fmt.Errorf("finding %s: %w", units.DefaultPython, err)
	}
	return filepath.Abs(p)
}

// writeQuickConfig writes src to a private file in berth's runtime
// directory and returns its path; berth serves it, reloads re-read it.
func writeQuickConfig(src []byte) (string, error) {
	dir := control.RuntimeDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "serve-*.hcl")
	if err != nil {
		return "", fmt.Errorf("writing the configuration: %w", err)
	}
	if _, err := f.Write(src); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// appName is the app's name from its module: the top package, as a name
// berth accepts (shop.wsgi:application is "shop").
func appName(module string) string {
	top, _, _ := strings.Cut(module, ":")
	top, _, _ = strings.Cut(top, ".")
	top = strings.TrimLeft(top, "_")
	if top == "" {
		return "app"
	}
	return top
}

// absBind makes a Unix socket's path absolute (relative to wd, as the
// user typed it there); unix:PATH and a bare /PATH both work.
func absBind(b, wd string) string {
	if p, ok := strings.CutPrefix(b, "unix:"); ok {
		return "unix:" + absFrom(wd, p)
	}
	return b
}

func absFrom(wd, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(wd, p)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func durationOr(d, def time.Duration) string {
	if d == 0 {
		d = def
	}
	return d.String()
}

func strs(ss []string) []cty.Value {
	var vs []cty.Value
	for _, s := range ss {
		vs = append(vs, cty.StringVal(s))
	}
	return vs
}

// envValue is --env's NAME=VALUE pairs as an HCL map (the last of a
// name wins, as in a shell).
func envValue(pairs []string) cty.Value {
	m := map[string]cty.Value{}
	for _, kv := range pairs {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = cty.StringVal(v)
	}
	return cty.MapVal(m)
}

// quoteArgs is argv as a shell would need it typed, for the file's
// first comment.
func quoteArgs(argv []string) []string {
	out := make([]string, 0, len(argv))
	for i, s := range argv {
		if i == 0 {
			s = filepath.Base(s)
		}
		if s == "" || strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			s = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
		out = append(out, s)
	}
	return out
}
