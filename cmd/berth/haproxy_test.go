package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// haproxyConfig balances two berth instances, checking each one's /readyz
// on its admin port every 200 ms: one failed check takes an instance out,
// one good check puts it back. A request whose connection fails, or that
// gets nothing back, is retried on the other instance. Each connection to
// berth starts with a PROXY protocol v2 header carrying the client's
// address (the checks send none: the admin listener takes plain HTTP).
func haproxyConfig(dir string, front int, apps, admins [2]int) string {
	return fmt.Sprintf(`global
  maxconn 1000
  stats socket %s mode 600 level admin

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout check 1s
  retries 3
  option redispatch
  retry-on conn-failure empty-response response-timeout

frontend fe
  bind 127.0.0.1:%d
  default_backend be

backend be
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  server b1 127.0.0.1:%d send-proxy-v2 check port %d inter 200ms fall 1 rise 1
  server b2 127.0.0.1:%d send-proxy-v2 check port %d inter 200ms fall 1 rise 1
`, filepath.Join(dir, "stats.sock"), front, apps[0], admins[0], apps[1], admins[1])
}

// startHAProxy runs Debian's haproxy in the foreground on cfg until the
// test ends, and returns its stats socket.
func startHAProxy(t *testing.T, cfg string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (apt-get install haproxy): the load-balancer test runs it")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &e2e.SyncBuffer{}
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting haproxy: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("haproxy logs:\n%s", logs)
		}
	})
	return e2e.RegexpFind(cfg, `stats socket (\S+)`)
}

// haproxyStat returns backend be's row for server from HAProxy's `show
// stat` CSV, by column name.
func haproxyStat(sock, server string) (map[string]string, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	names := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		if len(f) == len(names) && f[0] == "be" && f[1] == server {
			row := map[string]string{}
			for i, n := range names {
				row[n] = f[i]
			}
			return row, nil
		}
	}
	return nil, fmt.Errorf("no server be/%s in show stat:\n%s", server, b)
}

// waitServer waits until HAProxy's check says server is status ("UP" or
// "DOWN") and returns how long that took.
func waitServer(t *testing.T, sock, server, status string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		row, err := haproxyStat(sock, server)
		if err == nil && strings.HasPrefix(row["status"], status) {
			return time.Since(start)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("HAProxy did not see %s %s within 20 s: %v %v", server, status, row["status"], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHAProxy: two berth instances behind HAProxy, under load from 16
// keep-alive connections, are restarted in turn (SIGTERM with drain_delay
// 1s, a new instance on the same ports): HAProxy's readiness check takes
// each out before it stops accepting, and not one request fails. With
// the PROXY protocol, the app sees the client's own address (127.0.0.2,
// not HAProxy's 127.0.0.1).
func TestHAProxy(t *testing.T) {
	t.Parallel()
	e2e.SystemPython(t)
	var apps, admins [2]int
	for i := range 2 {
		apps[i], admins[i] = e2e.FreePort(t), e2e.FreePort(t)
	}
	front := e2e.FreePort(t)
	sock := startHAProxy(t, haproxyConfig(t.TempDir(), front, apps, admins))
	// The client connects from 127.0.0.2, HAProxy from 127.0.0.1.
	const client, listenerExtra = "127.0.0.2", `proxy_protocol = true
  trusted_proxies = ["127.0.0.1"]`
	start := func(i int, name string) *e2e.Instance {
		cfg := whoamiConfig(t, fmt.Sprintf("127.0.0.1:%d", apps[i]), fmt.Sprintf("127.0.0.1:%d", admins[i]),
			fmt.Sprintf("INSTANCE = %q", name), listenerExtra, `drain_delay = "1s"`)
		return e2e.StartBerth(t, cfg)
	}
	berths := []*e2e.Instance{start(0, "b1"), start(1, "b2")}
	for _, s := range []string{"b1", "b2"} {
		waitServer(t, sock, s, "UP")
	}
	load := startClient(fmt.Sprintf("http://127.0.0.1:%d/", front), 16, "127.0.0.2", func(body string) string { return body })
	defer load.stop()
	time.Sleep(time.Second) // a second of load through both before the first stop
	for i, name := range []string{"b1", "b2"} {
		sent := time.Now()
		berths[i].Cmd.Process.Signal(syscall.SIGTERM)
		down := waitServer(t, sock, name, "DOWN")
		<-berths[i].Done
		stopped := time.Since(sent)
		berths[i] = start(i, name+"-2")
		up := waitServer(t, sock, name, "UP")
		t.Logf("%s: out of rotation %d ms after SIGTERM, exited after %d ms; the new instance back in %d ms after it said ready",
			name, down.Milliseconds(), stopped.Milliseconds(), up.Milliseconds())
		time.Sleep(time.Second) // and a second of load through both again
	}
	load.stop()
	checkHAProxyLoad(t, load, sock, client)
}

// checkHAProxyLoad checks the load's outcome: no failure, every instance
// served some, each saw the client's address as want.
func checkHAProxyLoad(t *testing.T, load *loadClient, sock, want string) {
	t.Helper()
	var names []string
	for body := range load.by {
		names = append(names, body)
	}
	sort.Strings(names)
	var counts []string
	for _, body := range names {
		counts = append(counts, fmt.Sprintf("%s: %d", body, load.by[body]))
		if _, addr, _ := strings.Cut(body, " "); addr != want {
			t.Errorf("the app saw the client as %q, want %q", addr, want)
		}
	}
	// HAProxy's retries would hide a refused connection from the client:
	// with drain_delay none may be needed (with drain_delay 0 this run
	// had hundreds of redispatches and no failed request).
	var retries []string
	for _, s := range []string{"b1", "b2"} {
		row, err := haproxyStat(sock, s)
		if err != nil {
			t.Fatal(err)
		}
		retries = append(retries, fmt.Sprintf("%s %s retries %s redispatches", s, row["wretr"], row["wredis"]))
		if row["wretr"] != "0" || row["wredis"] != "0" {
			t.Errorf("HAProxy retried requests on %s: %s retries, %s redispatches; want none", s, row["wretr"], row["wredis"])
		}
	}
	t.Logf("%d requests ok, %d failed; per instance %s; HAProxy: %s", load.ok.Load(), len(load.failures), strings.Join(counts, ", "), strings.Join(retries, ", "))
	for i, f := range load.failures {
		if i < 5 {
			t.Errorf("failed: %s", f.err)
		}
	}
	if len(names) != 4 {
		t.Errorf("instances that served: %v, want b1, b2, b1-2 and b2-2", names)
	}
}
