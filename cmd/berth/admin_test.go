package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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

// whoamiApp answers with the instance it runs in (INSTANCE in its
// environment) and the client address it was given; BOOT_DELAY slows its
// import.
const whoamiApp = `import os, time
time.sleep(float(os.environ.get("BOOT_DELAY", "0")))
INSTANCE = os.environ.get("INSTANCE", "")
def app(environ, start_response):
    body = ("%s %s" % (INSTANCE, environ["REMOTE_ADDR"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`

// whoamiConfig is a configuration serving whoamiApp on listen with an
// admin block on admin; env goes into the app's env, listenerExtra and
// adminExtra into their blocks.
func whoamiConfig(t *testing.T, listen, admin, env, listenerExtra, adminExtra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "whoami.py"), []byte(whoamiApp), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`
listener "http" {
  address = %q
  %s
}
admin {
  address = %q
  %s
}
app "whoami" {
  module  = "whoami:app"
  python  = %q
  chdir   = %q
  workers = 2
  env     = { %s }
}
`, listen, listenerExtra, admin, adminExtra, e2e.SystemPython(t), dir, env)
}

// probe asks an admin endpoint, as a load balancer's check would: a new
// connection each time. code is 0 when the connection failed.
func probe(method, url string) (code int, body string, err error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Close = true
	resp, err := probeClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

var probeClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// TestAdminEndpoints: /readyz says 503 while the app imports (slowly),
// then 200; /healthz follows the supervision loop; anything else is 404;
// `berth status` says the same.
func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	b := e2e.Launch(t, whoamiConfig(t, "127.0.0.1:0", "127.0.0.1:0", `BOOT_DELAY = "2"`, "", ""))
	admin := "http://" + b.AdminAddr()
	code, body, err := probe("GET", admin+"/readyz")
	if code != 503 || body != "starting: apps are booting\n" {
		t.Errorf("/readyz while the app imports = %d %q %v, want 503 starting", code, body, err)
	}
	if code, body, _ := probe("GET", admin+"/healthz"); code != 503 || !strings.HasPrefix(body, "starting") {
		t.Errorf("/healthz while the app imports = %d %q, want 503 starting", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for code != 200 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		code, body, _ = probe("GET", admin+"/readyz")
	}
	if code != 200 || body != "ok\n" {
		t.Fatalf("/readyz after start-up = %d %q, want 200 ok", code, body)
	}
	if err := b.WaitFor(`INFO  ready `, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"GET", "/readyz", 200, "ok\n"},
		{"HEAD", "/readyz", 200, ""},
		{"HEAD", "/healthz", 200, ""},
		{"GET", "/", 404, "404 page not found\n"},
		{"GET", "/nothing", 404, "404 page not found\n"},
		{"POST", "/readyz", 405, "Method Not Allowed\n"},
	}
	for _, tc := range cases {
		if code, body, err := probe(tc.method, admin+tc.path); code != tc.code || body != tc.body {
			t.Errorf("%s %s = %d %q %v, want %d %q", tc.method, tc.path, code, body, err, tc.code, tc.body)
		}
	}
	st := b.Status()
	if st.Readiness != "ready" || st.ReadyReason != "" || "http://"+st.Admin != admin {
		t.Errorf("status: readiness %q (%q), admin %q", st.Readiness, st.ReadyReason, st.Admin)
	}
	var out, errb strings.Builder
	if code := run([]string{"status", b.Config}, &out, &errb); code != 0 || !strings.Contains(out.String(), "readiness: ready; admin on 127.0.0.1:") {
		t.Errorf("berth status = %d:\n%s%s", code, out.String(), errb.String())
	}
	// The app's listener knows nothing of the admin paths.
	if code, _, _ := probe("GET", "http://"+e2e.RegexpFind(b.Logs.String(), `listening listener=http addr=(\S+)`)+"/readyz"); code != 200 {
		t.Errorf("the app's own /readyz = %d, want the app's 200", code)
	}
}

// loadClient sends GETs on keep-alive connections, each from its own
// goroutine, until stopped, and keeps when things happened: the test of
// a stop needs to know what failed when.
type loadClient struct {
	ok atomic.Int64
	// by counts successful responses by body prefix (see key).
	mu       sync.Mutex
	by       map[string]int64
	failures []failure
	refused  time.Time // first refused connect
	stopCh   chan struct{}
	wg       sync.WaitGroup
}

type failure struct {
	at  time.Time
	err string
}

// startClient runs conns clients against url, from local (a loopback
// address to bind, or ""). A 200 counts under key(body); anything else,
// or a transport error, is a failure, a refused connect one too.
func startClient(url string, conns int, local string, key func(string) string) *loadClient {
	c := &loadClient{by: map[string]int64{}, stopCh: make(chan struct{})}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	for range conns {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			tr := &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 1}
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			defer tr.CloseIdleConnections()
			for {
				select {
				case <-c.stopCh:
					return
				default:
				}
				c.one(client, url, key)
			}
		}()
	}
	return c
}

