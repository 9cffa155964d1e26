package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/server"
)

// loadGen sends requests continuously from several goroutines until
// stopped (or for at most a minute) and counts what fails.
type loadGen struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	samples    []string
	stop       chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

// startLoad runs conc clients against url. Each has its own keep-alive
// connection. check judges a response; allowErr judges a transport error.
func startLoad(url string, conc int, check func(code int, body string) error, allowErr func(error) bool) *loadGen {
	l := &loadGen{stop: make(chan struct{})}
	deadline := time.Now().Add(time.Minute)
	for i := 0; i < conc; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					if allowErr != nil && allowErr(err) {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					l.fail(err.Error())
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					err = check(resp.StatusCode, string(b))
				}
				if err != nil {
					l.fail(err.Error())
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *loadGen) fail(s string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.samples) < 5 {
		l.samples = append(l.samples, s)
	}
	l.mu.Unlock()
}

// finish stops the load and returns its counts.
func (l *loadGen) finish() (ok, failed int64, samples []string) {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.samples
}

func status200(code int, body string) error {
	if code != 200 {
		return fmt.Errorf("status %d: %.100s", code, body)
	}
	return nil
}

const versionedApp = `import os
VERSION = %q
def app(environ, start_response):
    body = ("%%s %%d" %% (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
`

