package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// A container shares this machine's kernel and so its cgroup layout: on a
// hybrid host (memory, cpu and pids bound to cgroup v1) berth's delegated
// cgroup v2 group has no controllers, and per-app limits cannot be
// enforced there. A virtual machine has a kernel of its own: BootVM boots
// this machine's Debian kernel under QEMU with unified cgroups, on an
// overlay of this machine's root (exported over 9p, so it is the same
// systemd 252, Python and berth as in the container), and runs the
// container's commands through an agent on a virtio-serial port.
//
// QEMU's TCG (a CPU emulated in software) boots it in about 15 s here;
// BERTH_VM_ACCEL=kvm uses hardware virtualisation where /dev/kvm can run
// an unmodified guest (this machine's, PVM nested inside Firecracker,
// cannot: the guest kernel stops on an emulation failure).

// vmModules are the kernel modules the VM needs before its root is
// mounted (Debian builds them as modules): the root over 9p on virtio,
// the network QEMU forwards the test's ports through, the agent's port.
var vmModules = []string{"virtio_pci", "9pnet_virtio", "9p", "virtio_net", "virtio_console"}

// vmMasked are the host's units the VM does without.
var vmMasked = []string{"apparmor.service", "nvmf-autoconnect.service", "systemd-timesyncd.service", "systemd-update-utmp.service", "e2scrub_reap.service"}

// vm is the QEMU process and the connection to the agent inside it.
type vm struct {
	qemu *os.Process

	mu     sync.Mutex // one request at a time on the agent's port
	conn   net.Conn
	enc    *json.Encoder
	dec    *json.Decoder
	broken error // once a request failed half-way, the stream is lost
}

// vmRequest and vmAnswer are vminit's request and answer.
type vmRequest struct {
	Args  []string
	Stdin string
}

type vmAnswer struct {
	Output string
	Code   int
	Err    string
}

