package units

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthd/berth/activation"
)

// UnitOptions say how the rendered units run berth.
type UnitOptions struct {
	// Name is the service's name: NAME.service, NAME.socket.
	Name string
	// Berth is the absolute path of the berth binary.
	Berth string
	// Config is the absolute path of the configuration file.
	Config string
	// User and Group run the service. Unset, it runs as the dynamic
	// user "berth" (DynamicUser=yes, which takes the static user of that
	// name when one exists, as the packages make).
	User, Group string
	// Root runs the service as root: only when asked for by name.
	Root bool
	// Watchdog is WatchdogSec=; zero for the default, 30s.
	Watchdog time.Duration
}

// UnitFile is one rendered systemd unit.
type UnitFile struct {
	Name    string
	Content string
}

// Units renders the systemd units that run this configuration: one
// .socket per listener (named NAME.socket when there is one listener,
// NAME-LISTENER.socket otherwise), whose FileDescriptorName= is the
// listener's name so berth matches them, and NAME.service.
func (c *Config) Units(opt UnitOptions) ([]UnitFile, error) {
	var files []UnitFile
	var socketNames []string
	for _, l := range c.Listeners {
		listen, err := listenStream(l)
		if err != nil {
			return nil, err
		}
		name := opt.Name + ".socket"
		if len(c.Listeners) > 1 {
			name = opt.Name + "-" + l.Name + ".socket"
		}
		socketNames = append(socketNames, name)
		var b strings.Builder
		fmt.Fprintf(&b, "# Rendered by `berth units` from %s.\n", opt.Config)
		fmt.Fprintf(&b, "[Unit]\nDescription=berth %s: listener %s\n\n", opt.Name, l.Name)
		fmt.Fprintf(&b, "[Socket]\nListenStream=%s\nFileDescriptorName=%s\nService=%s.service\n", listen, l.Name, opt.Name)
		if l.Network == "unix" {
			b.WriteString(socketOwner(l.Socket) + "RemoveOnStop=yes\n")
		} else {
			b.WriteString(deferAcceptSec)
		}
		b.WriteString("\n[Install]\nWantedBy=sockets.target\n")
		files = append(files, UnitFile{Name: name, Content: b.String()})
	}

	grace := DefaultGraceful
	boot := DefaultBootTimeout
	for _, a := range c.Apps {
		grace = max(grace, a.GracefulTimeout)
		boot = max(boot, a.BootTimeout)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by `berth units` from %s.\n", opt.Config)
	fmt.Fprintf(&b, "[Unit]\nDescription=berth %s: Python WSGI apps of %s\n", opt.Name, filepath.Base(opt.Config))
	writeService(&b, opt, socketNames, boot, grace+c.DrainDelay())
	service := strings.Replace(b.String(), "\n\n[Install]\n", "\n"+c.tmpBinds(opt.Config)+"\n[Install]\n", 1)
	files = append(files, UnitFile{Name: opt.Name + ".service", Content: service})
	return files, nil
}

// writeService writes the service unit from its [Unit] dependencies on.
func writeService(b *strings.Builder, opt UnitOptions, socketNames []string, boot, grace time.Duration) {
	if opt.Watchdog == 0 {
		opt.Watchdog = 30 * time.Second
	}
	fmt.Fprintf(b, "Requires=%s\nAfter=%s network.target\n\n", strings.Join(socketNames, " "), strings.Join(socketNames, " "))
	b.WriteString("[Service]\n")
	b.WriteString("# READY=1 is sent once every app's workers are ready; a reload waits\n# for its outcome, so `systemctl reload` fails on a bad configuration.\n")
	b.WriteString("Type=notify\nNotifyAccess=main\n")
	fmt.Fprintf(b, "ExecStart=%s serve %s\n", opt.Berth, opt.Config)
	fmt.Fprintf(b, "ExecReload=%s reload %s\n", opt.Berth, opt.Config)
	b.WriteString("# berth drains its own workers on SIGTERM; systemd kills what is left.\nKillMode=mixed\n")
	fmt.Fprintf(b, "TimeoutStartSec=%s\n", seconds(boot+30*time.Second))
	fmt.Fprintf(b, "TimeoutStopSec=%s\n", seconds(grace+15*time.Second))
	fmt.Fprintf(b, "WatchdogSec=%s\n", seconds(opt.Watchdog))
	b.WriteString("Restart=on-failure\n")
	// Each client connection is a descriptor: berth takes three quarters
	// of this for connections (max_connections' default), the rest for
	// bodies, workers and the journal.
	b.WriteString("LimitNOFILE=65536\n")
	// The control socket lives in /run/berth, where `berth reload` and
	// `berth status` look; services share the directory, so it is kept
	// when one of them stops.
	b.WriteString("RuntimeDirectory=berth\nRuntimeDirectoryPreserve=yes\n")
	writeIdentity(b, opt)
	writeDelegation(b)
	writeHardening(b)
	b.WriteString(`
[Install]
WantedBy=multi-user.target
`)
}

// PackageSocketGroups is, per package format, the group the packaged
// berth@.socket gives its socket to: the group the distribution's nginx
// runs its workers in, so that `proxy_pass http://unix:/run/berth/NAME.sock`
// works without configuration. On Debian www-data always exists
// (base-passwd), and Apache's workers run in it too. On RPM distributions
// nginx's group exists only once nginx-filesystem is installed (as with
// Fedora's php-fpm, the rpm requires it), and systemd fails a socket
// whose group does not resolve.
var PackageSocketGroups = map[string]string{"deb": "www-data", "rpm": "nginx"}

// Template renders the template units a package installs: berth@.socket
// and berth@.service, where instance NAME serves /etc/berth/NAME.hcl.
// The socket listens on /run/berth/NAME.sock under FileDescriptorName=http
// (the listener named "http" takes it), owned by berth and socketGroup
// (PackageSocketGroups) with mode 0660; InstanceDropIn moves it elsewhere
// or gives it to someone else.
func Template(berth, socketGroup string) []UnitFile {
	opt := UnitOptions{Name: "berth@%i", Berth: berth, Config: "/etc/berth/%i.hcl", User: "berth", Group: "berth"}
	sock := `# berth@NAME.socket: the listener "http" of /etc/berth/NAME.hcl.
# Another address, mode or owner (socket_mode, socket_user, socket_group):
#   berth units --instance NAME --dir /etc/systemd/system /etc/berth/NAME.hcl
[Unit]
Description=berth site %i: listener http

[Socket]
ListenStream=/run/berth/%i.sock
FileDescriptorName=http
` + socketOwner(SocketOwner{Mode: DefaultSocketMode, User: "berth", Group: socketGroup}) + `RemoveOnStop=yes

[Install]
WantedBy=sockets.target
`
	var b strings.Builder
	b.WriteString("# berth@NAME.service: serves /etc/berth/NAME.hcl; start it through berth@NAME.socket.\n")
	b.WriteString("[Unit]\nDescription=berth site %i\n")
	writeService(&b, opt, []string{"berth@%i.socket"}, DefaultBootTimeout, DefaultGraceful)
	return []UnitFile{{Name: "berth@.socket", Content: sock}, {Name: "berth@.service", Content: strings.Replace(b.String(), "[Service]\n", "[Service]\nStateDirectory=berth\n", 1)}}
}

// socketOwner is a Unix socket's SocketMode=, and SocketUser= and
// SocketGroup= when set: what berth does to a socket it binds itself
// (activation.Owner), systemd does to one it binds for berth.
func socketOwner(o SocketOwner) string {
	s := fmt.Sprintf("SocketMode=%04o\n", o.Mode)
	if o.User != "" {
		s += "SocketUser=" + o.User + "\n"
	}
	if o.Group != "" {
		s += "SocketGroup=" + o.Group + "\n"
	}
	return s
}

// InstanceDropIn is the drop-in that makes berth@NAME.socket listen where
// the configuration's listener "http" says, instead of the template's
// Unix socket, and for a Unix socket with its socket_mode, and its
// socket_user and socket_group when set: berth never changes a socket
// systemd passed, so these reach the socket only through the unit.
func (c *Config) InstanceDropIn(name string) (UnitFile, error) {
	l, ok := c.Listener("http")
	if !ok {
		return UnitFile{}, fmt.Errorf("the template socket serves the listener named \"http\", and %s has none", c.File)
	}
	listen, err := listenStream(l)
	if err != nil {
		return UnitFile{}, err
	}
	content := fmt.Sprintf("# Rendered by `berth units --instance %s`: listen where listener \"http\" of %s says.\n[Socket]\nListenStream=\nListenStream=%s\n", name, c.File, listen)
	if l.Network == "unix" {
		// Unset here, SocketUser= and SocketGroup= stay the template's.
		content += socketOwner(l.Socket)
	} else {
		content += deferAcceptSec
	}
	return UnitFile{Name: "berth@" + name + ".socket.d/listen.conf", Content: content}, nil
}

// deferAcceptSec has systemd set on a TCP socket it binds for berth what
// berth sets on one it binds itself (activation.DeferAccept: accept a
// connection once its request has come).
var deferAcceptSec = "DeferAcceptSec=" + seconds(activation.DeferAccept) + "\n"

// listenStream is a listener's address as ListenStream= takes it.
func listenStream(l Listener) (string, error) {
	if l.Network == "unix" {
		return l.Address, nil
	}
	host, port, err := net.SplitHostPort(l.Address)
	if err != nil {
		return "", fmt.Errorf("listener %q: %w", l.Name, err)
	}
	if port == "0" {
		return "", fmt.Errorf("listener %q: port 0 (any free port) cannot be a systemd socket; give a port", l.Name)
	}
	if host == "" {
		return port, nil // every address, IPv4 and IPv6
	}
	return net.JoinHostPort(host, port), nil
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
