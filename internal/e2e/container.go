package e2e

// The systemd machines of the end-to-end tests: a container booted with
// systemd-nspawn on an overlay of this machine's root (the recipe in
// DESIGN.md), or a VM (vm.go) on the same overlay, with berth installed in
// it, and the berth sites the tests install there. They need root and
// systemd-nspawn (Debian's systemd-container); BootContainer skips,
// saying so, without them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthd/berth/server"
)

// Container is one booted systemd in an nspawn container (or in a VM:
// BootVM). It shares the host's network, so its sockets are reachable on
// 127.0.0.1.
type Container struct {
	T    *testing.T
	Dir  string
	Root string
	Cmd  *exec.Cmd
	PID  int // the container's systemd, as the host sees it
	Out  *SyncBuffer
	vm   *vm // set when it is a VM (vm.go): commands go to its agent
}

// ContainerApp is the test app BootContainer installs at
// /srv/berth-test/app.py, with its VERSION for %q.
const ContainerApp = `import logging, os, sys, time
VERSION = %q
time.sleep(float(os.environ.get("BOOT_DELAY", "0")))
log = logging.getLogger("shop.orders")

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    if path == "/raise":
        raise KeyError("no such order")
    if path == "/log":
        log.warning("stock is low for item %%s", 42)
    body = ("%%s %%d %%s" %% (VERSION, os.getpid(), environ.get("REQUEST_ID"))).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
`

// machines numbers the containers this process boots.
var machines atomic.Int64

// BootContainer boots systemd in a container with berth installed at
// /usr/local/bin/berth and the test app at /srv/berth-test/app.py.
func BootContainer(t *testing.T) *Container {
	t.Helper()
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Skip("the systemd tests need systemd-nspawn: apt-get install systemd-container")
	}
	c := newRoot(t)
	// A name of its own: containers of tests running in parallel boot
	// side by side.
	machine := fmt.Sprintf("berth-test-%d-%d", os.Getpid(), machines.Add(1))
	c.Cmd = exec.Command("systemd-nspawn", "--register=no", "-D", c.Root, "--boot", "--machine="+machine, "--keep-unit", "--console=pipe")
	c.Cmd.Stdout, c.Cmd.Stderr = c.Out, c.Out
	if err := c.Cmd.Start(); err != nil {
		t.Fatalf("starting systemd-nspawn: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for c.PID == 0 && time.Now().Before(deadline) {
		c.PID = findInit(c.Cmd.Process.Pid)
		time.Sleep(100 * time.Millisecond)
	}
	if c.PID == 0 {
		t.Fatalf("no systemd in the container after 60 s:\n%s", c.Out)
	}
	if !c.waitBooted(deadline) {
		t.Fatalf("the container's systemd did not finish booting in 60 s:\n%s", c.Out)
	}
	return c
}

// waitBooted waits until the booted systemd says it is running
// (degraded counts: a host unit failing in the overlay is not ours).
func (c *Container) waitBooted(deadline time.Time) bool {
	for time.Now().Before(deadline) {
		out, _ := c.Exec("systemctl", "is-system-running")
		if s := strings.TrimSpace(out); s == "running" || s == "degraded" {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// newRoot mounts an overlay of this machine's root for a container or a
// VM to boot, with berth installed at /usr/local/bin/berth, the test app
// at /srv/berth-test/app.py and a default target of its own.
func newRoot(t *testing.T) *Container {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the systemd tests need root (to mount an overlay and run systemd-nspawn)")
	}
	if _, err := os.Stat("/usr/lib/systemd/systemd"); err != nil {
		t.Skip("the systemd tests need systemd installed at /usr/lib/systemd/systemd")
	}
	dir, err := os.MkdirTemp("/var/tmp", "berth-systemd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Container{T: t, Dir: dir, Root: filepath.Join(dir, "root"), Out: &SyncBuffer{}}
	for _, d := range []string{"up", "work", "root"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	mount := exec.Command("mount", "-t", "overlay", "overlay", "-o",
		fmt.Sprintf("lowerdir=/,upperdir=%s/up,workdir=%s/work", dir, dir), c.Root)
	if out, err := mount.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Skipf("the systemd tests need an overlay mount of /, which failed here: %v: %s", err, out)
	}
	t.Cleanup(c.destroy)

	// Boot to a target of our own: basic.target brings sockets and D-Bus,
	// and none of the host's services (which could take our ports).
	c.Write("/etc/systemd/system/berth-test.target", "[Unit]\nDescription=berth test target\nRequires=basic.target\nAfter=basic.target\nAllowIsolate=yes\n")
	os.Remove(filepath.Join(c.Root, "etc/systemd/system/default.target"))
	if err := os.Symlink("/etc/systemd/system/berth-test.target", filepath.Join(c.Root, "etc/systemd/system/default.target")); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(Bin)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(c.Root, "usr/local/bin"), 0o755)
	if err := os.WriteFile(filepath.Join(c.Root, "usr/local/bin/berth"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Write("/srv/berth-test/app.py", fmt.Sprintf(ContainerApp, "v1"))
	return c
}

// findInit returns the pid of the systemd that nspawn (pid) started.
func findInit(pid int) int {
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, child := range ChildPIDs(p) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))
			if strings.HasPrefix(string(b), "/usr/lib/systemd/systemd") || strings.HasPrefix(string(b), "/sbin/init") {
				return child
			}
			queue = append(queue, child)
		}
	}
	return 0
}

