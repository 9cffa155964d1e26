package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// The tests in this file put Debian's nginx in front of berth's Unix
// socket, as on a real host: nginx's master runs as root, its workers as
// www-data, and a worker can connect only if the socket's mode and group
// let www-data write to it.

// nginxConfig is a whole nginx configuration of the tests' own (never the
// host's /etc/nginx): workers as user (www-data on Debian, nginx on RPM
// distributions), every file under dir, one server on 127.0.0.1:port
// proxying to the Unix socket sock.
func nginxConfig(user, dir, sock string, port int) string {
	return fmt.Sprintf(`user %[4]s;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d;
    location / {
      proxy_pass http://unix:%[3]s;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`, dir, port, sock, user)
}

// needNginxAsWWWData skips unless this test can run nginx with workers
// as www-data (root, the group, the binary), and returns www-data's gid.
func needNginxAsWWWData(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: nginx switches its workers to www-data, and berth gives its socket to the group www-data")
	}
	g, err := user.LookupGroup("www-data")
	if err != nil {
		t.Skip("no group www-data on this machine (Debian's base-passwd makes it)")
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx is not installed (apt-get install nginx)")
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// startNginx runs nginx on config (in dir) in the foreground and waits
// until it accepts on 127.0.0.1:port; the test's cleanup stops it.
func startNginx(t *testing.T, dir string, port int) {
	t.Helper()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConfig("www-data", dir, filepath.Join(dir, "site.sock"), port)), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e: the error log before the configuration is read (else
	// /var/log/nginx/error.log, the host's).
	cmd := exec.Command("nginx", "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf, "-g", "daemon off;")
	out := &e2e.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // nginx's fast shutdown, workers included
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nnginx error.log:\n%s", out, b)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("nginx exited: %s", out)
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nginx did not listen on 127.0.0.1:%d within 10 s: %s", port, out)
}

// getVia GETs url and returns the status (0 when the request failed)
// and body.
func getVia(url string) (int, string) {
	resp, err := e2e.HTTPClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSocketBehindNginx: berth binds its Unix socket with socket_group =
// "www-data" and mode 0660, and nginx's www-data workers reach the app
// through it (200). A reload to socket_mode "0600" changes the same
// socket in place (no new bind) and shuts nginx out (502, "Permission
// denied" in its log); a reload back lets it in again.
func TestSocketBehindNginx(t *testing.T) {
	t.Parallel()
	gid := needNginxAsWWWData(t)
	// Every directory on the socket's path must let www-data through.
	dir, err := os.MkdirTemp("", "berth-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "site.sock")
	config := func(mode string) string {
		extra := fmt.Sprintf("socket_group = \"www-data\"\n  socket_mode = %q", mode)
		return strings.Replace(e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", extra), `"127.0.0.1:0"`, fmt.Sprintf("%q", "unix:"+sock), 1)
	}
	b := e2e.StartBerth(t, config("0660"))
	ino := checkSocketFile(t, sock, 0o660, gid)

	port := e2e.FreePort(t)
	startNginx(t, dir, port)
	url := fmt.Sprintf("http://127.0.0.1:%d/env", port)
	if code, body := getVia(url); code != 200 || !strings.Contains(body, `"REQUEST_METHOD": "GET"`) {
		t.Fatalf("GET through nginx with the socket 0660 group www-data: %d %q", code, body)
	}

	for _, step := range []struct {
		mode string
		perm os.FileMode
		want int
	}{
		{"0600", 0o600, 502},
		{"0660", 0o660, 200},
	} {
		if err := os.WriteFile(b.Config, []byte(config(step.mode)), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out := b.Reload(); code != 0 || !strings.Contains(out, "new socket mode or owner for listener http") {
			t.Fatalf("reload to socket_mode %s = %d: %s", step.mode, code, out)
		}
		if got := checkSocketFile(t, sock, step.perm, gid); got != ino {
			t.Errorf("socket_mode %s: the socket file is a new one (inode %d, was %d); want the bound socket changed in place", step.mode, got, ino)
		}
		if code, body := getVia(url); code != step.want {
			t.Errorf("GET through nginx with the socket %s: %d %q, want %d", step.mode, code, body, step.want)
		}
		if step.want == 502 {
			if log, _ := os.ReadFile(filepath.Join(dir, "error.log")); !strings.Contains(string(log), "(13: Permission denied) while connecting to upstream") {
				t.Errorf("nginx's 502 was not its workers being refused the socket; error.log:\n%s", log)
			}
		}
	}
}

// checkSocketFile checks the mode and group of the socket file at path
// (its user is berth's, root) and returns its inode.
func checkSocketFile(t *testing.T, path string, perm os.FileMode, gid int) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != perm || int(st.Gid) != gid || int(st.Uid) != os.Geteuid() {
		t.Errorf("%s is %v %d:%d, want a socket %04o %d:%d", path, fi.Mode(), st.Uid, st.Gid, perm, os.Geteuid(), gid)
	}
	return st.Ino
}

// TestSocketUnknownGroup: a socket_group that does not exist stops berth
// at start, naming the listener and the group, and leaves no socket file.
func TestSocketUnknownGroup(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "site.sock")
	cfg := strings.Replace(e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", `socket_group = "no-such-group-berth"`), `"127.0.0.1:0"`, fmt.Sprintf("%q", "unix:"+sock), 1)
	b := e2e.Launch(t, cfg)
	select {
	case <-b.Done:
	case <-time.After(30 * time.Second):
		t.Fatalf("berth kept running with an unknown socket_group:\n%s", b.Logs)
	}
	if ee, ok := b.Err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("berth exited with %v, want status 1", b.Err)
	}
	if want := `listener \"http\": socket group \"no-such-group-berth\": no such name on this system`; !strings.Contains(b.Logs.String(), want) {
		t.Errorf("berth's logs lack %q:\n%s", want, b.Logs)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("a socket file was left at %s: %v", sock, err)
	}
}
