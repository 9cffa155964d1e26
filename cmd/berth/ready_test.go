package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/metrics"
)

// flakyApp fails to import while the file BROKEN names exists.
const flakyApp = `import os
if os.path.exists(os.environ["BROKEN"]):
    raise RuntimeError("broken on purpose")
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
`

// TestReadyAfterReload: when an app's only worker dies and its
// replacement cannot boot, /readyz turns 503 naming the app and the
// metrics show the slot in back-off; a reload with the app fixed brings
// /readyz back to 200.
func TestReadyAfterReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(filepath.Join(dir, "flaky.py"), []byte(flakyApp), 0o644); err != nil {
		t.Fatal(err)
	}
	b := e2e.StartBerth(t, fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
admin {
  address = "127.0.0.1:0"
}
app "flaky" {
  module  = "flaky:app"
  python  = %q
  chdir   = %q
  workers = 1
  env     = { BROKEN = %q }
}
`, e2e.SystemPython(t), dir, broken))
	readyz := "http://" + b.AdminAddr() + "/readyz"
	if code, body, err := probe("GET", readyz); code != 200 {
		t.Fatalf("/readyz at start = %d %q %v", code, body, err)
	}
	os.WriteFile(broken, nil, 0o644)
	_, pid := b.Get("/")
	n, _ := strconv.Atoi(pid)
	syscall.Kill(n, syscall.SIGKILL)
	e2e.WaitUntil(t, 10*time.Second, "/readyz 503 and a slot in back-off", func() bool {
		code, body, _ := probe("GET", readyz)
		fs := b.Status().Metrics
		return code == 503 && body == "app flaky has no ready worker\n" &&
			metrics.Total(fs, "berth_worker_backoff", map[string]string{"app": "flaky"}) == 1 &&
			metrics.Total(fs, "berth_workers", map[string]string{"state": "booting"}) == 1
	})
	os.Remove(broken)
	if code, out := b.Reload(); code != 0 || !strings.Contains(out, "flaky generation 2") {
		t.Fatalf("reload = %d %s", code, out)
	}
	if code, body, err := probe("GET", readyz); code != 200 {
		t.Errorf("/readyz after the reload = %d %q %v", code, body, err)
	}
}