// BootVM boots systemd in a VM with what BootContainer installs, and
// forwards ports on 127.0.0.1 here to the same ports in the VM (where a
// listener must bind 0.0.0.0: QEMU's forward arrives on the VM's network
// interface, not its loopback). It skips, saying what is missing,
// without QEMU or an installed Debian kernel.
func BootVM(t *testing.T, ports ...int) *Container {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the VM takes about 15 s to boot under emulation here")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("the VM tests need QEMU: apt-get install qemu-system-x86")
	}
	kernel, modules, err := vmKernel()
	if err != nil {
		t.Skipf("the VM tests boot an installed Debian kernel (apt-get install linux-image-amd64): %v", err)
	}
	c := newRoot(t)
	initrd := vmInitrd(t, c, modules)
	sock := filepath.Join(c.Dir, "agent.sock")
	c.Cmd = exec.Command(qemu, qemuArgs(kernel, initrd, c.Root, sock, ports)...)
	c.Cmd.Stdout, c.Cmd.Stderr = c.Out, c.Out
	start := time.Now()
	if err := c.Cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	c.vm = &vm{qemu: c.Cmd.Process}
	deadline := start.Add(60 * time.Second)
	for c.vm.conn == nil && time.Now().Before(deadline) {
		if conn, err := net.Dial("unix", sock); err == nil {
			c.vm.conn, c.vm.enc, c.vm.dec = conn, json.NewEncoder(conn), json.NewDecoder(bufio.NewReader(conn))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c.vm.conn == nil {
		t.Fatal("no agent socket from QEMU after 60 s (its output follows)")
	}
	// The first request waits in the socket until the agent runs.
	if _, err := c.vm.call([]string{"true"}, "", time.Until(deadline)); err != nil || !c.waitBooted(deadline) {
		out, _ := c.Exec("systemctl", "list-jobs", "--no-pager")
		t.Fatalf("the VM's systemd did not finish booting in 60 s (%v); its jobs:\n%s", err, out)
	}
	t.Logf("VM booted in %s (%s)", time.Since(start).Round(100*time.Millisecond), filepath.Base(kernel))
	return c
}

// qemuArgs: a PC with 2 CPUs and 1 GiB, the kernel's console on QEMU's
// stdout, the root over 9p, a user-mode network that reaches nothing but
// the forwarded ports, and the agent's virtio-serial port on sock.
func qemuArgs(kernel, initrd, root, sock string, ports []int) []string {
	accel := []string{"-accel", "tcg,thread=multi", "-cpu", "max"}
	if os.Getenv("BERTH_VM_ACCEL") == "kvm" {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	netdev := "user,id=net,restrict=on"
	for _, p := range ports {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", p, p)
	}
	return append(accel,
		"-M", "pc", "-m", "1024", "-smp", "2", "-nodefaults", "-no-user-config", "-no-reboot",
		"-display", "none", "-serial", "stdio",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1 mitigations=off net.ifnames=0 systemd.unified_cgroup_hierarchy=1 systemd.show_status=0",
		"-virtfs", "local,path="+root+",mount_tag=root,security_model=passthrough,multidevs=remap,id=root",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=net",
		"-chardev", "socket,id=agent,path="+sock+",server=on,wait=off",
		"-device", "virtio-serial-pci", "-device", "virtserialport,chardev=agent,name=berth.agent")
}

// run executes a command in the VM, as exec does in a container.
func (v *vm) run(args []string) (string, error) {
	return v.call(args, "", 150*time.Second)
}

func (v *vm) call(args []string, stdin string, timeout time.Duration) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.broken != nil {
		return "", v.broken
	}
	v.conn.SetDeadline(time.Now().Add(timeout))
	var a vmAnswer
	err := v.enc.Encode(vmRequest{Args: args, Stdin: stdin})
	if err == nil {
		err = v.dec.Decode(&a)
	}
	switch {
	case err != nil:
		v.broken = fmt.Errorf("the VM's agent, running %q: %w", args, err)
		return "", v.broken
	case a.Err != "":
		return a.Output, errors.New(a.Err)
	case a.Code != 0:
		return a.Output, fmt.Errorf("exit status %d", a.Code)
	}
	return a.Output, nil
}

// write puts a file into the VM through its agent: the VM's 9p cache
// would not see a change made to the overlay from here.
func (v *vm) write(path, content string) error {
	_, err := v.call([]string{"sh", "-c", `mkdir -p "${1%/*}" && cat > "$1"`, "sh", path}, content, time.Minute)
	return err
}

func (v *vm) close() {
	if v.conn != nil {
		v.conn.Close()
	}
	v.qemu.Kill()
}

// vmKernel finds an installed kernel with its modules (the newest, if
// several): Debian's linux-image-amd64 puts them in /boot and /lib/modules.
func vmKernel() (kernel, modules string, err error) {
	found, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(found)
	for i := len(found) - 1; i >= 0; i-- {
		release := strings.TrimPrefix(filepath.Base(found[i]), "vmlinuz-")
		dir := filepath.Join("/lib/modules", release)
		if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err == nil {
			return found[i], dir, nil
		}
	}
	return "", "", fmt.Errorf("no /boot/vmlinuz-RELEASE with /lib/modules/RELEASE/modules.dep (found %q)", found)
}

// vmInitrd builds vminit, installs it in the root as the agent
// (with a unit that starts it on boot) and writes an initramfs holding it
// as /init with the modules vmModules need, in the order to load them.
func vmInitrd(t *testing.T, c *Container, modules string) string {
	t.Helper()
	bin := filepath.Join(c.Dir, "vminit")
	build := exec.Command("go", "build", "-o", bin, "github.com/berthd/berth/internal/e2e/vminit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building internal/e2e/vminit: %v\n%s", err, out)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Root, "usr/local/bin/berth-vmagent"), prog, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Write("/etc/systemd/system/berth-vmagent.service", "[Unit]\nDescription=the test's agent (internal/e2e/vm.go)\n\n[Service]\nExecStart=/usr/local/bin/berth-vmagent agent\nRestart=always\nRestartSec=100ms\n")
	wants := filepath.Join(c.Root, "etc/systemd/system/berth-test.target.wants")
	os.MkdirAll(wants, 0o755)
	if err := os.Symlink("/etc/systemd/system/berth-vmagent.service", filepath.Join(wants, "berth-vmagent.service")); err != nil {
		t.Fatal(err)
	}

	// A VM is no container: without /.dockerenv, systemd reads the
	// kernel's command line. The host's timers need not run in it, nor
	// services that cost seconds of emulated CPU and serve no test.
	for _, gone := range []string{".dockerenv", "etc/systemd/system/timers.target.wants"} {
		if err := os.RemoveAll(filepath.Join(c.Root, gone)); err != nil {
			t.Fatal(err)
		}
	}
	for _, unit := range vmMasked {
		if err := os.Symlink("/dev/null", filepath.Join(c.Root, "etc/systemd/system", unit)); err != nil {
			t.Fatal(err)
		}
	}

	order, err := moduleOrder(modules, vmModules...)
	if err != nil {
		t.Skipf("the VM tests need the kernel's virtio and 9p modules: %v", err)
	}
	entries := []cpioEntry{{name: "dev", mode: cpioDir | 0o755}, {name: "dev/console", mode: cpioChar | 0o600, rdev: [2]uint32{5, 1}}, {name: "init", mode: cpioFile | 0o755, data: prog}}
	var names []string
	for _, m := range order {
		data, err := os.ReadFile(filepath.Join(modules, m))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(m))
		entries = append(entries, cpioEntry{name: filepath.Base(m), mode: cpioFile | 0o644, data: data})
	}
	entries = append(entries, cpioEntry{name: "modules", mode: cpioFile | 0o644, data: []byte(strings.Join(names, "\n"))})
	path := filepath.Join(c.Dir, "initrd")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeCpio(f, entries); err != nil {
		t.Fatalf("writing the initramfs: %v", err)
	}
	return path
}

