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
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// buildPackage runs packaging/build.sh for version and returns the paths
// of the .deb and .rpm, copied out of dist/.
func buildPackage(t *testing.T, version, into string) (deb, rpm string) {
	t.Helper()
	cmd := exec.Command("../../packaging/build.sh")
	cmd.Env = append(os.Environ(), "BERTH_VERSION="+version)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("packaging/build.sh: %v\n%s", err, out)
	}
	deb = filepath.Join(into, "berth_"+version+"_amd64.deb")
	rpm = filepath.Join(into, "berth-"+version+".x86_64.rpm")
	for src, dst := range map[string]string{
		"../../dist/berth_" + version + "_amd64.deb":  deb,
		"../../dist/berth-" + version + ".x86_64.rpm": rpm,
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("build.sh did not produce %s: %v", src, err)
		}
		os.WriteFile(dst, b, 0o644)
	}
	return deb, rpm
}

// TestPackages builds the .deb and .rpm, lints them, then installs,
// upgrades, removes and purges the .deb under a real systemd while a site
// serves requests.
func TestPackages(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the package test builds packages and boots systemd")
	}
	c := e2e.BootContainer(t) // skips without root or nspawn
	tmp := t.TempDir()
	deb1, rpm1 := buildPackage(t, "0.1.0~test1", tmp)
	deb2, _ := buildPackage(t, "0.1.0~test2", tmp)

	t.Run("lintian finds no error", func(t *testing.T) {
		if _, err := exec.LookPath("lintian"); err != nil {
			t.Skip("lintian is not installed (apt-get install lintian)")
		}
		out, _ := exec.Command("lintian", deb1).CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "E:") {
				t.Errorf("lintian: %s", line)
			}
		}
		t.Logf("lintian:\n%s", out)
	})
	t.Run("rpm layout and scriptlets", func(t *testing.T) {
		if _, err := exec.LookPath("rpm"); err != nil {
			t.Skip("rpm is not installed (apt-get install rpm)")
		}
		out, err := exec.Command("rpm", "-qpl", rpm1).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -qpl: %v\n%s", err, out)
		}
		for _, f := range []string{"/usr/bin/berth", "/usr/lib/systemd/system/berth@.socket", "/usr/lib/systemd/system/berth@.service",
			"/usr/lib/sysusers.d/berth.conf", "/usr/lib/tmpfiles.d/berth.conf", "/etc/berth/example.hcl", "/usr/share/man/man1/berth.1.gz"} {
			if !strings.Contains(string(out), f+"\n") {
				t.Errorf("rpm lacks %s:\n%s", f, out)
			}
		}
		out, _ = exec.Command("rpm", "-qp", "--scripts", rpm1).CombinedOutput()
		for _, s := range []string{"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "systemd-sysusers berth.conf"} {
			if !strings.Contains(string(out), s) {
				t.Errorf("rpm scripts lack %q:\n%s", s, out)
			}
		}
		// berth@.socket's group nginx exists wherever nginx-filesystem is.
		out, _ = exec.Command("rpm", "-qpR", rpm1).CombinedOutput()
		if !strings.Contains(string(out), "nginx-filesystem\n") {
			t.Errorf("the rpm does not require nginx-filesystem (the group of berth@.socket):\n%s", out)
		}
		out, _ = exec.Command("rpm2cpio", rpm1).Output()
		if !strings.Contains(string(out), "SocketGroup=nginx\n") || strings.Contains(string(out), "SocketGroup=www-data\n") {
			t.Errorf("the rpm's berth@.socket does not give the socket to the group nginx")
		}
		out, _ = exec.Command("rpm", "-qp", "--configfiles", rpm1).CombinedOutput()
		if !strings.Contains(string(out), "/etc/berth/example.hcl") {
			t.Errorf("example.hcl is not a config file in the rpm: %s", out)
		}
	})

	for _, d := range []string{deb1, deb2} {
		b, _ := os.ReadFile(d)
		c.Write("/srv/pkg/"+filepath.Base(d), string(b))
	}
	shop, _ := os.ReadFile("../../examples/flask/shop.py")
	c.Write("/srv/demo/shop.py", string(shop))

	t.Run("install starts nothing by surprise", func(t *testing.T) {
		c.Must("dpkg", "-i", "/srv/pkg/"+filepath.Base(deb1))
		if out, _ := c.Exec("systemctl", "list-units", "--no-legend", "--plain", "berth@*"); strings.TrimSpace(out) != "" {
			t.Errorf("units running after install:\n%s", out)
		}
		if out, err := c.Exec("getent", "passwd", "berth"); err != nil || !strings.Contains(out, "/var/lib/berth") {
			t.Errorf("no berth user: %v %s", err, out)
		}
		if out := c.Must("/usr/bin/berth", "version"); !strings.Contains(out, "0.1.0~test1") {
			t.Errorf("berth version = %q", out)
		}
	})

	port := e2e.FreePort(t)
	c.Write("/etc/berth/demo.hcl", fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:%d"
}
app "shop" {
  module  = "shop:app"
  python  = "/usr/bin/python3"
  chdir   = "/srv/demo"
  workers = 2
}
`, port))
	s := &e2e.Site{C: c, Name: "berth@demo", Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}

	t.Run("a site through the template units", func(t *testing.T) {
		c.Must("/usr/bin/berth", "units", "--instance", "demo", "--dir", "/etc/systemd/system", "/etc/berth/demo.hcl")
		c.Must("systemctl", "daemon-reload")
		c.Must("systemctl", "enable", "--now", "berth@demo.socket")
		code, body, err := s.Get("/items")
		if err != nil || code != 200 || !strings.Contains(body, `"teapot"`) {
			t.Fatalf("GET /items through berth@demo.socket: %d %q %v", code, body, err)
		}
		s.WaitActive()
		if u := c.Prop("berth@demo.service", "User"); u != "berth" {
			t.Errorf("berth@demo runs as %q, want berth", u)
		}
	})

	t.Run("the packaged example site, on its Unix socket", func(t *testing.T) {
		c.Must("systemctl", "enable", "--now", "berth@example.socket")
		// The container's /run is its own; reach it through its root.
		sock := fmt.Sprintf("/proc/%d/root/run/berth/example.sock", c.PID)
		client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}}
		resp, err := client.Get("http://localhost/")
		if err != nil {
			t.Fatalf("GET through %s: %v", sock, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "Hello from berth!\n" {
			t.Errorf("example site: %d %q", resp.StatusCode, b)
		}
	})

	t.Run("nginx through the packaged socket", func(t *testing.T) {
		testPackagedSocketBehindNginx(t, c)
	})

	t.Run("reload under load", func(t *testing.T) {
		load := startLoad(s.URL+"/items", 4, status200, nil)
		for i := 0; i < 3; i++ {
			time.Sleep(300 * time.Millisecond) // load between reloads
			c.Must("systemctl", "reload", "berth@demo.service")
		}
		ok, failed, samples := load.finish()
		t.Logf("systemctl reload berth@demo ×3: %d ok, %d failed", ok, failed)
		if failed != 0 || ok == 0 {
			t.Errorf("%d failed: %v", failed, samples)
		}
	})

	t.Run("upgrade under load", func(t *testing.T) {
		// 50 keep-alive clients that never retry (keepAliveLoad) across
		// two package changes, each restarting berth@demo onto another
		// binary: the idle connections go through systemd's store.
		load := startKeepAlive(strings.TrimPrefix(s.URL, "http://"), "/items", 50, 20*time.Millisecond)
		for _, step := range []struct{ deb, version string }{{deb2, "0.1.0~test2"}, {deb1, "0.1.0~test1"}} {
			before := c.Prop("berth@demo.service", "MainPID")
			time.Sleep(500 * time.Millisecond) // load before each upgrade
			c.Must("dpkg", "-i", "/srv/pkg/"+filepath.Base(step.deb))
			s.WaitActive()
			if after := c.Prop("berth@demo.service", "MainPID"); after == before {
				t.Errorf("berth@demo was not restarted onto the new binary (MainPID %s)", after)
			}
			if out := c.Must("/usr/bin/berth", "version"); !strings.Contains(out, step.version) {
				t.Errorf("after dpkg -i %s: %q", filepath.Base(step.deb), out)
			}
		}
		time.Sleep(500 * time.Millisecond) // load after the last one
		ok, failed, dials, samples := load.finish()
		t.Logf("2 package changes under load from 50 keep-alive clients: %d ok, %d failed, %d connections opened", ok, failed, dials)
		if failed != 0 || ok == 0 {
			t.Errorf("%d requests failed during the upgrades: %v", failed, samples)
		}
	})

	t.Run("remove stops everything; purge cleans up", func(t *testing.T) {
		c.Must("dpkg", "-r", "berth")
		if st := c.Prop("berth@demo.service", "ActiveState"); st == "active" || st == "activating" {
			t.Errorf("berth@demo.service is %s after remove", st)
		}
		if out, _ := c.Exec("pgrep", "-f", "/usr/bin/berth"); strings.TrimSpace(out) != "" {
			t.Errorf("berth processes after remove: %s", out)
		}
		if _, _, err := s.Get("/items"); err == nil {
			t.Errorf("the site still answers after remove")
		}
		c.Must("dpkg", "-P", "berth")
		for _, gone := range []string{"/usr/bin/berth", "/usr/lib/systemd/system/berth@.service", "/usr/lib/systemd/system/berth@.socket",
			"/etc/berth/example.hcl", "/var/lib/berth", "/etc/systemd/system/sockets.target.wants/berth@demo.socket", "/etc/systemd/system/berth@demo.socket.d"} {
			if _, err := os.Lstat(filepath.Join(c.Root, gone)); err == nil {
				t.Errorf("%s is left after purge", gone)
			}
		}
		// The administrator's own site config stays, as Debian policy asks.
		if _, err := os.Stat(filepath.Join(c.Root, "etc/berth/demo.hcl")); err != nil {
			t.Errorf("purge removed the administrator's site config: %v", err)
		}
		if out, _ := c.Exec("systemctl", "list-units", "--no-legend", "--plain", "--all", "berth@*"); strings.Contains(out, "loaded") && !strings.Contains(out, "not-found") {
			t.Errorf("units still loaded after purge:\n%s", out)
		}
	})
}

// testPackagedSocketBehindNginx: Debian's nginx, its workers as www-data,
// serves the packaged example site through /run/berth/example.sock as the
// template made it (group www-data). Then the documented path for RPM's
// nginx, socket_group = "nginx" and `berth units --instance`, with a user
// nginx made in the container: its nginx gets in, www-data's gets 502.
func testPackagedSocketBehindNginx(t *testing.T, c *e2e.Container) {
	const sock = "/run/berth/example.sock"
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", c.PID, sock))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != 33 {
		t.Errorf("%s is %v gid %d, want 0660 group www-data (33)", sock, fi.Mode(), st.Gid)
	}
	www := startNginxIn(c, "www-data", sock)
	if code, body := getVia(www); code != 200 || body != "Hello from berth!\n" {
		t.Fatalf("GET through nginx (www-data) and the packaged socket: %d %q", code, body)
	}

	c.Must("useradd", "--system", "--user-group", "--no-create-home", "nginx")
	rpm := startNginxIn(c, "nginx", sock)
	example, _ := os.ReadFile(filepath.Join(c.Root, "etc/berth/example.hcl"))
	c.Write("/srv/rpm/example.hcl", strings.Replace(string(example), `address = "unix:/run/berth/example.sock"`,
		"address = \"unix:/run/berth/example.sock\"\n  socket_group = \"nginx\"", 1))
	c.Must("/usr/bin/berth", "units", "--instance", "example", "--dir", "/etc/systemd/system", "/srv/rpm/example.hcl")
	restart := func() {
		c.Must("systemctl", "daemon-reload")
		c.Must("systemctl", "stop", "berth@example.service", "berth@example.socket")
		c.Must("systemctl", "start", "berth@example.socket")
	}
	restart()
	if code, body := getVia(rpm); code != 200 || body != "Hello from berth!\n" {
		t.Errorf("GET through nginx (nginx) with socket_group = \"nginx\": %d %q", code, body)
	}
	if code, _ := getVia(www); code != 502 {
		t.Errorf("GET through nginx (www-data) with socket_group = \"nginx\": %d, want 502", code)
	}
	if err := os.RemoveAll(filepath.Join(c.Root, "etc/systemd/system/berth@example.socket.d")); err != nil {
		t.Fatal(err)
	}
	restart()
	if code, _ := getVia(www); code != 200 {
		t.Errorf("GET through nginx (www-data) after removing the drop-in: %d, want 200", code)
	}
}

// startNginxIn runs nginx in the container c as a transient unit, workers as
// user, on a free port proxying to sock; it returns the URL of the site.
func startNginxIn(c *e2e.Container, user, sock string) string {
	c.T.Helper()
	port := e2e.FreePort(c.T)
	dir := "/srv/nginx-" + user
	c.Write(dir+"/nginx.conf", nginxConfig(user, dir, sock, port))
	c.Must("systemd-run", "--unit=test-nginx-"+user, "/usr/sbin/nginx", "-e", dir+"/error.log", "-p", dir, "-c", dir+"/nginx.conf", "-g", "daemon off;")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, _ := getVia(url); code != 0 {
			return url
		}
	}
	out, _ := c.Exec("journalctl", "-u", "test-nginx-"+user, "--no-pager")
	c.T.Fatalf("nginx (%s) did not answer on %s:\n%s", user, url, out)
	return ""
}

// TestTemplateUnitsCommitted: packaging/systemd/FORMAT holds exactly what
// `berth units --template --package FORMAT` renders (regenerate with
// `go run ./cmd/berth units --template --package deb --dir packaging/systemd/deb`,
// and the same for rpm).
func TestTemplateUnitsCommitted(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"deb", "rpm"} {
		dir := t.TempDir()
		var out, errb strings.Builder
		if code := run([]string{"units", "--template", "--package", pkg, "--dir", dir}, &out, &errb); code != 0 {
			t.Fatalf("berth units --template --package %s: %s", pkg, errb.String())
		}
		for _, name := range []string{"berth@.socket", "berth@.service"} {
			want, _ := os.ReadFile(filepath.Join(dir, name))
			got, err := os.ReadFile(filepath.Join("../../packaging/systemd", pkg, name))
			if err != nil || string(got) != string(want) {
				t.Errorf("packaging/systemd/%s/%s differs from `berth units --template --package %s`; regenerate it", pkg, name, pkg)
			}
		}
	}
}
