package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the real berth binary, built once in TestMain,
// with real Python workers, and talk HTTP to it over loopback.

var berthBin string

// buildFlags are extra `go build` flags for the binary under test.
var buildFlags []string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	berthBin = filepath.Join(dir, "berth")
	build := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", berthBin, ".")...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building berth:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// systemPython is the interpreter the tests run apps with: Debian's, which
// is where python3-flask is installed.
func systemPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on this machine: the end-to-end tests need a CPython ≥ 3.8 (apt-get install python3)")
	}
	return p
}

func needFlask(t *testing.T, python string) {
	t.Helper()
	if err := exec.Command(python, "-c", "import flask").Run(); err != nil {
		t.Skipf("%s cannot import flask: install Debian's python3-flask", python)
	}
}

// syncBuffer collects berth's stderr while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is one running `berth serve`.
type instance struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string // host:port of the first listener
	config string // the configuration file
	logs   *syncBuffer
	done   chan struct{}
	err    error // from Wait, once done is closed
}

// appConfig is the usual test configuration: one listener on a free
// loopback port, one app from testdata. extra goes inside the app block,
// listenerExtra inside the listener block.
func appConfig(python, module, extra, listenerExtra string) string {
	wd, _ := os.Getwd()
	return fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
  %s
}

app "probe" {
  module = %q
  python = %q
  chdir  = %q
  %s
}
`, listenerExtra, module, python, filepath.Join(wd, "testdata"), extra)
}

// probeApp is an app block for testdata's probe app with one worker, for
// configurations of several apps; extra goes inside the block.
func probeApp(name, python, extra string) string {
	wd, _ := os.Getwd()
	return fmt.Sprintf(`
app %q {
  module  = "probe:app"
  python  = %q
  chdir   = %q
  workers = 1
  %s
}
`, name, python, filepath.Join(wd, "testdata"), extra)
}

// startBerth writes config to a file and runs berth on it until it logs
// "ready"; the test fails if that does not happen within 30 s.
func startBerth(t *testing.T, config string) *instance {
	t.Helper()
	return startBerthUnder(t, config)
}

// startBerthUnder is startBerth under a wrapper command (launchUnder).
func startBerthUnder(t *testing.T, config string, wrapper ...string) *instance {
	t.Helper()
	inst := launchUnder(t, config, wrapper...)
	if err := inst.waitFor(`INFO  ready `, 30*time.Second); err != nil {
		t.Fatalf("berth did not become ready: %v\nlogs:\n%s", err, inst.logs)
	}
	m := regexp.MustCompile(`listening listener=http addr=(\S+)`).FindStringSubmatch(inst.logs.String())
	if m == nil {
		t.Fatalf("no listening line in logs:\n%s", inst.logs)
	}
	inst.addr = m[1]
	return inst
}

// launch starts berth without waiting for it.
func launch(t *testing.T, config string) *instance {
	t.Helper()
	return launchUnder(t, config)
}

// launchUnder starts berth under a command such as prlimit (its words
// then berth's), without waiting for it.
func launchUnder(t *testing.T, config string, wrapper ...string) *instance {
	t.Helper()
	if len(wrapper) == 0 {
		return launchWith(t, config, nil)
	}
	return launchWith(t, config, func(c *exec.Cmd) {
		c.Args = append(append([]string(nil), wrapper...), c.Args...)
		c.Args[len(wrapper)] = c.Path
		c.Path = wrapper[0]
	})
}

// launchWith is launch with prepare, when not nil, changing the command
// (its environment, its files) before it starts.
func launchWith(t *testing.T, config string, prepare func(*exec.Cmd)) *instance {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berth.hcl")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	inst := &instance{t: t, config: path, logs: &syncBuffer{}, done: make(chan struct{})}
	inst.cmd = exec.Command(berthBin, "serve", "--log-level", "debug", path)
	inst.cmd.Stdout = inst.logs
	inst.cmd.Stderr = inst.logs
	if prepare != nil {
		prepare(inst.cmd)
	}
	if err := inst.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		inst.err = inst.cmd.Wait()
		close(inst.done)
	}()
	t.Cleanup(func() {
		inst.stop()
		// A binary built with -race reports races on stderr and exits 66.
		if strings.Contains(inst.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector reported a data race in berth")
		}
		if ee, ok := inst.err.(*exec.ExitError); ok && ee.ExitCode() == 66 {
			t.Errorf("berth exited with the race detector's status 66")
		}
		if t.Failed() {
			t.Logf("berth logs:\n%s", inst.logs)
		}
	})
	return inst
}

// waitFor waits until the logs match re, or berth exits, or d passes.
func (i *instance) waitFor(re string, d time.Duration) error {
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if rx.MatchString(i.logs.String()) {
			return nil
		}
		select {
		case <-i.done:
			if rx.MatchString(i.logs.String()) {
				return nil
			}
			return fmt.Errorf("berth exited (%v) before logging %q", i.err, re)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no log line matching %q within %s", re, d)
}

// stop sends SIGTERM and waits for berth to exit, killing it after 20 s.
func (i *instance) stop() {
	select {
	case <-i.done:
		return
	default:
	}
	_ = i.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-i.done:
	case <-time.After(20 * time.Second):
		_ = i.cmd.Process.Kill()
		<-i.done
		i.t.Errorf("berth did not exit within 20 s of SIGTERM")
	}
}

// portOf is the port of a host:port address.
func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func (i *instance) url(path string) string { return "http://" + i.addr + path }

// get does a GET with a fresh client and returns status and body.
func (i *instance) get(path string) (int, string) {
	i.t.Helper()
	resp, err := httpClient.Get(i.url(path))
	if err != nil {
		i.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		i.t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// raw sends bytes on a new connection, half-closes nothing, and returns
// everything berth answers until it closes the connection or d passes.
func (i *instance) raw(req string, d time.Duration) string {
	i.t.Helper()
	c, err := net.Dial("tcp", i.addr)
	if err != nil {
		i.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, req); err != nil {
		i.t.Fatalf("writing request: %v", err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// readResponse reads one response from br.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return resp, string(b)
}

// statusOf returns the status code of a raw response, or 0.
func statusOf(raw string) int {
	var code int
	if _, err := fmt.Sscanf(raw, "HTTP/1.1 %d", &code); err != nil {
		return 0
	}
	return code
}

// regexpFind returns the first submatch of re in s, or "".
func regexpFind(s, re string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// pidAlive reports whether pid is a running (not zombie) process.
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// childPIDs lists the child processes of pid (its Python workers), from
// every thread's children file: Go starts processes from any thread.
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			var n int
			fmt.Sscanf(f, "%d", &n)
			out = append(out, n)
		}
	}
	return out
}
