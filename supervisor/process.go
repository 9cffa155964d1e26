package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/metrics"
	"github.com/berthd/berth/units"
	"github.com/berthd/berth/wire"
)

// wireBufferSize is the size of berth's read buffer on a worker's
// socket: a typical response then crosses in one read.
const wireBufferSize = 256 << 10

// socketBufferSize is the socket buffer asked for on both ends of a
// worker's socketpair (the kernel caps it at net.core.wmem_max and
// rmem_max): a 1 MiB upload then goes to the worker in one write, not in
// pieces each waiting for the worker to read the one before (bench/ab.sh
// upload-1m: 2.03-2.12k -> 2.20-2.25k req/s, berth 371-384 -> 349-351 us
// and the worker 272-280 -> 241-248 us a request; 256 KiB responses
// 7.7-7.8k -> 7.6-8.2k; hello the same). It is memory only while bytes
// wait in it.
const socketBufferSize = 2 << 20

// process is one running Python worker and berth's ends of its sockets:
// one per thread of the worker (a lane), each carrying one request at a
// time (lane 0 takes batches).
type process struct {
	pid    int
	cmd    *exec.Cmd
	lanes  []*lane
	log    *slog.Logger
	exited chan struct{} // closed once the process has been reaped
	python string
	// version is the Python version the worker said hello with.
	version string
	// starts is the last request each lane's thread started, read from
	// the worker's marks once it has been reaped (see started).
	starts []uint32
	// asks is the pipe by which berth asks the worker to send the
	// answers it has made so far (askFlush).
	asks *os.File
	// out is where the worker's threads may leave response bodies.
	out *outRegion
	// m counts the worker's end, by cause: a crash unless berth said
	// otherwise before it killed the worker (setCause).
	m     *metrics.App
	cause atomic.Int32
	// group is the app's cgroup the worker runs in (nil: berth's own);
	// oom, once the worker is reaped, what it was killed under when the
	// kernel's OOM killer ended it ("" otherwise).
	group *appGroup
	oom   string
}

// setCause says why berth is about to end the worker, for its count.
func (p *process) setCause(c metrics.Cause) { p.cause.Store(int32(c)) }

// askFlush asks the worker to send the answers of a batch it has made so
// far, without waiting for the rest of the batch: one of its requests is
// slow. A worker thread waits for these asks (worker.py's
// flush_when_asked). Harmless when there is nothing to send, or once the
// worker has gone.
func (p *process) askFlush() {
	_, _ = p.asks.Write([]byte{1})
}

// lane is one socket to a worker: one thread of it. Only the goroutine
// serving the lane touches it.
type lane struct {
	conn *wire.FDConn
	r    *wire.Reader
	br   *bufio.Reader // under r: what of the worker's answers is read already
	// seq counts the requests sent on the lane, as the worker counts
	// those it reads: a cancel frame names its request by this number.
	seq   uint32
	index int // the worker thread's number, and its place in the marks
}

func newLane(c *net.UnixConn, index int) *lane {
	fc := wire.NewFDConn(c)
	br := bufio.NewReaderSize(fc, wireBufferSize)
	return &lane{conn: fc, r: wire.NewReader(br), br: br, index: index}
}

