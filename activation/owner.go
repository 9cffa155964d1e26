package activation

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// Owner is the mode and ownership a Unix socket berth binds itself is
// given. Connecting to a Unix socket takes write permission on its file,
// so this is who may talk to the listener: a reverse proxy on the same
// host (nginx's workers run as www-data on Debian, nginx on RPM
// distributions) is let in through the socket's group. A socket systemd
// passed is never changed: its unit's SocketMode=, SocketUser= and
// SocketGroup= apply.
type Owner struct {
	// Mode is the socket file's permission bits; 0 leaves them as bind(2)
	// and the umask make them.
	Mode os.FileMode
	// User and Group own the socket file when set: names, or numeric ids.
	// Changing the user needs root (CAP_CHOWN); the group, root or
	// membership of it.
	User, Group string
}

// ids resolves the owner's user and group to the numeric ids chown takes,
// -1 for one that is not set. Resolving comes before binding, so that an
// unknown name fails the listener before anything exists on disk.
//
// os/user reads /etc/passwd and /etc/group in berth's static build (no
// NSS): a user or group only in LDAP or systemd-userdb is given by
// number.
func (o Owner) ids() (uid, gid int, err error) {
	uid, gid = -1, -1
	if o.User != "" {
		if uid, err = lookupID(o.User, func(n string) (string, error) {
			u, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		}); err != nil {
			return -1, -1, fmt.Errorf("socket user %q: %w", o.User, err)
		}
	}
	if o.Group != "" {
		if gid, err = lookupID(o.Group, func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		}); err != nil {
			return -1, -1, fmt.Errorf("socket group %q: %w", o.Group, err)
		}
	}
	return uid, gid, nil
}

// lookupID is name as a number, or the id lookup finds for it.
func lookupID(name string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.ParseUint(name, 10, 31); err == nil {
		return int(n), nil
	}
	id, err := lookup(name)
	var unknownUser user.UnknownUserError
	var unknownGroup user.UnknownGroupError
	if errors.As(err, &unknownUser) || errors.As(err, &unknownGroup) {
		return -1, errors.New("no such name on this system")
	}
	if err != nil {
		return -1, err
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return -1, fmt.Errorf("id %q is not a number", id)
	}
	return n, nil
}

// restrict has bind(2) create the socket file with at most mode's bits:
// Linux gives the file the socket inode's mode less the umask, and
// fchmod on the socket before bind sets that inode's mode. From its
// first moment the file is then never more open than asked (the umask can
// only take bits away; own sets the exact mode once the owner is right).
func restrict(mode os.FileMode) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		if mode == 0 {
			return nil
		}
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), uint32(mode.Perm())) }); cerr != nil {
			return cerr
		}
		if err != nil {
			return fmt.Errorf("setting the socket's mode before binding: %w", err)
		}
		return nil
	}
}

// own gives the socket file at path o's owner (uid, gid from o.ids; -1
// keeps one) and then its exact mode. The owner comes first: until then
// the mode is at most what was asked less the umask, so the group that
// owned the file a moment before never had more than read access.
func own(path string, o Owner, uid, gid int) error {
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("giving %s to %s: %w (berth runs as uid %d: another user takes root, another group root or membership of it)",
				path, o.who(), err, os.Getuid())
		}
	}
	if o.Mode != 0 {
		if err := os.Chmod(path, o.Mode.Perm()); err != nil {
			return fmt.Errorf("setting the mode of %s to %04o: %w", path, o.Mode.Perm(), err)
		}
	}
	return nil
}

// who names the owner for messages: user "a" group "b".
func (o Owner) who() string {
	var s string
	if o.User != "" {
		s = fmt.Sprintf("user %q", o.User)
	}
	if o.Group != "" {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("group %q", o.Group)
	}
	return s
}

// SetOwner gives a bound Unix socket a new mode and owner, in place: the
// socket stays bound and keeps its connections, so a reload that changes
// only socket_mode, socket_user or socket_group costs nothing. A socket
// systemd passed is left as its unit made it (only the Spec records o);
// a TCP socket has no file to change.
func (s *Socket) SetOwner(o Owner) error {
	if s.Passed || s.Spec.Network != "unix" {
		s.Spec.Owner = o
		return nil
	}
	uid, gid, err := o.ids()
	if err == nil {
		err = own(s.Spec.Address, o, uid, gid)
	}
	if err != nil {
		return fmt.Errorf("listener %q: %w", s.Name, err)
	}
	s.Spec.Owner = o
	return nil
}
