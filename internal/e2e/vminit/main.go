// Command vminit is the first and the last program of the test VM that
// the end-to-end tests boot (internal/e2e/vm.go) (a kernel of its own, so cgroup v2 with
// every controller, which this hybrid host cannot give a container).
//
// As /init of the initramfs (pid 1) it loads the modules the kernel
// needs to reach its root (virtio, 9p) and the test (virtio network and
// serial), in the order listed in /modules, gives eth0 the address QEMU's
// user network expects, mounts the 9p root the host exports and hands
// over to systemd. It is small and static because the initramfs holds
// nothing else: no shell, no libc.
//
// As `vminit agent`, run by a unit inside the booted VM, it executes the
// test's commands: JSON requests in, JSON answers out, over a
// virtio-serial port (host side: a Unix socket only the test can reach),
// which is what nsenter is to the tests' nspawn container.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The address QEMU's user network (slirp) forwards to by default.
var guestAddr = net.IPv4(10, 0, 2, 15)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		err = agent()
	} else {
		err = boot()
	}
	fmt.Fprintln(os.Stderr, "vminit:", err)
	if os.Getpid() == 1 {
		// pid 1 must not exit: the kernel would panic without saying why.
		select {}
	}
	os.Exit(1)
}

// boot is pid 1's work in the initramfs; it returns only on failure.
func boot() error {
	list, err := os.ReadFile("/modules")
	if err != nil {
		return err
	}
	for _, m := range strings.Fields(string(list)) {
		if err := loadModule(m); err != nil {
			return fmt.Errorf("loading module %s: %w", m, err)
		}
		os.Remove(m)
	}
	if err := ifup("eth0", guestAddr); err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	os.MkdirAll("/root", 0o755)
	// cache=loose: systemd and Python start several times faster under
	// emulation when what they map is cached. The test changes files
	// through the agent, inside the VM, where the cache sees the change
	// (a file the VM has never looked at, such as a test binary built on
	// the host, is seen either way).
	if err := unix.Mount("root", "/root", "9p", 0, "trans=virtio,version=9p2000.L,msize=524288,access=client,posixacl,cache=loose"); err != nil {
		return fmt.Errorf("mounting the 9p root: %w", err)
	}
	// The host's /tmp, seen through the overlay, would be emptied file by
	// file over 9p by systemd-tmpfiles at boot; a tmpfs hides it.
	for _, m := range []struct{ fs, at string }{{"devtmpfs", "/root/dev"}, {"tmpfs", "/root/tmp"}} {
		if err := unix.Mount(m.fs, m.at, m.fs, unix.MS_NOSUID, ""); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fs, m.at, err)
		}
	}
	os.Remove("/init")
	if err := os.Chdir("/root"); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	os.Chdir("/")
	return syscall.Exec("/lib/systemd/systemd", []string{"/lib/systemd/systemd"}, os.Environ())
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// ifup gives the interface addr/24 and brings it up, with the ioctls
// ifconfig uses (no netlink library for one address).
func ifup(name string, addr net.IP) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := ifr.SetInet4Addr(addr.To4()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("setting the address: %w", err)
	}
	ifr.SetInet4Addr(net.IPv4(255, 255, 255, 0).To4())
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("setting the netmask: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// request is one command the test runs in the VM; answer is what came of it.
type request struct {
	Args  []string
	Stdin string
}

type answer struct {
	Output string
	Code   int    // the exit status; -1 when it did not run or was killed
	Err    string // why it did not run, if it did not
}

// agent serves requests on the virtio-serial port named berth.agent until
// the host closes it.
func agent() error {
	port, err := openPort("berth.agent", 30*time.Second)
	if err != nil {
		return err
	}
	defer port.Close()
	dec, enc := json.NewDecoder(port), json.NewEncoder(port)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return fmt.Errorf("reading a request: %w", err)
		}
		if err := enc.Encode(run(req)); err != nil {
			return fmt.Errorf("answering: %w", err)
		}
	}
}

// run executes one request, bounded so that a wedged command cannot
// wedge the agent.
func run(req request) answer {
	if len(req.Args) == 0 {
		return answer{Code: -1, Err: "no command"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, req.Args[0], req.Args[1:]...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(req.Stdin), &out, &out
	err := cmd.Run()
	a := answer{Output: out.String(), Code: cmd.ProcessState.ExitCode()} // -1 if it did not run or was killed
	if err != nil && a.Code == -1 {
		a.Err = err.Error()
	}
	return a
}

// openPort opens the virtio-serial port of that name (udev's
// /dev/virtio-ports/NAME link may not be there yet), waiting for it.
func openPort(name string, wait time.Duration) (*os.File, error) {
	deadline := time.Now().Add(wait)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			if b, _ := os.ReadFile(n); strings.TrimSpace(string(b)) == name {
				f, err := os.OpenFile("/dev/"+filepath.Base(filepath.Dir(n)), os.O_RDWR, 0)
				if err == nil || time.Now().After(deadline) {
					return f, err
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no virtio-serial port %q after %s", name, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
