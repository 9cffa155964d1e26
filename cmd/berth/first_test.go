package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// The first five minutes: `berth serve MODULE` with Gunicorn's flags,
// --print-config, check --import, env() and --reload, each with the real
// binary and real workers.

// whoApp is a WSGI app that answers with what the worker is: a greeting
// (which tests edit), the interpreter's prefix and the environment
// variable GREETING_SUFFIX.
const whoApp = `import os, sys

GREETING = "hello"


def app(environ, start_response):
    body = ("%s|%s|%s|%d" % (GREETING, sys.prefix, os.environ.get("GREETING_SUFFIX", ""), os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
`

// appDir is a fresh directory holding who.py, the whoApp.
func appDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "who.py"), []byte(whoApp), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// debianPath is PATH with Debian's python3 first: "python3 on PATH" is
// then the interpreter the tests install packages for.
func debianPath(t *testing.T) string {
	return "PATH=" + filepath.Dir(e2e.SystemPython(t)) + ":" + os.Getenv("PATH")
}

// startServe runs `berth serve args...` in dir with env added, until it
// is ready; addr is its first listener's.
func startServe(t *testing.T, dir string, env []string, args ...string) *e2e.Instance {
	t.Helper()
	inst := e2e.LaunchWith(t, "", func(c *exec.Cmd) {
		c.Args = append([]string{e2e.Bin, "serve"}, args...)
		c.Dir = dir
		c.Env = append(os.Environ(), env...)
	})
	if err := inst.WaitFor(`INFO  ready `, 30*time.Second); err != nil {
		t.Fatalf("berth serve %s did not become ready: %v\nlogs:\n%s", strings.Join(args, " "), err, inst.Logs)
	}
	inst.Addr = e2e.RegexpFind(inst.Logs.String(), `listening listener=http addr=(\S+)`)
	return inst
}

// berthOut runs the berth binary in dir and returns its exit code, stdout
// and stderr.
func berthOut(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(e2e.Bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb e2e.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestServeModule: `berth serve who:app -b 127.0.0.1:PORT -w 2` serves
// with two workers and no file, flags given before or after the module;
// what --print-config prints passes berth check and serves the same.
func TestServeModule(t *testing.T) {
	t.Parallel()
	dir := appDir(t)
	path := debianPath(t)
	for _, args := range [][]string{
		{"who:app", "-b", fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t)), "-w", "2", "--env", "GREETING_SUFFIX=!"},
		{"--workers=2", fmt.Sprintf("--bind=127.0.0.1:%d", e2e.FreePort(t)), "-e", "GREETING_SUFFIX=!", "who:app"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			inst := startServe(t, dir, []string{path}, args...)
			if !strings.Contains(inst.Logs.String(), "workers ready generation=1 workers=2 module=who:app") {
				t.Errorf("not 2 workers of who:app:\n%s", inst.Logs)
			}
			code, body := inst.Get("/")
			if code != 200 || !strings.HasPrefix(body, "hello|/usr|!|") {
				t.Fatalf("GET / = %d %q", code, body)
			}
			// The configuration printed for the same flags, checked, then
			// served: the same app, workers and environment.
			port := e2e.FreePort(t)
			printed := append(withoutBind(args), "--print-config", "-b", fmt.Sprintf("127.0.0.1:%d", port))
			rc, hcl, stderr := berthOut(t, dir, []string{path}, append([]string{"serve"}, printed...)...)
			if rc != 0 {
				t.Fatalf("--print-config: %d %s", rc, stderr)
			}
			file := filepath.Join(t.TempDir(), "who.hcl")
			if err := os.WriteFile(file, []byte(hcl), 0o644); err != nil {
				t.Fatal(err)
			}
			if rc, out, stderr := berthOut(t, dir, nil, "check", file); rc != 0 || !strings.Contains(out, "who (who:app, 2 workers, on http)") {
				t.Fatalf("berth check of the printed config: %d %s %s\n%s", rc, out, stderr, hcl)
			}
			again := startServe(t, t.TempDir(), nil, file)
			if code, body2 := again.Get("/"); code != 200 || !strings.HasPrefix(body2, "hello|/usr|!|") {
				t.Errorf("the printed config serves %d %q, want what the flags served (%q)", code, body2, body)
			}
			if !strings.Contains(again.Logs.String(), "workers ready generation=1 workers=2 module=who:app") {
				t.Errorf("the printed config does not start 2 workers of who:app:\n%s", again.Logs)
			}
		})
	}
}