// one sends one request and records its outcome.
func (c *loadClient) one(client *http.Client, url string, key func(string) string) {
	resp, err := client.Get(url)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d: %.100s", resp.StatusCode, b)
		}
		if err == nil {
			c.ok.Add(1)
			c.mu.Lock()
			c.by[key(string(b))]++
			c.mu.Unlock()
			return
		}
	}
	now := time.Now()
	c.mu.Lock()
	if errors.Is(err, syscall.ECONNREFUSED) && c.refused.IsZero() {
		c.refused = now
	}
	c.failures = append(c.failures, failure{now, err.Error()})
	c.mu.Unlock()
	// A refused connect fails at once: do not spin on it.
	time.Sleep(5 * time.Millisecond)
}

// stop ends the load and waits for the clients.
func (c *loadClient) stop() {
	select {
	case <-c.stopCh:
	default:
		close(c.stopCh)
	}
	c.wg.Wait()
}

// pollReady asks url every interval until ctx ends and returns when it
// first answered something other than 200, and every answer that was not
// 200 (a failed connection is code 0).
func pollReady(ctx context.Context, url string, interval time.Duration) (first func() time.Time, bad func() []string) {
	var mu sync.Mutex
	var at time.Time
	var answers []string
	go func() {
		for ctx.Err() == nil {
			code, body, err := probe("GET", url)
			if code != 200 {
				mu.Lock()
				if at.IsZero() {
					at = time.Now()
				}
				answers = append(answers, fmt.Sprintf("%d %q %v", code, body, err))
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}()
	first = func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
	bad = func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), answers...) }
	return first, bad
}

// TestDrainDelay: under load, SIGTERM with drain_delay = "2s" turns
// /readyz to 503 at once, while every request is served as before for
// those 2 s; only then does berth stop accepting (connections refused)
// and exit.
func TestDrainDelay(t *testing.T) {
	// Serial: it times /readyz's turn to 200 ms of SIGTERM.
	const delay = 2 * time.Second
	b := e2e.StartBerth(t, whoamiConfig(t, "127.0.0.1:0", "127.0.0.1:0", "", "", `drain_delay = "2s"`))
	admin := "http://" + b.AdminAddr()
	load := startClient(b.URL("/"), 6, "", func(string) string { return "" })
	defer load.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first503, answers := pollReady(ctx, admin+"/readyz", 50*time.Millisecond)
	time.Sleep(time.Second) // a second of polls, every one of which must be 200
	if bad := answers(); len(bad) > 0 {
		t.Fatalf("/readyz not 200 before the stop: %v", bad)
	}
	sent := time.Now()
	b.Cmd.Process.Signal(syscall.SIGTERM)
	st := b.WaitStatus(5*time.Second, "berth status no longer ready", func(st server.Status) bool { return st.Readiness != "ready" })
	if st.Readiness != "draining" || st.ReadyReason != "draining: berth is stopping" {
		t.Errorf("berth status while draining: %q (%q)", st.Readiness, st.ReadyReason)
	}
	select {
	case <-b.Done:
	case <-time.After(20 * time.Second):
		t.Fatal("berth did not stop")
	}
	cancel()
	load.stop()
	if b.Err != nil {
		t.Errorf("exit: %v", b.Err)
	}
	readyAt := first503()
	load.mu.Lock()
	refused, failures := load.refused, load.failures
	load.mu.Unlock()
	if readyAt.IsZero() || readyAt.Sub(sent) > 200*time.Millisecond {
		t.Errorf("/readyz turned at %v after SIGTERM, want at once (the poll is every 50 ms)", readyAt.Sub(sent))
	}
	if bad := answers(); len(bad) == 0 || !strings.HasPrefix(bad[0], `503 "draining: berth is stopping\n"`) {
		t.Errorf("/readyz after SIGTERM: %v, want 503 draining first", bad)
	}
	if refused.IsZero() || !refused.After(readyAt) {
		t.Fatalf("first refused connect at %v, /readyz 503 at %v: want the 503 first", refused, readyAt)
	}
	t.Logf("%d requests served; /readyz 503 %d ms after SIGTERM, first refused connect %d ms after the 503",
		load.ok.Load(), readyAt.Sub(sent).Milliseconds(), refused.Sub(readyAt).Milliseconds())
	for _, f := range failures {
		// Once berth stops accepting, a connect fails: refused, or reset
		// when the kernel had completed it in the listen queue just before
		// berth closed the socket it bound (the kernel resets those).
		gone := strings.Contains(f.err, "connection refused") || strings.Contains(f.err, "connection reset by peer")
		if f.at.Before(sent.Add(delay)) || !gone {
			t.Errorf("failed %v after SIGTERM (drain_delay %s): %s", f.at.Sub(sent).Round(time.Millisecond), delay, f.err)
		}
	}
}