// Write puts a file into the container's root.
func (c *Container) Write(path, content string) {
	c.T.Helper()
	if c.vm != nil && c.vm.conn != nil {
		if err := c.vm.write(path, content); err != nil {
			c.T.Fatalf("writing %s in the VM: %v", path, err)
		}
		return
	}
	full := filepath.Join(c.Root, path)
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		c.T.Fatal(err)
	}
}

// Exec runs a command inside the container.
func (c *Container) Exec(args ...string) (string, error) {
	if c.vm != nil {
		return c.vm.run(args)
	}
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.PID), "-a"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Must runs a command inside the container and fails the test if it fails.
func (c *Container) Must(args ...string) string {
	c.T.Helper()
	out, err := c.Exec(args...)
	if err != nil {
		c.T.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Prop reads one property of a unit.
func (c *Container) Prop(unit, name string) string {
	out, _ := c.Exec("systemctl", "show", "-p", name, "--value", unit)
	return strings.TrimSpace(out)
}

func (c *Container) destroy() {
	switch {
	case c.vm != nil:
		c.vm.close() // a throwaway machine: no need to wait for a poweroff
	case c.PID != 0:
		c.Exec("systemctl", "poweroff")
	}
	if c.Cmd != nil && c.Cmd.Process != nil {
		done := make(chan struct{})
		go func() { c.Cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			c.Cmd.Process.Kill()
			<-done
		}
	}
	if err := exec.Command("umount", c.Root).Run(); err != nil {
		exec.Command("umount", "-l", c.Root).Run()
	}
	os.RemoveAll(c.Dir)
	if c.T.Failed() {
		c.T.Logf("container console:\n%s", c.Out)
	}
}

// Site is one berth service installed in the container with units that
// `berth units` rendered there.
type Site struct {
	C    *Container
	Name string
	Port int
	URL  string
}

// Install writes a configuration for the test app, renders its units with
// `berth units` inside the container, adds drop-in lines, and enables the
// socket.
func (c *Container) Install(name, env string, dropIn string) *Site {
	c.T.Helper()
	port := FreePort(c.T)
	c.InstallConfig(name, fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:%d"
}
app "shop" {
  module  = "app:app"
  python  = "/usr/bin/python3"
  chdir   = "/srv/berth-test"
  workers = 2
  env     = { PYTHONDONTWRITEBYTECODE = "1", %s }
}
`, port, env), dropIn)
	return &Site{C: c, Name: name, Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
}

func (s *Site) Get(path string) (int, string, error) {
	resp, err := HTTPClient.Get(s.URL + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Status is the site's `berth status --json`, asked inside the container.
func (s *Site) Status() server.Status {
	s.C.T.Helper()
	var st struct{ Berth server.Status }
	out := s.C.Must("/usr/local/bin/berth", "status", "--json", "/etc/berth/"+s.Name+".hcl")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		s.C.T.Fatalf("berth status --json: %v\n%s", err, out)
	}
	return st.Berth
}

func (s *Site) WaitActive() {
	s.C.T.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if s.C.Prop(s.Name+".service", "ActiveState") == "active" {
			return
		}
	}
	out, _ := s.C.Exec("systemctl", "status", "--no-pager", s.Name+".service")
	s.C.T.Fatalf("%s.service did not become active:\n%s", s.Name, out)
}

// Journal returns the service's Journal entries as JSON objects.
func (s *Site) Journal() []map[string]any {
	s.C.Exec("journalctl", "--sync")
	out, _ := s.C.Exec("journalctl", "-u", s.Name+".service", "-o", "json", "--no-pager")
	var entries []map[string]any
	for _, line := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			entries = append(entries, e)
		}
	}
	return entries
}

// InstallConfig writes /etc/berth/NAME.hcl, renders its units with
// `berth units` inside the container (default user), adds the drop-in
// lines to its service and enables its sockets.
func (c *Container) InstallConfig(name, hcl, dropIn string, sockets ...string) {
	c.T.Helper()
	c.Write("/etc/berth/"+name+".hcl", hcl)
	c.Must("/usr/local/bin/berth", "units", "--name", name, "--berth", "/usr/local/bin/berth", "--dir", "/etc/systemd/system", "/etc/berth/"+name+".hcl")
	if dropIn != "" {
		c.Write("/etc/systemd/system/"+name+".service.d/test.conf", "[Service]\n"+dropIn+"\n")
	}
	c.Must("systemctl", "daemon-reload")
	if len(sockets) == 0 {
		sockets = []string{name + ".socket"}
	}
	c.Must(append([]string{"systemctl", "enable", "--now"}, sockets...)...)
}
