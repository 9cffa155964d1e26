// Package e2e is the harness of berth's end-to-end tests (cmd/berth): it
// builds the real berth binary once (Main, from a TestMain), starts it on a
// configuration with real Python workers (StartBerth, Launch...), and talks
// HTTP to it over loopback (Get, Raw, ReadResponse). It lives in a package
// of its own so that the chapters of the end-to-end suite (HTTP, bodies,
// supervision, systemd, packages) share one harness and keep in their own
// files only what they alone use.
//
// Everything here is safe for tests that call t.Parallel: an Instance
// listens on a port the kernel picks, and FreePort never hands out the same
// port twice in one process.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/control"
	"github.com/berthd/berth/server"
)

// Bin is the berth binary under test, built by Main.
var Bin string

// BuildFlags are extra `go build` flags for the binary under test (race.go
// adds -race when the tests themselves run under the race detector).
var BuildFlags []string

// Main builds the berth command in pkg (a directory, "." for the test's
// own) into a temporary directory, runs the tests, removes the binary and
// returns the exit code for os.Exit: a package's TestMain is
// `os.Exit(e2e.Main(m, "."))`.
func Main(m *testing.M, pkg string) int {
	dir, err := os.MkdirTemp("", "berth-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	Bin = filepath.Join(dir, "berth")
	build := exec.Command("go", append(append([]string{"build"}, BuildFlags...), "-o", Bin, pkg)...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building berth:", err)
		return 1
	}
	return m.Run()
}

// SystemPython is the interpreter the tests run apps with: Debian's, which
// is where python3-flask is installed.
func SystemPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on this machine: the end-to-end tests need a CPython ≥ 3.8 (apt-get install python3)")
	}
	return p
}

func NeedFlask(t *testing.T, python string) {
	t.Helper()
	if err := exec.Command(python, "-c", "import flask").Run(); err != nil {
		t.Skipf("%s cannot import flask: install Debian's python3-flask", python)
	}
}

// SyncBuffer collects berth's stderr while tests read it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Instance is one running `berth serve`.
type Instance struct {
	T      *testing.T
	Cmd    *exec.Cmd
	Addr   string // host:port of the first listener
	Config string // the configuration file
	Logs   *SyncBuffer
	Done   chan struct{}
	Err    error // from Wait, once done is closed
}