// The marks are a small shared memory file (memfd) in which each thread
// of a worker writes the number of the request it is starting (uint32
// little endian at 4 × its lane's index), before the app sees it: a
// memory store, not a system call. A worker answers a batch's requests in
// one write at its end, so when it dies berth cannot tell from the answers
// which request it was in; the marks tell, and so a request the worker
// never started is sent again and one it started never is (it must not
// run twice).
func newMarks(lanes int) (*os.File, error) {
	fd, err := unix.MemfdCreate("berth-marks", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating the worker's marks: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth-marks")
	if err := f.Truncate(int64(4 * lanes)); err != nil {
		f.Close()
		return nil, fmt.Errorf("sizing the worker's marks: %w", err)
	}
	return f, nil
}

// readMarks returns the marks of lanes lanes. Unreadable marks count as
// every request started: a request may fail that could have been sent
// again, but none runs twice.
func readMarks(f *os.File, lanes int) []uint32 {
	b := make([]byte, 4*lanes)
	if _, err := f.ReadAt(b, 0); err != nil {
		for i := range b {
			b[i] = 0xff
		}
	}
	starts := make([]uint32, lanes)
	for i := range starts {
		starts[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return starts
}

// started returns the number of the last request the worker started on
// ln. The worker must be dead: it waits until it is reaped.
func (p *process) started(ln *lane) uint32 {
	<-p.exited
	return p.starts[ln.index]
}

// socketPair returns berth's end of a new socketpair, and the worker's.
func socketPair() (*net.UnixConn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("creating worker socket: %w", err)
	}
	for _, fd := range fds {
		// Best effort: a larger buffer lets a big response cross in fewer
		// round trips; the kernel caps it at net.core.wmem_max.
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, socketBufferSize)
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, socketBufferSize)
	}
	parent := os.NewFile(uintptr(fds[0]), "berth-wire")
	child := os.NewFile(uintptr(fds[1]), "worker-wire")
	fc, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		child.Close()
		return nil, nil, fmt.Errorf("wrapping worker socket: %w", err)
	}
	return fc.(*net.UnixConn), child, nil
}

// BootError is a worker that could not import its app. Traceback is
// Python's own report.
type BootError struct {
	App       string
	Traceback string
}

func (e *BootError) Error() string {
	return fmt.Sprintf("app %q failed to boot:\n%s", e.App, strings.TrimRight(e.Traceback, "\n"))
}

// spawn starts one worker and waits for its hello, at most the app's boot
// timeout. The worker's socket is fd 3; its stdout and stderr are pipes
// whose lines go to the log with the worker's pid.
//
// With g, the worker starts in the app's cgroup (see workerAttr).
func spawn(ctx context.Context, app *units.App, gen int, log *slog.Logger, g *appGroup) (*process, error) {
	threads := max(app.Threads, 1)
	args, err := workerArgs(app.Name, gen)
	if err != nil {
		return nil, err
	}
	wf, err := openWorkerFiles(threads)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(app.Python, args...)
	cmd.Dir = app.Chdir
	cmd.Env = append(workerEnv(app), "BERTH_MODULE="+app.Module, "BERTH_THREADS="+strconv.Itoa(threads))
	cmd.Stdout, cmd.Stderr = wf.stdoutW, wf.stderrW
	cmd.ExtraFiles = wf.extraFiles(threads)
	err = startIn(cmd, g)
	// The worker has its ends now (or never will): closed here, a worker
	// that dies before its hello is seen at once, by EOF on its socket.
	wf.closeWorkerEnds()
	if err != nil {
		wf.closeOurEnds()
		return nil, fmt.Errorf("starting python %q: %w", app.Python, err)
	}
	if app.Scheduling == units.SchedBatch {
		// berth sets it as soon as the worker exists, so the worker
		// need not know of it; the threads it starts inherit it.
		if err := unix.SchedSetAttr(cmd.Process.Pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH}, 0); err != nil {
			log.Warn("could not set the worker's scheduling policy to batch", "pid", cmd.Process.Pid, "err", err)
		}
	}
	p := &process{
		pid:    cmd.Process.Pid,
		cmd:    cmd,
		lanes:  wf.lanes,
		log:    log.With(journal.KeyPID, cmd.Process.Pid),
		exited: make(chan struct{}),
		python: app.Python,
		asks:   wf.asksW,
		out:    wf.out,
		group:  g,
	}
	p.watch(wf, threads)
	if err := p.awaitHello(ctx, app); err != nil {
		return nil, err
	}
	return p, nil
}

// watch starts the goroutines that log the worker's output and reap it.
func (p *process) watch(wf *workerFiles, threads int) {
	go p.pump(wf.stdoutR, slog.LevelInfo, "stdout")
	go p.pump(wf.stderrR, slog.LevelWarn, "stderr")
	go p.pumpRecords(wf.logR)
	go func() {
		_ = p.cmd.Wait()
		p.checkOOM()
		p.starts = readMarks(wf.marks, threads)
		wf.marks.Close()
		wf.asksW.Close()
		wf.out.close() // once the worker is reaped (and no exchange reads it)
		close(p.exited)
	}()
}