// withoutBind is args without their binds (-b ADDR, --bind=ADDR), so
// that the test can give another.
func withoutBind(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-b":
			i++
		case strings.HasPrefix(args[i], "--bind="):
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// TestServeArgs: what `berth serve` refuses, and why, before anything
// starts; Gunicorn's flags that berth has no equivalent of name the
// reason.
func TestServeArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"serve"}, 2, "", "serve what? Give a module"},
		{[]string{"serve", "-w", "0", "who:app"}, 2, "", `-w: want a whole number from 1 to 1024; got "0"`},
		{[]string{"serve", "who:app", "--bind"}, 2, "", "--bind needs a value: ADDR"},
		{[]string{"serve", "who:app", "-k", "gevent"}, 2, "", "-k has no equivalent in berth: berth's workers are processes"},
		{[]string{"serve", "--daemon", "who:app"}, 2, "", "--daemon has no equivalent in berth"},
		{[]string{"serve", "who:app", "--frobnicate"}, 2, "", "unknown flag --frobnicate"},
		{[]string{"serve", "who:app", "other:app"}, 2, "", `serve one thing: got both "who:app" and "other:app"`},
		{[]string{"serve", "who.py"}, 2, "", "berth serve who:app"},
		{[]string{"serve", "-w", "8", "../../examples/hello/berth.hcl"}, 2, "", "-w: these flags describe an app served without a file"},
		{[]string{"serve", "--print-config", "who:app", "-t", "0"}, 2, "", `-t: want a positive number of seconds`},
		{[]string{"serve", "--print-config", "who:app", "-b", "localhost:http"}, 2, "", "the flags make a configuration that is not valid"},
		{[]string{"serve", "--print-config", "--timeout", "90", "-w4", "--threads", "2", "--max-requests", "1000", "who:app", "-b", "127.0.0.1:9000", "-b", "unix:/run/who.sock"},
			0, "timeout          = \"1m30s\"", ""},
		{[]string{"serve", "--print-config", "-w4", "who:app", "-b", "127.0.0.1:9000", "-b", "unix:/run/who.sock"},
			0, `listener         = ["http", "http-2"]`, ""},
		{[]string{"serve", "--help"}, 0, "-b, --bind ADDR", ""},
	} {
		var out, errb strings.Builder
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("berth %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
	}
}

// TestServeVenv: in a shell where a virtualenv is active (VIRTUAL_ENV
// set, whatever PATH says), berth serve runs the app with the venv's
// interpreter.
func TestServeVenv(t *testing.T) {
	t.Parallel()
	python := e2e.SystemPython(t)
	venv := filepath.Join(t.TempDir(), "venv")
	if out, err := exec.Command(python, "-m", "venv", "--without-pip", "--system-site-packages", venv).CombinedOutput(); err != nil {
		t.Skipf("cannot make a virtualenv with %s (Debian's python3-venv): %v\n%s", python, err, out)
	}
	dir := appDir(t)
	env := []string{"VIRTUAL_ENV=" + venv, debianPath(t)}
	_, hcl, _ := berthOut(t, dir, env, "serve", "who:app", "--print-config")
	if want := fmt.Sprintf("python           = %q", filepath.Join(venv, "bin/python")); !strings.Contains(hcl, want) {
		t.Errorf("--print-config in a venv lacks %s:\n%s", want, hcl)
	}
	inst := startServe(t, dir, env, "who:app", "-w", "1", "-b", fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t)))
	if _, body := inst.Get("/"); !strings.HasPrefix(body, "hello|"+venv+"|") {
		t.Errorf("the app runs in sys.prefix %q, want the venv %s", strings.Split(body, "|")[1], venv)
	}
}