// AppConfig is the usual test configuration: one listener on a free
// loopback port, one app from testdata. extra goes inside the app block,
// listenerExtra inside the listener block.
func AppConfig(python, module, extra, listenerExtra string) string {
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

// ProbeApp is an app block for testdata's probe app with one worker, for
// configurations of several apps; extra goes inside the block.
func ProbeApp(name, python, extra string) string {
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

// StartBerth writes config to a file and runs berth on it until it logs
// "ready"; the test fails if that does not happen within 30 s.
func StartBerth(t *testing.T, config string) *Instance {
	t.Helper()
	return StartBerthUnder(t, config)
}

// StartBerthUnder is StartBerth under a wrapper command (LaunchUnder).
func StartBerthUnder(t *testing.T, config string, wrapper ...string) *Instance {
	t.Helper()
	inst := LaunchUnder(t, config, wrapper...)
	if err := inst.WaitFor(`INFO  ready `, 30*time.Second); err != nil {
		t.Fatalf("berth did not become ready: %v\nlogs:\n%s", err, inst.Logs)
	}
	m := regexp.MustCompile(`listening listener=http addr=(\S+)`).FindStringSubmatch(inst.Logs.String())
	if m == nil {
		t.Fatalf("no listening line in logs:\n%s", inst.Logs)
	}
	inst.Addr = m[1]
	return inst
}

// Launch starts berth without waiting for it.
func Launch(t *testing.T, config string) *Instance {
	t.Helper()
	return LaunchUnder(t, config)
}

// LaunchUnder starts berth under a command such as prlimit (its words
// then berth's), without waiting for it.
func LaunchUnder(t *testing.T, config string, wrapper ...string) *Instance {
	t.Helper()
	if len(wrapper) == 0 {
		return LaunchWith(t, config, nil)
	}
	return LaunchWith(t, config, func(c *exec.Cmd) {
		c.Args = append(append([]string(nil), wrapper...), c.Args...)
		c.Args[len(wrapper)] = c.Path
		c.Path = wrapper[0]
	})
}

// LaunchWith is Launch with prepare, when not nil, changing the command
// (its environment, its files) before it starts.
func LaunchWith(t *testing.T, config string, prepare func(*exec.Cmd)) *Instance {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berth.hcl")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	inst := &Instance{T: t, Config: path, Logs: &SyncBuffer{}, Done: make(chan struct{})}
	inst.Cmd = exec.Command(Bin, "serve", "--log-level", "debug", path)
	inst.Cmd.Stdout = inst.Logs
	inst.Cmd.Stderr = inst.Logs
	if prepare != nil {
		prepare(inst.Cmd)
	}
	if err := inst.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		inst.Err = inst.Cmd.Wait()
		close(inst.Done)
	}()
	t.Cleanup(func() {
		inst.Stop()
		// A binary built with -race reports races on stderr and exits 66.
		if strings.Contains(inst.Logs.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector reported a data race in berth")
		}
		if ee, ok := inst.Err.(*exec.ExitError); ok && ee.ExitCode() == 66 {
			t.Errorf("berth exited with the race detector's status 66")
		}
		if t.Failed() {
			t.Logf("berth logs:\n%s", inst.Logs)
		}
	})
	return inst
}

// WaitFor waits until the logs match re, or berth exits, or d passes.
func (i *Instance) WaitFor(re string, d time.Duration) error {
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if rx.MatchString(i.Logs.String()) {
			return nil
		}
		select {
		case <-i.Done:
			if rx.MatchString(i.Logs.String()) {
				return nil
			}
			return fmt.Errorf("berth exited (%v) before logging %q", i.Err, re)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no log line matching %q within %s", re, d)
}

// Stop sends SIGTERM and waits for berth to exit, killing it after 20 s.
func (i *Instance) Stop() {
	select {
	case <-i.Done:
		return
	default:
	}
	_ = i.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-i.Done:
	case <-time.After(20 * time.Second):
		_ = i.Cmd.Process.Kill()
		<-i.Done
		i.T.Errorf("berth did not exit within 20 s of SIGTERM")
	}
}

// PortOf is the port of a host:port address.
func PortOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func (i *Instance) URL(path string) string { return "http://" + i.Addr + path }

// Get does a GET with a fresh client and returns status and body.
func (i *Instance) Get(path string) (int, string) {
	i.T.Helper()
	resp, err := HTTPClient.Get(i.URL(path))
	if err != nil {
		i.T.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		i.T.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

var HTTPClient = &http.Client{Timeout: 30 * time.Second}

// Raw sends bytes on a new connection, half-closes nothing, and returns
// everything berth answers until it closes the connection or d passes.
func (i *Instance) Raw(req string, d time.Duration) string {
	i.T.Helper()
	c, err := net.Dial("tcp", i.Addr)
	if err != nil {
		i.T.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, req); err != nil {
		i.T.Fatalf("writing request: %v", err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// ReadResponse reads one response from br.
func ReadResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
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

// StatusOf returns the status code of a raw response, or 0.
func StatusOf(raw string) int {
	var code int
	if _, err := fmt.Sscanf(raw, "HTTP/1.1 %d", &code); err != nil {
		return 0
	}
	return code
}

// RegexpFind returns the first submatch of re in s, or "".
func RegexpFind(s, re string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// PIDAlive reports whether pid is a running (not zombie) process.
func PIDAlive(pid int) bool {
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

// ChildPIDs lists the child processes of pid (its Python workers), from
// every thread's children file: Go starts processes from any thread.
func ChildPIDs(pid int) []int {
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

// AdminAddr is where the instance's admin listener listens, from its
// logs (waiting for the line while it starts).
func (i *Instance) AdminAddr() string {
	i.T.Helper()
	if err := i.WaitFor(`admin listening addr=`, 30*time.Second); err != nil {
		i.T.Fatalf("no admin listener: %v\n%s", err, i.Logs)
	}
	return RegexpFind(i.Logs.String(), `admin listening addr=(\S+)`)
}

// PID asks the probe app (testdata/probe.py) which worker answers.
func (i *Instance) PID() int {
	i.T.Helper()
	var v struct{ PID int }
	code, body := i.Get("/pid")
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		i.T.Fatalf("GET /pid = %d %q", code, body)
	}
	return v.PID
}

// givenPorts are the ports FreePort handed out in this process.
var givenPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// FreePort returns a loopback TCP port that nothing listens on, for a
// configuration that must name its port (a systemd socket unit, nginx's
// upstream). It is closed again before the caller binds it, so two things
// guard the gap, which lasts seconds when a container boots meanwhile:
// the port is below the kernel's ephemeral range (32768 and up by default),
// where neither a listener on port 0 nor the source port of an outgoing
// connection (thousands of them while a parallel test floods berth) can
// land; and a port is never handed out twice in one process.
func FreePort(t testing.TB) int {
	t.Helper()
	givenPorts.Lock()
	defer givenPorts.Unlock()
	low, high := 20000, ephemeralLow()-1
	for range 1000 {
		port := low + rand.IntN(high-low+1)
		if givenPorts.m[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		givenPorts.m[port] = true
		return port
	}
	t.Fatalf("no free port in %d-%d after 1000 tries", low, high)
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range, or
// 32768 (Linux's default) when it cannot be read or leaves too little
// room below it.
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 21000 {
				low = n
			}
		}
	}
	return low
}

// Status asks the running instance for its state through its control
// socket, as `berth status --json` does (without systemd's view of the
// unit): in-process, so that polling it (WaitStatus) sees a state a few
// milliseconds old rather than a process start's worth.
func (i *Instance) Status() server.Status {
	i.T.Helper()
	path, err := control.SocketPath(i.Config)
	if err != nil {
		i.T.Fatalf("control socket of %s: %v", i.Config, err)
	}
	resp, err := control.Call(path, "status", 10*time.Second)
	if err == nil && resp.Error != "" {
		err = errors.New(resp.Error)
	}
	if err != nil {
		i.T.Fatalf("berth status: %v", err)
	}
	var st server.Status
	if err := json.Unmarshal(resp.Result, &st); err != nil {
		i.T.Fatalf("status JSON: %v\n%s", err, resp.Result)
	}
	return st
}

// Reload runs `berth reload CONFIG` and returns its exit code and output
// (stdout, then stderr).
func (i *Instance) Reload() (int, string) {
	i.T.Helper()
	var out, errb strings.Builder
	cmd := exec.Command(Bin, "reload", i.Config)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		i.T.Fatalf("berth reload: %v", err)
	}
	return code, out.String() + errb.String()
}

// WaitUntil polls cond every 20 ms until it holds, or fails the test
// after d saying what it waited for. Tests wait this way for something to
// happen, rather than sleeping for a time it usually takes: a fixed sleep
// is too long on an idle machine and too short on a loaded one.
func WaitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitStatus waits, polling Status, until cond holds of the
// instance's state (a worker busy, requests queued, connections closed),
// or fails the test after d saying what it waited for and the last state.
func (i *Instance) WaitStatus(d time.Duration, what string, cond func(server.Status) bool) server.Status {
	i.T.Helper()
	deadline := time.Now().Add(d)
	for {
		st := i.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			i.T.Fatalf("not within %s: %s; berth status: %d workers, %d busy, %d queued, %d served",
				d, what, st.Workers, st.Busy, st.Queued, st.Served)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
