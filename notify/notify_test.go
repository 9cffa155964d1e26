package notify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// systemd is the receiving end of NOTIFY_SOCKET, as systemd binds it: a
// datagram socket, its path in the environment of the process it runs.
type systemd struct {
	t  *testing.T
	fd int
}

// listen binds a notification socket at name (a path, or "@name" for an
// abstract one) and points NOTIFY_SOCKET at it for the test.
func listen(t *testing.T, name string) *systemd {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	t.Setenv("NOTIFY_SOCKET", name)
	return &systemd{t: t, fd: fd}
}

// next returns the next message and the descriptors that came with it,
// or "" when none comes within wait.
func (s *systemd) next(wait time.Duration) (string, []int) {
	s.t.Helper()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
	// A receive with a timeout is not restarted after a signal, and Go's
	// runtime signals its threads (preemption) at any time: on EINTR,
	// wait again for what is left of wait.
	deadline := time.Now().Add(wait)
	var n, oobn int
	var err error
	for {
		unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: max(time.Until(deadline).Microseconds(), 1)})
		n, oobn, _, _, err = unix.Recvmsg(s.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) || time.Until(deadline) <= 0 {
			break
		}
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return "", nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		s.t.Fatal(err)
	}
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			s.t.Fatal(err)
		}
		fds = append(fds, got...)
	}
	return string(buf[:n]), fds
}

// TestMessages: what each state change says to systemd, on a path socket
// and on an abstract one (systemd's own is abstract).
func TestMessages(t *testing.T) {
	cases := []struct {
		name string
		send func(n *Notifier)
		want string // a regexp of the whole message
	}{
		{"ready", func(n *Notifier) { n.Ready("serving 2 apps") }, "READY=1\nSTATUS=serving 2 apps"},
		{"reloading", func(n *Notifier) { n.Reloading() }, `RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*\nSTATUS=reloading`},
		{"stopping", func(n *Notifier) { n.Stopping("finishing requests") }, "STOPPING=1\nSTATUS=finishing requests"},
		{"status", func(n *Notifier) { n.Status("starting app shop (1 of 2)") }, `STATUS=starting app shop \(1 of 2\)`},
		{"extend timeout", func(n *Notifier) { n.ExtendTimeout(15 * time.Second) }, "EXTEND_TIMEOUT_USEC=15000000"},
	}
	for _, where := range []string{"path", "abstract"} {
		for _, tc := range cases {
			t.Run(where+"/"+tc.name, func(t *testing.T) {
				name := filepath.Join(t.TempDir(), "notify")
				if where == "abstract" {
					name = "@berth-notify-test-" + strconv.Itoa(os.Getpid())
				}
				sd := listen(t, name)
				n := New(quiet)
				if !n.Enabled() {
					t.Fatal("a notifier with NOTIFY_SOCKET set is not enabled")
				}
				tc.send(n)
				got, fds := sd.next(5 * time.Second)
				if !regexp.MustCompile(`\A`+tc.want+`\z`).MatchString(got) || len(fds) != 0 {
					t.Errorf("systemd got %q and %d fds, want %q", got, len(fds), tc.want)
				}
			})
		}
	}
}

// TestDisabled: without NOTIFY_SOCKET nothing is sent and nothing fails,
// as when berth runs outside systemd.
func TestDisabled(t *testing.T) {
	sd := listen(t, filepath.Join(t.TempDir(), "notify"))
	t.Setenv("NOTIFY_SOCKET", "")
	n := New(quiet)
	n.Ready("x")
	n.Status("x")
	if err := n.StoreFD("x", 0); err != nil {
		t.Errorf("StoreFD: %v", err)
	}
	if err := n.Barrier(time.Second); err != nil {
		t.Errorf("Barrier: %v", err)
	}
	if got, _ := sd.next(100 * time.Millisecond); got != "" || n.Enabled() {
		t.Errorf("a disabled notifier sent %q (enabled %v)", got, n.Enabled())
	}
}