// TestAdminReload: /readyz answers 200 throughout reloads (the old
// generation serves until the new one is ready); an unchanged admin
// address keeps its socket, a busy one fails the reload and changes
// nothing, a new one moves the admin listener.
func TestAdminReload(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, whoamiConfig(t, "127.0.0.1:0", "127.0.0.1:0", `BOOT_DELAY = "0.5"`, "", ""))
	addr := b.AdminAddr()
	ctx, cancel := context.WithCancel(context.Background())
	_, answers := pollReady(ctx, "http://"+addr+"/readyz", 20*time.Millisecond)
	for i := range 3 {
		if code, out := b.Reload(); code != 0 {
			t.Fatalf("reload %d: %d %s", i, code, out)
		}
	}
	cancel()
	if bad := answers(); len(bad) > 0 {
		t.Errorf("/readyz not 200 during reloads: %v", bad)
	}
	if n := strings.Count(b.Logs.String(), "admin listening"); n != 1 {
		t.Errorf("admin listener bound %d times across reloads of the same address, want once", n)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	move := func(to string) {
		os.WriteFile(b.Config, []byte(whoamiConfig(t, "127.0.0.1:0", to, `BOOT_DELAY = "0.5"`, "", "")), 0o644)
	}
	move(busy.Addr().String())
	if code, out := b.Reload(); code != 1 || !strings.Contains(out, "admin block") || !strings.Contains(out, "address already in use") {
		t.Errorf("reload onto a busy admin address = %d %s, want a failure naming the admin block", code, out)
	}
	if code, _, err := probe("GET", "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("/readyz on the old address after a failed reload = %d %v", code, err)
	}
	free := fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))
	move(free)
	if code, out := b.Reload(); code != 0 || !strings.Contains(out, "admin on "+free) {
		t.Fatalf("reload moving the admin listener = %d %s", code, out)
	}
	if code, _, err := probe("GET", "http://"+free+"/readyz"); code != 200 {
		t.Errorf("/readyz on the new address = %d %v", code, err)
	}
	waitRefused(t, "tcp", addr)
	// And onto a Unix socket.
	path := filepath.Join(t.TempDir(), "admin.sock")
	move("unix:" + path)
	if code, out := b.Reload(); code != 0 || !strings.Contains(out, "admin on "+path) {
		t.Fatalf("reload moving the admin listener to a Unix socket = %d %s", code, out)
	}
	unixClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	resp, err := unixClient.Get("http://admin/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/readyz on the Unix socket: %v %v", resp, err)
	}
	resp.Body.Close()
	waitRefused(t, "tcp", free)
}

// waitRefused waits until nothing accepts on addr any more.
func waitRefused(t *testing.T, network, addr string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Errorf("the old admin address %s still accepts after the move", addr)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAdminPassedSocket: a socket systemd passes as berth-admin is the
// admin listener; the admin block's own address is not bound.
func TestAdminPassedSocket(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	own := fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))
	b := e2e.LaunchWith(t, whoamiConfig(t, "127.0.0.1:0", own, "", "", ""), func(cmd *exec.Cmd) {
		// LISTEN_PID must be berth's own pid: the shell's, which exec keeps.
		cmd.Path = "/bin/sh"
		cmd.Args = append([]string{"/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`}, cmd.Args...)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=berth-admin")
		cmd.ExtraFiles = []*os.File{f}
	})
	if err := b.WaitFor(`INFO  ready `, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := b.AdminAddr(); got != ln.Addr().String() || !strings.Contains(b.Logs.String(), "passed_by_systemd=true") {
		t.Errorf("admin listening on %s, want the passed socket %s", got, ln.Addr())
	}
	if code, body, err := probe("GET", "http://"+ln.Addr().String()+"/readyz"); code != 200 {
		t.Errorf("/readyz on the passed socket = %d %q %v", code, body, err)
	}
	if c, err := net.DialTimeout("tcp", own, time.Second); err == nil {
		c.Close()
		t.Errorf("berth bound the admin block's address %s beside the passed socket", own)
	}
	if strings.Contains(b.Logs.String(), "no listener uses") {
		t.Errorf("the passed admin socket is reported unused")
	}
}

// TestDrainCutShort: while berth drains, a reload is refused, a second
// SIGTERM changes nothing, and SIGINT stops at once.
func TestDrainCutShort(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, whoamiConfig(t, "127.0.0.1:0", "127.0.0.1:0", "", "", `drain_delay = "30s"`))
	b.Cmd.Process.Signal(syscall.SIGTERM)
	if err := b.WaitFor(`draining: /readyz answers 503`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if code, out := b.Reload(); code != 1 || !strings.Contains(out, "berth is shutting down") {
		t.Errorf("reload while draining = %d %s, want refused", code, out)
	}
	b.Cmd.Process.Signal(syscall.SIGTERM)
	if err := b.WaitFor(`signal ignored: draining signal=terminated`, 5*time.Second); err != nil {
		t.Error(err)
	}
	if code, _, err := probe("GET", b.URL("/")); code != 200 {
		t.Errorf("the app while draining = %d %v, want served", code, err)
	}
	start := time.Now()
	b.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-b.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT did not cut the drain short")
	}
	if d := time.Since(start); d > 5*time.Second || !strings.Contains(b.Logs.String(), "shutting down now signal=interrupt") {
		t.Errorf("SIGINT while draining stopped after %s", d)
	}
}