// awaitHello waits for the worker's hello, at most the app's boot timeout
// or ctx's deadline. On anything else the worker is killed and the error
// says why.
func (p *process) awaitHello(ctx context.Context, app *units.App) (err error) {
	conn := p.lanes[0].conn
	deadline := time.Now().Add(app.BootTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	f, err := p.lanes[0].r.Next()
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		err = fmt.Errorf("worker %d: %w", p.pid, ctx.Err())
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("worker %d did not say hello within boot_timeout %s", p.pid, app.BootTimeout)
	case err != nil:
		err = fmt.Errorf("worker %d exited before it was ready (%s): %w", p.pid, p.exitStatus(), err)
	case f.Type == wire.TypeBootFailed:
		err = &BootError{App: app.Name, Traceback: string(f.Payload)}
	case f.Type != wire.TypeHello:
		err = fmt.Errorf("worker %d sent %s before hello", p.pid, f.Type)
	default:
		var h wire.Hello
		if h, err = wire.ParseHello(f.Payload); err != nil {
			err = fmt.Errorf("worker %d: %w", p.pid, err)
			break
		}
		p.log.Debug("worker ready", "python", h.Python)
		p.version = h.Python
	}
	if err != nil {
		p.kill()
	}
	return err
}

// privateEnv are variables systemd meant for berth itself: a worker that
// inherited them could notify systemd or take berth's sockets.
var privateEnv = []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "BERTH_TEST_HOOKS="}

// workerEnv is berth's environment, less what is berth's own, plus the
// app's env and PYTHONPATH.
func workerEnv(app *units.App) []string {
	var env, path []string
	path = append(path, app.PythonPath...)
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "PYTHONPATH="); ok {
			if v != "" {
				path = append(path, v)
			}
			continue
		}
		private := false
		for _, p := range privateEnv {
			private = private || strings.HasPrefix(kv, p)
		}
		if !private {
			env = append(env, kv)
		}
	}
	if len(path) > 0 {
		env = append(env, "PYTHONPATH="+strings.Join(path, string(filepath.ListSeparator)))
	}
	// Later entries win (os/exec keeps the last of a name): berth's
	// malloc defaults, then what berth's own environment says, then the
	// app's env.
	env = append(mallocDefaults, env...)
	for k, v := range app.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// mallocDefaults tune glibc's malloc in the workers, unless the app or
// berth's environment set these variables. By default glibc serves each
// allocation over 128 KiB with a fresh mmap and returns it on free, so a
// worker handling 1 MiB bodies faults in every page of every body again
// on every request: measured on this project's VM, a 1 MiB upload cost
// the worker 6.7 ms of CPU, 0.3 ms with these settings. Allocations under
// 8 MiB come from the heap instead, and up to 32 MiB of free heap is kept.
var mallocDefaults = []string{"MALLOC_MMAP_THRESHOLD_=8388608", "MALLOC_TRIM_THRESHOLD_=33554432"}

// pyLevel maps a Python logging level name to a log level.
func pyLevel(name string) slog.Level {
	switch name {
	case "DEBUG":
		return slog.LevelDebug
	case "INFO":
		return slog.LevelInfo
	case "WARNING":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	case "CRITICAL":
		return journal.LevelCritical
	}
	return slog.LevelInfo
}

// pumpRecords logs the structured records the worker writes on fd 4,
// each as one record with its level and logger name, however many lines
// its message has.
func (p *process) pumpRecords(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var rec struct{ Level, Logger, Msg string }
			if json.Unmarshal(line, &rec) != nil {
				p.log.Warn(string(bytes.TrimRight(line, "\n")), "stream", "log")
			} else {
				p.log.Log(context.Background(), pyLevel(rec.Level), rec.Msg, journal.KeyLogger, rec.Logger)
			}
		}
		if err != nil {
			return
		}
	}
}

// maxLogLine is where pump cuts a line the worker writes; the rest of the
// line follows in further records.
const maxLogLine = 64 << 10

// partialWait is how long pump holds a line that came without its
// newline before logging it as it is: an app that flushes a part of a
// line (wsgi.errors.flush(): PEP 3333 says flushed output is written) is
// heard at once, while a line written in a few pieces stays one record.
const partialWait = 50 * time.Millisecond