// moduleOrder returns the files (relative to dir) of the named modules
// and of what they depend on, each after its dependencies, from dir's
// modules.dep; modules built into the kernel (modules.builtin) need none.
func moduleOrder(dir string, names ...string) ([]string, error) {
	deps := map[string][]string{} // file → the files it needs
	byName := map[string]string{}
	b, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		file, needs, ok := strings.Cut(line, ":")
		if ok {
			deps[file] = strings.Fields(needs)
			byName[strings.ReplaceAll(strings.TrimSuffix(filepath.Base(file), ".ko"), "-", "_")] = file
		}
	}
	builtin, _ := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	var order []string
	seen := map[string]bool{}
	var visit func(file string)
	visit = func(file string) {
		if !seen[file] {
			seen[file] = true
			for _, d := range deps[file] {
				visit(d)
			}
			order = append(order, file)
		}
	}
	for _, n := range names {
		file, ok := byName[n]
		switch {
		case ok:
			visit(file)
		case !strings.Contains(string(builtin), "/"+n+".ko\n"):
			return nil, fmt.Errorf("module %s is neither in %s/modules.dep nor built in", n, dir)
		}
	}
	return order, nil
}

// An initramfs is a cpio archive in the "newc" format: per file, a
// header of thirteen 8-digit hex fields after the magic, the name and
// the data, each padded to 4 bytes (the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst).
type cpioEntry struct {
	name string
	mode uint32
	data []byte
	rdev [2]uint32 // major, minor of a device node
}

const (
	cpioDir  = 0o040000
	cpioChar = 0o020000
	cpioFile = 0o100000
)

func writeCpio(w io.Writer, entries []cpioEntry) error {
	bw := bufio.NewWriter(w)
	pad := func(n int) { bw.Write(make([]byte, (4-n%4)%4)) }
	for i, e := range append(entries, cpioEntry{name: "TRAILER!!!"}) {
		fmt.Fprintf(bw, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			i+1, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(e.name)+1, 0)
		bw.WriteString(e.name + "\x00")
		pad(110 + len(e.name) + 1)
		bw.Write(e.data)
		pad(len(e.data))
	}
	return bw.Flush()
}