// TestCheckEnvAndImport: berth check shows what env() read and reports an
// unset variable at its line; --import imports each app with its
// interpreter and says which, in what time, or prints the traceback; a
// missing interpreter is reported at its line with or without --import.
func TestCheckEnvAndImport(t *testing.T) {
	t.Parallel()
	python := e2e.SystemPython(t)
	dir := appDir(t)
	if err := os.WriteFile(filepath.Join(dir, "broken.py"), []byte("import json\nVALUE = json.loads('{not json')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(module, py string) string {
		return fmt.Sprintf(`listener "http" {
  address = "127.0.0.1:${env("WHO_PORT", "8000")}"
}

app "who" {
  module  = %q
  python  = %q
  workers = env("WHO_WORKERS")
  env     = { GREETING_SUFFIX = env("WHO_SUFFIX", "?") }
}
`, module, py)
	}
	for _, tc := range []struct {
		name, module, python string
		env                  []string
		args                 []string
		code                 int
		out, err             []string
	}{
		{"set and defaulted", "who:app", python, []string{"WHO_WORKERS=3", "WHO_PORT=8123"}, []string{"check"}, 0,
			[]string{"who (who:app, 3 workers, on http)", `env WHO_PORT = "8123"`, `env WHO_SUFFIX is unset: default "?"`, `env WHO_WORKERS = "3"`}, nil},
		{"unset without default", "who:app", python, nil, []string{"check"}, 1,
			nil, []string{"who.hcl:8:13: error: Error in function call", "WHO_WORKERS is not set and env(\"WHO_WORKERS\") has no default"}},
		{"imports", "who:app", python, []string{"WHO_WORKERS=2"}, []string{"check", "--import"}, 0,
			[]string{"app who: imported who:app in ", "with " + python + " (Python 3."}, nil},
		{"an import error", "broken:app", python, []string{"WHO_WORKERS=2"}, []string{"check", "--import"}, 1,
			[]string{"ok: 1 listener(s)"}, []string{"app who: importing broken:app with " + python + " failed", "Traceback (most recent call last)", "json.decoder.JSONDecodeError"}},
		{"a missing interpreter", "who:app", "/nonexistent/bin/python3", []string{"WHO_WORKERS=2"}, []string{"check"}, 1,
			nil, []string{`who.hcl:7:13: error: Python not found`, `python "/nonexistent/bin/python3" cannot be run: no such file or directory`}},
		{"a missing interpreter, importing", "who:app", "/nonexistent/bin/python3", []string{"WHO_WORKERS=2"}, []string{"check", "--import"}, 1,
			nil, []string{`who.hcl:7:13: error: Python not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "who.hcl")
			if err := os.WriteFile(file, []byte(config(tc.module, tc.python)), 0o644); err != nil {
				t.Fatal(err)
			}
			env := append([]string{"WHO_WORKERS=", "WHO_PORT=", "WHO_SUFFIX="}, tc.env...)
			cmd := exec.Command(e2e.Bin, append(tc.args, file)...)
			cmd.Env = unsetEmpty(append(os.Environ(), env...))
			var out, errb e2e.SyncBuffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			for _, w := range tc.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.err {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
		})
	}
}

// unsetEmpty drops NAME= entries (and what they override earlier in
// env): the variable is then unset for the child, not set to "".
func unsetEmpty(env []string) []string {
	last := map[string]string{}
	var order []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, seen := last[k]; !seen {
			order = append(order, k)
		}
		last[k] = v
	}
	var out []string
	for _, k := range order {
		if last[k] != "" {
			out = append(out, k+"="+last[k])
		}
	}
	return out
}

// TestServeBinds: -b given twice serves the one app (one pool of
// workers) on both, a TCP port and a Unix socket named relative to the
// current directory.
func TestServeBinds(t *testing.T) {
	t.Parallel()
	dir := appDir(t)
	inst := startServe(t, dir, []string{debianPath(t)}, "who:app", "-w", "1", "-b", fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t)), "-b", "unix:who.sock")
	_, overTCP := inst.Get("/")
	sock := filepath.Join(dir, "who.sock")
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://berth/")
	if err != nil {
		t.Fatalf("GET over %s: %v\nlogs:\n%s", sock, err, inst.Logs)
	}
	overUnix, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(overUnix) != overTCP {
		t.Errorf("over the Unix socket %d %q, over TCP %q: want the same worker's answer", resp.StatusCode, overUnix, overTCP)
	}
}

// TestServeReload: with --reload an edited file is served within 2 s; an
// edit that does not import leaves the last good code serving, with its
// traceback logged; fixing it serves the fix.
func TestServeReload(t *testing.T) {
	t.Parallel()
	dir := appDir(t)
	file := filepath.Join(dir, "who.py")
	inst := startServe(t, dir, []string{debianPath(t)}, "who:app", "-w", "1", "--reload", "-b", fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t)))
	if _, body := inst.Get("/"); !strings.HasPrefix(body, "hello|") {
		t.Fatalf("GET / = %q", body)
	}
	edit := func(greeting string) {
		src := strings.Replace(whoApp, `GREETING = "hello"`, greeting, 1)
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	servedWithin := func(prefix string, d time.Duration) {
		t.Helper()
		start := time.Now()
		for time.Since(start) < d {
			if _, body := inst.Get("/"); strings.HasPrefix(body, prefix) {
				t.Logf("%q served %s after the edit", prefix, time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, body := inst.Get("/")
		t.Fatalf("%s after the edit GET / = %q, want %q...", d, body, prefix)
	}
	edit(`GREETING = "edited"`)
	servedWithin("edited|", 2*time.Second)

	edit(`GREETING = "broken" +`)
	if err := inst.WaitFor(`(?s)reload failed; the previous configuration keeps serving.*SyntaxError`, 10*time.Second); err != nil {
		t.Fatalf("a syntax error: %v", err)
	}
	if _, body := inst.Get("/"); !strings.HasPrefix(body, "edited|") {
		t.Errorf("after a failed reload GET / = %q, want the last good code", body)
	}
	edit(`GREETING = "fixed"`)
	servedWithin("fixed|", 2*time.Second)
}

// TestServeReloadConfig: with --reload, an edit of the configuration file
// itself is applied.
func TestServeReloadConfig(t *testing.T) {
	t.Parallel()
	dir := appDir(t)
	file := filepath.Join(dir, "who.hcl")
	src := fmt.Sprintf("listener \"http\" {\n  address = \"127.0.0.1:%d\"\n}\n\napp \"who\" {\n  module  = \"who:app\"\n  python  = %q\n  workers = 1\n}\n", e2e.FreePort(t), e2e.SystemPython(t))
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	inst := startServe(t, dir, nil, "--reload", file)
	if err := os.WriteFile(file, []byte(strings.Replace(src, "workers = 1", "workers = 2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := inst.WaitFor(`workers ready generation=2 workers=2`, 5*time.Second); err != nil {
		t.Fatalf("the edited configuration: %v", err)
	}
}