// TestFDStore: a stored descriptor reaches systemd as a duplicate of the
// file berth holds, under its name; a removal carries none.
func TestFDStore(t *testing.T) {
	sd := listen(t, filepath.Join(t.TempDir(), "notify"))
	n := New(quiet)
	f, err := os.CreateTemp(t.TempDir(), "conn")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := n.StoreFD("berth-client-http", int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	msg, fds := sd.next(5 * time.Second)
	if msg != "FDSTORE=1\nFDNAME=berth-client-http" || len(fds) != 1 {
		t.Fatalf("systemd got %q with %d fds", msg, len(fds))
	}
	defer unix.Close(fds[0])
	var mine, theirs unix.Stat_t
	unix.Fstat(int(f.Fd()), &mine)
	unix.Fstat(fds[0], &theirs)
	if mine.Ino != theirs.Ino || mine.Dev != theirs.Dev {
		t.Errorf("the stored descriptor is another file (inode %d, want %d)", theirs.Ino, mine.Ino)
	}
	if err := n.RemoveFDs("berth-client-http"); err != nil {
		t.Fatal(err)
	}
	if msg, fds := sd.next(5 * time.Second); msg != "FDSTOREREMOVE=1\nFDNAME=berth-client-http" || len(fds) != 0 {
		t.Errorf("systemd got %q with %d fds", msg, len(fds))
	}
}

// TestBarrier: Barrier returns once systemd closes the pipe end that came
// with BARRIER=1, and fails when systemd does not within the timeout.
func TestBarrier(t *testing.T) {
	cases := []struct {
		name   string
		answer bool
		err    string
	}{
		{"systemd answers", true, ""},
		{"systemd is silent", false, "notify barrier: systemd did not answer in time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sd := listen(t, filepath.Join(t.TempDir(), "notify"))
			n := New(quiet)
			got := make(chan [2]any, 1)
			go func() {
				msg, fds := sd.next(5 * time.Second)
				got <- [2]any{msg, fds}
			}()
			done := make(chan error, 1)
			go func() { done <- n.Barrier(500 * time.Millisecond) }()
			m := <-got
			msg, fds := m[0].(string), m[1].([]int)
			if msg != "BARRIER=1" || len(fds) != 1 {
				t.Fatalf("systemd got %q with %d fds", msg, len(fds))
			}
			if tc.answer {
				unix.Close(fds[0])
			} else {
				defer unix.Close(fds[0])
			}
			err := <-done
			if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
				t.Errorf("Barrier: %v, want %q", err, tc.err)
			}
		})
	}
}

// TestWatchdog: pings come at half of WATCHDOG_USEC while healthy() holds,
// stop while it fails, and start again when it holds again.
func TestWatchdog(t *testing.T) {
	sd := listen(t, filepath.Join(t.TempDir(), "notify"))
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	var sick atomic.Bool
	healthy := func() error {
		if sick.Load() {
			return errors.New("the supervision loop is stuck")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { New(quiet).Watchdog(ctx, healthy); close(done) }()
	pings := func(d time.Duration) int {
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end); {
			if msg, _ := sd.next(time.Until(end) + time.Millisecond); msg == "WATCHDOG=1" {
				n++
			} else if msg != "" {
				t.Errorf("unexpected message %q", msg)
			}
		}
		return n
	}
	if n := pings(500 * time.Millisecond); n < 3 {
		t.Errorf("healthy: %d pings in 500 ms at a 50 ms interval", n)
	}
	sick.Store(true)
	pings(100 * time.Millisecond) // one may have been on its way
	if n := pings(300 * time.Millisecond); n != 0 {
		t.Errorf("unhealthy: %d pings", n)
	}
	sick.Store(false)
	if n := pings(300 * time.Millisecond); n < 2 {
		t.Errorf("healthy again: %d pings in 300 ms", n)
	}
	cancel()
	<-done
}

// TestWatchdogOff: without WATCHDOG_USEC, Watchdog returns at once.
func TestWatchdogOff(t *testing.T) {
	listen(t, filepath.Join(t.TempDir(), "notify"))
	t.Setenv("WATCHDOG_USEC", "")
	done := make(chan struct{})
	go func() { New(quiet).Watchdog(context.Background(), func() error { return nil }); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watchdog without WATCHDOG_USEC did not return")
	}
}
