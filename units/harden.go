package units

import (
	"fmt"
	"strings"
)

// Directive is one sandboxing line of the rendered service, with the
// reason it is there and what an app that needs it relaxed puts in a
// drop-in. Keeping them together lets the unit file say why each line is
// there, from one place that the README's list follows.
type Directive struct {
	Line   string // as written in [Service]
	Reason string // why berth can live with it
	Relax  string // the drop-in lines that undo it for an app that needs to; "" when none should
}

// Hardening is the sandbox of every rendered service, in the order
// written. Tried under systemd 252 with Flask, the Django example and a
// test app doing ctypes callbacks, /proc reads, temp files, fork, threads
// and outgoing sockets: `systemd-analyze security` rates the result 1.7
// (TestExposure). Left out on purpose: ProcSubset=pid (apps read
// /proc/meminfo and /proc/cpuinfo), MemoryDenyWriteExecute= (JITs and
// some libffi builds), ~@resources (Go raises its fd limit at start),
// PrivateNetwork=/IPAddressDeny= (a site talks to its database), and
// ProtectControlGroups= (berth writes its delegated cgroup: Delegate=yes).
var Hardening = []Directive{
	{"NoNewPrivileges=yes", "no setuid binary run by an app gains privileges", "NoNewPrivileges=no"},
	{"CapabilityBoundingSet=", "berth needs no capability: systemd binds the sockets", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE (for example, to bind a low port itself)"},
	{"AmbientCapabilities=", "nor do its workers", ""},
	{"PrivateTmp=yes", "spilled request bodies and an app's temp files are the site's alone", "PrivateTmp=no (to share /tmp with another service)"},
	{"PrivateDevices=yes", "apps need /dev/null, /dev/urandom and the like, not disks", "PrivateDevices=no"},
	{"DevicePolicy=closed", "the same for the device cgroup", "DeviceAllow=/dev/NAME rw"},
	{"PrivateMounts=yes", "the sandbox's mounts stay the site's", ""},
	{"ProtectSystem=strict", "the whole file system is read-only to the site", "ReadWritePaths=/var/lib/myapp (where the app writes: uploads, SQLite, caches)"},
	{"ProtectHome=read-only", "home directories are readable (an app may live there), never writable", "ProtectHome=no"},
	{"ProtectKernelTunables=yes", "/proc/sys and /sys are read-only", ""},
	{"ProtectKernelModules=yes", "no module loading", ""},
	{"ProtectKernelLogs=yes", "no kernel log", ""},
	{"ProtectClock=yes", "no clock setting", ""},
	{"ProtectHostname=yes", "no host name setting", ""},
	{"ProtectProc=invisible", "other users' processes are hidden; berth sees its workers (same user)", "ProtectProc=default"},
	{"KeyringMode=private", "the kernel keyring is the site's own", ""},
	{"RestrictSUIDSGID=yes", "no setuid or setgid files made", ""},
	{"RestrictRealtime=yes", "no realtime scheduling (workers use SCHED_BATCH)", ""},
	{"RestrictNamespaces=yes", "no new namespaces (no containers inside a site)", "RestrictNamespaces=no"},
	{"LockPersonality=yes", "no execution domain changes", ""},
	{"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "Unix sockets (workers, nginx) and IP; glibc falls back without netlink", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK"},
	{"SystemCallArchitectures=native", "no 32-bit system call entry", ""},
	{"SystemCallFilter=@system-service", "the system calls a service needs; others fail with EPERM, which Python reports as an OSError", "SystemCallFilter=@known (or the group the app needs)"},
	{"SystemCallFilter=~@privileged", "none that need privileges berth does not have", ""},
	{"SystemCallErrorNumber=EPERM", "a refused call fails rather than killing the worker", ""},
	{"UMask=0027", "files an app creates are not world-readable", "UMask=0022"},
	{"RemoveIPC=yes", "System V and POSIX IPC objects go with the site's user", "RemoveIPC=no"},
}

// writeHardening writes the sandbox lines, each under its reason.
func writeHardening(b *strings.Builder) {
	b.WriteString("# Hardening: `systemd-analyze security` rates it under 2.0. Each line says\n# why it is safe; an app that needs one relaxed sets it in a drop-in\n# (`systemctl edit UNIT`), most often ReadWritePaths= for where it writes.\n")
	for _, d := range Hardening {
		fmt.Fprintf(b, "# %s\n%s\n", d.Reason, d.Line)
	}
}

// DefaultUser is the user a rendered service runs as when none is given.
const DefaultUser = "berth"

// writeIdentity writes who the service runs as. A site is never root
// unless asked for by name (UnitOptions.Root): an app's bug would be
// root's. Without a user of its own it runs as DynamicUser "berth": a
// user systemd makes while the service runs, or the packages' static
// "berth" where that exists, so nothing need be created first.
func writeIdentity(b *strings.Builder, opt UnitOptions) {
	switch {
	case opt.Root:
		b.WriteString("# Runs as root: rendered with --root.\nUser=root\n")
	case opt.User == "":
		fmt.Fprintf(b, "# Runs as an unprivileged user of systemd's making (or the static %q).\nUser=%s\nDynamicUser=yes\n", DefaultUser, DefaultUser)
	default:
		fmt.Fprintf(b, "User=%s\n", opt.User)
		if opt.Group != "" {
			fmt.Fprintf(b, "Group=%s\n", opt.Group)
		}
	}
}

// writeDelegation writes what lets berth manage its own processes: the
// cgroup subtree it puts each app's workers in (limits), and the file
// descriptor store through which a restart hands idle client connections
// to the next berth.
func writeDelegation(b *strings.Builder) {
	b.WriteString("# berth puts each app's workers in a cgroup of its own (per-app limits).\nDelegate=yes\n")
	fmt.Fprintf(b, "# A restart passes idle keep-alive connections to the next berth here.\nFileDescriptorStoreMax=%d\n", FDStoreMax)
}

// FDStoreMax is FileDescriptorStoreMax= of rendered units: how many idle
// client connections a restart can hand over (the rest are closed, as
// without the store).
const FDStoreMax = 4096