// TestReloadUnderLoad reloads 20 times under continuous load: half with
// changed code, one with a broken config, one with an app that fails to
// import. No request may fail, and after each reload the right code runs.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	dir := t.TempDir()
	writeApp := func(src string) {
		if err := os.WriteFile(filepath.Join(dir, "versioned.py"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeApp(fmt.Sprintf(versionedApp, "v0"))
	cfg := fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "versioned" {
  module  = "versioned:app"
  python  = %q
  chdir   = %q
  workers = 2
  env     = { PYTHONDONTWRITEBYTECODE = "1" }
}
`, py, dir)
	b := e2e.StartBerth(t, cfg)
	version := "v0"
	load := startLoad(b.URL("/"), 4, func(code int, body string) error {
		if code != 200 || !strings.HasPrefix(body, "v") {
			return fmt.Errorf("status %d: %.100s", code, body)
		}
		return nil
	}, nil)
	defer load.finish()

	for i := 1; i <= 20; i++ {
		wantOK := true
		switch {
		case i == 7:
			os.WriteFile(b.Config, []byte(cfg+"\napp \"broken\" {\n  module = [42]\n}\n"), 0o644)
			wantOK = false
		case i == 13:
			writeApp("import nonexistent_module_for_berth\n")
			wantOK = false
		case i%2 == 0:
			version = fmt.Sprintf("v%d", i)
			writeApp(fmt.Sprintf(versionedApp, version))
		}
		if i%5 == 0 {
			// Every fifth reload comes as SIGHUP, as from a plain kill -HUP.
			before := b.Status().Reloads
			b.Cmd.Process.Signal(syscall.SIGHUP)
			deadline := time.Now().Add(20 * time.Second)
			for b.Status().Reloads == before && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if st := b.Status(); st.LastReload.OK != wantOK {
				t.Errorf("reload %d (SIGHUP): ok=%v, want %v: %s", i, st.LastReload.OK, wantOK, st.LastReload.Message)
			}
		} else {
			code, out := b.Reload()
			if (code == 0) != wantOK {
				t.Errorf("reload %d: exit %d, want ok=%v:\n%s", i, code, wantOK, out)
			}
			if i == 7 && !strings.Contains(out, "Unsuitable value type") {
				t.Errorf("reload with a broken config did not print the diagnostics:\n%s", out)
			}
			if i == 13 && !strings.Contains(out, "No module named 'nonexistent_module_for_berth'") {
				t.Errorf("reload with an app that fails to import did not print the traceback:\n%s", out)
			}
		}
		if _, body := b.Get("/"); !strings.HasPrefix(body, version+" ") {
			t.Errorf("after reload %d: serving %q, want version %s", i, body, version)
		}
		// Put things right after the failing ones.
		if i == 7 {
			os.WriteFile(b.Config, []byte(cfg), 0o644)
		}
		if i == 13 {
			writeApp(fmt.Sprintf(versionedApp, version))
		}
	}
	ok, failed, samples := load.finish()
	t.Logf("reload ×20 under load: %d requests ok, %d failed", ok, failed)
	if failed != 0 || ok == 0 {
		t.Errorf("%d requests failed during reloads (of %d): %v", failed, ok+failed, samples)
	}
	st := b.Status()
	if st.Apps[0].Generation != 19 || st.Reloads != 20 {
		t.Errorf("after 20 reloads, 2 failed: generation %d, reloads %d; want 19, 20", st.Apps[0].Generation, st.Reloads)
	}
}

// TestReloadListeners: a reload opens and closes listeners, and never
// touches one that did not change: a keep-alive connection on it is served
// before and after.
func TestReloadListeners(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	b := e2e.StartBerth(t, e2e.AppConfig(py, "probe:app", "workers = 1\n  listener = \"http\"", ""))
	conn, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	ask := func() int {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("keep-alive connection: %v", err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if ask() != 418 {
		t.Fatal("first request on the keep-alive connection failed")
	}
	wd, _ := os.Getwd()
	second := fmt.Sprintf(`
listener "admin" {
  address = "127.0.0.1:0"
}
app "admin" {
  listener = "admin"
  module   = "probe:app"
  python   = %q
  chdir    = %q
  workers  = 1
}
`, py, filepath.Join(wd, "testdata"))
	orig, _ := os.ReadFile(b.Config)
	os.WriteFile(b.Config, append(append([]byte(nil), orig...), second...), 0o644)
	if code, out := b.Reload(); code != 0 || !strings.Contains(out, "opened listener admin") || !strings.Contains(out, "added app admin") {
		t.Fatalf("reload adding a listener: %d %s", code, out)
	}
	var adminAddr string
	for _, l := range b.Status().Listeners {
		if l.Name == "admin" {
			adminAddr = l.Addr
		}
	}
	resp, err := e2e.HTTPClient.Get("http://" + adminAddr + "/status")
	if err != nil || resp.StatusCode != 418 {
		t.Fatalf("new listener: %v %v", resp, err)
	}
	resp.Body.Close()
	if ask() != 418 {
		t.Error("the unchanged listener's keep-alive connection failed after a reload")
	}
	os.WriteFile(b.Config, orig, 0o644)
	if code, out := b.Reload(); code != 0 || !strings.Contains(out, "closed listener admin") || !strings.Contains(out, "removed app admin") {
		t.Fatalf("reload removing a listener: %d %s", code, out)
	}
	e2e.WaitUntil(t, 3*time.Second, "the removed listener refuses connections", func() bool {
		c, err := net.DialTimeout("tcp", adminAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if ask() != 418 {
		t.Error("the unchanged listener's keep-alive connection failed after the second reload")
	}
}

func TestStatusAndControlSocket(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 2", ""))
	for i := 0; i < 3; i++ {
		b.Get("/status")
	}
	st := b.Status()
	if len(st.Apps) != 1 || len(st.Apps[0].Workers) != 2 || st.Apps[0].Generation != 1 || st.Served < 3 || st.Workers != 2 {
		t.Errorf("status = %+v", st)
	}
	for _, w := range st.Apps[0].Workers {
		if w.PID == 0 || w.State != "idle" || w.RSS <= 0 || w.Uptime <= 0 {
			t.Errorf("worker status = %+v", w)
		}
	}
	var out, errb strings.Builder
	if code := run([]string{"status", b.Config}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "app probe (probe:app) generation 1") || !strings.Contains(out.String(), "listener http on 127.0.0.1:") {
		t.Errorf("berth status = %d\n%s%s", code, out.String(), errb.String())
	}
	sock := e2e.RegexpFind(b.Logs.String(), `control=(\S+)`)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("control socket %s: %v %v, want a socket with mode 0600", sock, fi.Mode(), err)
	}
	// No instance for another configuration.
	other := filepath.Join(t.TempDir(), "other.hcl")
	os.WriteFile(other, nil, 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"reload", other}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no berth is running for this configuration") {
		t.Errorf("reload with nothing running = %d %q", code, errb.String())
	}
}

// TestKillUnderLoad: kill -9 of a busy worker under load fails exactly the
// request it held.
func TestKillUnderLoad(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 2", ""))
	load := startLoad(b.URL("/status"), 3, func(code int, body string) error {
		if code != 418 {
			return fmt.Errorf("status %d", code)
		}
		return nil
	}, nil)
	slow := make(chan int)
	go func() {
		// 6 s, past the 5 s the search below may take: the kill must
		// find it still asleep (killed, it costs no time).
		code, _ := b.Get("/sleep?6")
		slow <- code
	}()
	// The sleeper is the worker that is busy in two snapshots with the
	// same count of requests served: the others answer the load.
	var busy int
	for deadline := time.Now().Add(5 * time.Second); busy == 0 && time.Now().Before(deadline); {
		before := b.Status().Apps[0].Workers
		time.Sleep(300 * time.Millisecond)
		for _, w := range b.Status().Apps[0].Workers {
			for _, w0 := range before {
				if w.PID == w0.PID && w.State == "busy" && w0.State == "busy" && w.Served == w0.Served {
					busy = w.PID
				}
			}
		}
	}
	if busy == 0 {
		t.Fatal("never saw the sleeping worker busy")
	}
	syscall.Kill(busy, syscall.SIGKILL)
	code := <-slow
	time.Sleep(500 * time.Millisecond) // load while the worker is replaced
	ok, failed, samples := load.finish()
	if code != 502 {
		t.Errorf("the killed worker's request got %d, want 502", code)
	}
	if failed != 0 || ok == 0 {
		t.Errorf("load: %d ok, %d failed %v; only the killed worker's request may fail", ok, failed, samples)
	}
}

// TestRecycleUnderLoad: with a small max_requests, workers are replaced
// under load without a failed request.
func TestRecycleUnderLoad(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 2\n  max_requests = 30\n  max_requests_jitter = 10", ""))
	var mu sync.Mutex
	pids := map[int]bool{}
	load := startLoad(b.URL("/pid"), 4, func(code int, body string) error {
		var v struct{ PID int }
		if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
			return fmt.Errorf("status %d: %.100s", code, body)
		}
		mu.Lock()
		pids[v.PID] = true
		mu.Unlock()
		return nil
	}, nil)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := len(pids)
		mu.Unlock()
		if n >= 8 && load.ok.Load() > 300 {
			break
		}
	}
	ok, failed, samples := load.finish()
	t.Logf("recycling: %d requests, %d distinct worker pids", ok, len(pids))
	if failed != 0 {
		t.Errorf("%d requests failed while recycling: %v", failed, samples)
	}
	if len(pids) < 8 {
		t.Errorf("only %d distinct workers served %d requests with max_requests 30", len(pids), ok)
	}
	if err := b.WaitFor(`recycling worker.*reason=max_requests`, time.Second); err != nil {
		t.Error(err)
	}
	if n := len(b.Status().Apps[0].Workers); n != 2 {
		t.Errorf("%d workers after recycling, want 2", n)
	}
}

// TestScaling: a burst grows the pool to max; idleness shrinks it to min.
func TestScaling(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", `workers {
    min          = 1
    max          = 3
    spawn_after  = "50ms"
    idle_timeout = "1s"
  }`, ""))
	var wg sync.WaitGroup
	codes := make(chan int, 12)
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := b.Get("/sleep?0.5")
			codes <- code
		}()
	}
	peak := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && peak < 3; time.Sleep(50 * time.Millisecond) {
		peak = max(peak, len(b.Status().Apps[0].Workers))
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("burst request got %d", c)
		}
	}
	if peak != 3 {
		t.Errorf("pool peaked at %d workers under a burst, want max 3", peak)
	}
	n := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n = len(b.Status().Apps[0].Workers); n == 1 {
			break
		}
	}
	if n != 1 {
		t.Errorf("%d workers after idling, want min 1", n)
	}
	if err := b.WaitFor(`retiring idle worker`, time.Second); err != nil {
		t.Error(err)
	}
}

// TestShutdownUnderLoad: SIGTERM under load; every request berth accepted
// completes. Requests after the listener closed are refused, not failed.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 2", ""))
	refused := func(err error) bool { return strings.Contains(err.Error(), "connection refused") }
	load := startLoad(b.URL("/sleep?0.05"), 6, status200, refused)
	time.Sleep(time.Second) // a second of load before the stop
	b.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.Done:
	case <-time.After(20 * time.Second):
		t.Fatal("berth did not stop")
	}
	ok, failed, samples := load.finish()
	if failed != 0 || ok == 0 {
		t.Errorf("shutdown under load: %d ok, %d failed: %v", ok, failed, samples)
	}
	if b.Err != nil {
		t.Errorf("exit: %v", b.Err)
	}
}

// TestGracefulTimeout: requests still running at the end of
// graceful_timeout are cut, berth says so and exits 0.
func TestGracefulTimeout(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1\n  graceful_timeout = \"1s\"", ""))
	go b.Get("/sleep?20")
	b.WaitStatus(5*time.Second, "the request on the worker", func(st server.Status) bool { return st.Busy == 1 })
	start := time.Now()
	b.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("berth did not stop at the end of graceful_timeout")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %s with graceful_timeout 1s", d)
	}
	if b.Err != nil {
		t.Errorf("exit %v, want 0", b.Err)
	}
	if !strings.Contains(b.Logs.String(), "killed 1 worker(s) still running at the end of graceful_timeout") {
		t.Errorf("the killed straggler is not reported:\n%s", b.Logs)
	}
}

// TestRecycleByLifetimeAndMemory: max_lifetime and max_rss replace
// workers, one at a time, without failing requests.
func TestRecycleByLifetimeAndMemory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, extra, reason string }{
		{"max_lifetime", `max_lifetime = "1s"`, "reason=max_lifetime"},
		{"max_rss", `max_rss = "1MiB"`, "reason=max_rss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 2\n  "+tc.extra, ""))
			first := map[int]bool{}
			for _, w := range b.Status().Apps[0].Workers {
				first[w.PID] = true
			}
			load := startLoad(b.URL("/status"), 2, func(code int, body string) error {
				if code != 418 {
					return fmt.Errorf("status %d", code)
				}
				return nil
			}, nil)
			if err := b.WaitFor(`(?s)worker replaced.*worker replaced.*worker replaced`, 15*time.Second); err != nil {
				t.Error(err)
			}
			ok, failed, samples := load.finish()
			if failed != 0 || ok == 0 {
				t.Errorf("%d ok, %d failed: %v", ok, failed, samples)
			}
			if !strings.Contains(b.Logs.String(), tc.reason) {
				t.Errorf("no recycle with %s in the logs", tc.reason)
			}
			for _, w := range b.Status().Apps[0].Workers {
				if first[w.PID] {
					t.Errorf("worker %d is still the first one", w.PID)
				}
			}
		})
	}
}

// TestQuickStop: SIGINT does not wait for requests in flight.
func TestQuickStop(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""))
	go b.Get("/sleep?20")
	b.WaitStatus(5*time.Second, "the request on the worker", func(st server.Status) bool { return st.Busy == 1 })
	start := time.Now()
	b.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-b.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("berth did not stop quickly on SIGINT")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("SIGINT took %s", d)
	}
}

// TestRespawnBackoff: a worker whose app no longer imports is retried with
// growing delays, and the other app keeps serving.
func TestRespawnBackoff(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fragile.py"), []byte(fmt.Sprintf(versionedApp, "fragile")), 0o644)
	wd, _ := os.Getwd()
	cfg := fmt.Sprintf(`
listener "a" {
  address = "127.0.0.1:0"
}
listener "http" {
  address = "127.0.0.1:0"
}
app "fragile" {
  listener = "a"
  module   = "fragile:app"
  python   = %q
  chdir    = %q
  workers  = 1
  env      = { PYTHONDONTWRITEBYTECODE = "1" }
}
app "probe" {
  listener = "http"
  module   = "probe:app"
  python   = %q
  chdir    = %q
  workers  = 1
}
`, py, dir, py, filepath.Join(wd, "testdata"))
	b := e2e.StartBerth(t, cfg)
	var fragilePID int
	for _, a := range b.Status().Apps {
		if a.Name == "fragile" {
			fragilePID = a.Workers[0].PID
		}
	}
	os.WriteFile(filepath.Join(dir, "fragile.py"), []byte("raise RuntimeError('broken on purpose')\n"), 0o644)
	syscall.Kill(fragilePID, syscall.SIGKILL)
	if err := b.WaitFor(`(?s)replacing worker failed; retrying.*retry_in=200ms.*retry_in=400ms`, 10*time.Second); err != nil {
		t.Error(err)
	}
	if !strings.Contains(b.Logs.String(), "broken on purpose") {
		t.Error("the import failure's reason is not logged")
	}
	if code, _ := b.Get("/status"); code != 418 {
		t.Errorf("the other app stopped serving: %d", code)
	}
}

func TestBootTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slowboot.py"), []byte("import time\ntime.sleep(30)\ndef app(e, s):\n    pass\n"), 0o644)
	cfg := fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "slow" {
  module       = "slowboot:app"
  python       = %q
  chdir        = %q
  workers      = 1
  boot_timeout = "1s"
}
`, e2e.SystemPython(t), dir)
	inst := e2e.Launch(t, cfg)
	select {
	case <-inst.Done:
	case <-time.After(20 * time.Second):
		t.Fatal("berth did not give up on a worker past boot_timeout")
	}
	if !strings.Contains(inst.Logs.String(), "did not say hello within boot_timeout 1s") {
		t.Errorf("logs:\n%s", inst.Logs)
	}
}

// TestIdleWorkerKilled: a worker that dies while idle costs nothing: the
// next request goes to its replacement.
func TestIdleWorkerKilled(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", ""))
	for i := 0; i < 5; i++ {
		pid := b.PID()
		syscall.Kill(pid, syscall.SIGKILL)
		if code, body := b.Get("/status"); code != 418 {
			t.Fatalf("request right after its idle worker was killed: %d %q", code, body)
		}
	}
}

const slowBootApp = `import os, time
time.sleep(float(os.environ.get("BOOT_DELAY", "0")))
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
`

// TestSighupDuringStartup: a reload asked for while apps boot is ignored,
// not a reason to stop.
func TestSighupDuringStartup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slowboot.py"), []byte(slowBootApp), 0o644)
	cfg := fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "slow" {
  module  = "slowboot:app"
  python  = %q
  chdir   = %q
  workers = 1
  env     = { BOOT_DELAY = "1.5" }
}
`, e2e.SystemPython(t), dir)
	inst := e2e.Launch(t, cfg)
	// Signals are watched before the app starts booting (BOOT_DELAY 1.5 s).
	if err := inst.WaitFor(`starting app`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	inst.Cmd.Process.Signal(syscall.SIGHUP)
	if err := inst.WaitFor(`INFO  ready `, 20*time.Second); err != nil {
		t.Fatalf("SIGHUP during start-up: %v", err)
	}
	if !strings.Contains(inst.Logs.String(), "signal ignored: still starting") {
		t.Errorf("the ignored SIGHUP is not logged")
	}
}

// TestReloadDuringRecycle: reloads while workers recycle after every
// request, with a boot slower than graceful_timeout, fail no request and
// leave no worker behind.
func TestReloadDuringRecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slowboot.py"), []byte(slowBootApp), 0o644)
	cfg := fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "slow" {
  module           = "slowboot:app"
  python           = %q
  chdir            = %q
  workers          = 2
  max_requests     = 1
  graceful_timeout = "1s"
  env              = { BOOT_DELAY = "0.7" }
}
`, e2e.SystemPython(t), dir)
	b := e2e.StartBerth(t, cfg)
	load := startLoad(b.URL("/"), 4, status200, nil)
	for i := 0; i < 3; i++ {
		time.Sleep(500 * time.Millisecond) // the load recycles workers meanwhile
		if code, out := b.Reload(); code != 0 {
			t.Errorf("reload %d: %s", i, out)
		}
	}
	time.Sleep(500 * time.Millisecond) // load after the last reload
	ok, failed, samples := load.finish()
	t.Logf("reloads during recycling: %d ok, %d failed", ok, failed)
	if failed != 0 || ok == 0 {
		t.Errorf("%d requests failed: %v", failed, samples)
	}
	// Once things settle, berth has exactly its workers and the
	// replacements they are booting: no process left from old generations.
	// Polled for up to 3 s, the time the test slept before looking once.
	var children []int
	known := map[int]bool{}
	settled := func() bool {
		clear(known)
		for _, w := range b.Status().Apps[0].Workers {
			known[w.PID] = true
		}
		children = e2e.ChildPIDs(b.Cmd.Process.Pid)
		return len(children) <= 2*len(known)
	}
	for deadline := time.Now().Add(3 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if len(children) > 2*len(known) {
		t.Errorf("berth has %d child processes for %d workers: %v (workers %v)", len(children), len(known), children, known)
	}
}
