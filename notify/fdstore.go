package notify

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// go-systemd's SdNotify sends text only; the file descriptor store needs
// the descriptors to ride with the message (SCM_RIGHTS), so these few
// calls write the datagram themselves, to the same NOTIFY_SOCKET.

// StoreFD puts a duplicate of fd in systemd's file descriptor store under
// name (FDSTORE=1, FDNAME=): systemd keeps it open while berth restarts
// and passes it to the next berth with the listening sockets, named so in
// LISTEN_FDNAMES. It needs FileDescriptorStoreMax= above zero in the
// unit, or systemd drops it (and says so in the journal).
func (n *Notifier) StoreFD(name string, fd int) error {
	return n.sendFDs(fmt.Sprintf("FDSTORE=1\nFDNAME=%s", name), []int{fd})
}

// RemoveFDs has systemd close its copies of the descriptors stored under
// name (FDSTOREREMOVE=1): once berth serves a handed-over connection, its
// copy in the store must not keep the connection open after berth closes
// it.
func (n *Notifier) RemoveFDs(name string) error {
	return n.sendFDs("FDSTOREREMOVE=1\nFDNAME="+name, nil)
}

// Barrier waits until systemd has read every message sent before it
// (BARRIER=1 with a pipe whose other end systemd closes once it has): the
// descriptors stored on the way out must be in the store before berth
// exits, or systemd could see the exit first and drop them.
func (n *Notifier) Barrier(timeout time.Duration) error {
	if !n.enabled {
		return nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("notify barrier: %w", err)
	}
	defer unix.Close(p[0])
	err := n.sendFDs("BARRIER=1", []int{p[1]})
	unix.Close(p[1])
	if err != nil {
		return err
	}
	fds := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLHUP}}
	for deadline := time.Now().Add(timeout); ; {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("notify barrier: systemd did not answer in time")
		}
		k, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("notify barrier: %w", err)
		}
		if k > 0 {
			return nil
		}
	}
}

// sendFDs sends one notification with fds attached.
func (n *Notifier) sendFDs(state string, fds []int) error {
	if !n.enabled {
		return nil
	}
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return errors.New("NOTIFY_SOCKET is not set")
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sd_notify %q: %w", firstLine(state), err)
	}
	defer unix.Close(sock)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// SockaddrUnix takes a leading '@' for an abstract socket, as systemd
	// writes it.
	if err := unix.Sendmsg(sock, []byte(state), oob, &unix.SockaddrUnix{Name: path}, 0); err != nil {
		return fmt.Errorf("sd_notify %q: %w", firstLine(state), err)
	}
	return nil
}

func firstLine(s string) string {
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
