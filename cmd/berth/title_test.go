package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berthd/berth/internal/e2e"
)

// venvApp imports a module that only the virtualenv has, and answers
// with it, the interpreter's prefix and the app's sys.path[0].
const venvApp = `import os, sys
import onlyinvenv
def app(environ, start_response):
    body = "%s %s %d %r" % (onlyinvenv.WHERE, sys.prefix, os.getpid(), sys.path[0])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
`

// TestWorkerTitle: ps shows each worker as its interpreter, the worker
// program and the app it serves with its generation; a worker started
// from a virtualenv (python3 -m venv --system-site-packages) still
// imports a module installed only in that venv, and the app's directory
// is still first on sys.path, as before.
func TestWorkerTitle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	venv := filepath.Join(dir, "venv")
	if out, err := exec.Command(e2e.SystemPython(t), "-m", "venv", "--system-site-packages", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Skipf("python3 -m venv failed (Debian's python3-venv): %v\n%s", err, out)
	}
	python := filepath.Join(venv, "bin", "python")
	site, err := exec.Command(python, "-c", "import site; print(site.getsitepackages()[0])").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(strings.TrimSpace(string(site)), "onlyinvenv.py"), []byte("WHERE = 'venv'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if exec.Command(e2e.SystemPython(t), "-c", "import onlyinvenv").Run() == nil {
		t.Fatal("onlyinvenv imports outside the venv: the test would prove nothing")
	}
	appDir := filepath.Join(dir, "app")
	os.Mkdir(appDir, 0o755)
	if err := os.WriteFile(filepath.Join(appDir, "venvapp.py"), []byte(venvApp), 0o644); err != nil {
		t.Fatal(err)
	}
	b := e2e.StartBerth(t, fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "shop" {
  module  = "venvapp:app"
  python  = %q
  chdir   = %q
  workers = 1
}
`, python, appDir))
	check := func(gen int) {
		t.Helper()
		code, body := b.Get("/")
		var pid int
		var where, prefix, path0 string
		if _, err := fmt.Sscanf(body, "%s %s %d %s", &where, &prefix, &pid, &path0); code != 200 || err != nil {
			t.Fatalf("GET / = %d %q (%v)", code, body, err)
		}
		if where != "venv" || prefix != venv || path0 != "''" {
			t.Errorf("the app saw module from %q, sys.prefix %q, sys.path[0] %s; want venv, %q, ''", where, prefix, path0, venv)
		}
		out, err := exec.Command("ps", "-o", "args=", "-p", fmt.Sprint(pid)).Output()
		if err != nil {
			t.Fatalf("ps: %v", err)
		}
		want := fmt.Sprintf(`^%s -u /\S+/berth-worker shop gen %d\n$`, regexp.QuoteMeta(python), gen)
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("ps -o args of worker %d = %q, want %q", pid, out, want)
		}
		t.Logf("ps -o args: %s", strings.TrimSpace(string(out)))
	}
	check(1)
	if code, out := b.Reload(); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	check(2)
}