// pump logs each line the worker writes to stdout or stderr. It reads
// until the worker closes the pipe, whatever it writes: a pipe closed
// early would make the worker's next print fail.
func (p *process) pump(r *os.File, level slog.Level, stream string) {
	defer r.Close()
	buf := make([]byte, maxLogLine)
	n := 0 // bytes held: the start of a line
	for {
		wait := time.Time{}
		if n > 0 {
			wait = time.Now().Add(partialWait)
		}
		_ = r.SetReadDeadline(wait)
		m, err := r.Read(buf[n:])
		n += m
		start := 0
		for {
			i := bytes.IndexByte(buf[start:n], '\n')
			if i < 0 {
				break
			}
			p.logLine(level, buf[start:start+i], stream)
			start += i + 1
		}
		n = copy(buf, buf[start:n])
		if n > 0 && (n == len(buf) || err != nil) {
			p.logLine(level, buf[:n], stream)
			n = 0
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

func (p *process) logLine(level slog.Level, line []byte, stream string) {
	p.log.Log(context.Background(), level, string(bytes.TrimRight(line, "\r")), "stream", stream)
}

// kill ends the worker at once and waits until it is reaped.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	p.closeLanes()
	<-p.exited
}

func (p *process) closeLanes() {
	for _, l := range p.lanes {
		l.conn.Close()
	}
}

// dumpAndKill asks the worker for a stack dump of all its threads
// (faulthandler on SIGUSR1), gives it a moment to write it, then kills it.
func (p *process) dumpAndKill() {
	_ = p.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-p.exited:
	case <-time.After(200 * time.Millisecond):
	}
	p.kill()
}

// stop closes the worker's socket, which the worker reads as "exit now";
// one that has not exited after grace is killed.
func (p *process) stop(grace time.Duration) (killed bool) {
	p.closeLanes()
	select {
	case <-p.exited:
		return false
	case <-time.After(grace):
		p.kill()
		return true
	}
}

// rss is the worker's resident memory in bytes, from /proc; 0 if unknown.
func (p *process) rss() int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// exitStatus describes how the worker ended, for log lines.
func (p *process) exitStatus() string {
	select {
	case <-p.exited:
	case <-time.After(time.Second):
		return "still running"
	}
	if p.oom != "" {
		return "killed by the OOM killer: " + p.oom
	}
	if st := p.cmd.ProcessState; st != nil {
		return st.String()
	}
	return "unknown"
}

// workerAttr is how a worker starts. If berth dies without stopping its
// workers (SIGKILL), the kernel kills them: no orphans (workers also exit
// on EOF of their socket). With its app's cgroup g, the worker is cloned
// into it where clone3 is allowed (CLONE_INTO_CGROUP): it is held to the
// app's limits before it runs anything, with no moment in berth's cgroup.
func workerAttr(g *appGroup) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if g != nil && g.cloneInto {
		attr.UseCgroupFD, attr.CgroupFD = true, g.g.FD()
	}
	return attr
}

// startIn starts cmd in g, holding g's directory open meanwhile (the
// app's removal closes it). Where clone3 is refused, the worker is moved
// into g once started: in the time Python takes to start, well before
// it imports the app. A worker that cannot be put in g is killed.
func startIn(cmd *exec.Cmd, g *appGroup) error {
	if g == nil {
		cmd.SysProcAttr = workerAttr(nil)
		return cmd.Start()
	}
	g.use.RLock()
	defer g.use.RUnlock()
	cmd.SysProcAttr = workerAttr(g) // its descriptor is open while use is held
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("in cgroup %s: %w", g.g.Dir(), err)
	}
	if !g.cloneInto {
		if err := g.g.Move(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return err
		}
	}
	return nil
}

// checkOOM, once the worker is reaped, tells a worker the kernel's OOM
// killer ended from a crash: it died of SIGKILL that berth did not send
// for a reason of its own, and its app's cgroup counts an OOM kill not
// yet put down to another worker. It is logged and counted as such.
func (p *process) checkOOM() {
	if p.group == nil || metrics.Cause(p.cause.Load()) != metrics.CauseCrash {
		return
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL || !p.group.claimOOM() {
		return
	}
	p.oom = p.group.oomNote()
	p.setCause(metrics.CauseOOM)
	p.log.Error("worker killed by the OOM killer: " + p.oom)
}
