package supervisor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthd/berth/internal/fakeworker"
	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
	"github.com/berthd/berth/wire"
)

// The tests in this file run the pool against the fake worker (package
// fakeworker: this test binary, re-run as the app's python), not Python:
// queueing, timeouts, batching, crashes and recycling in milliseconds.
// The worker's side of the wire is real (frames over the socketpair,
// the marks, the flush pipe); only the app is missing.

func TestMain(m *testing.M) {
	fakeworker.MaybeRun() // this binary is also the worker of the fake tests and TestSpawnFiles
	os.Exit(m.Run())
}

// fakePool starts a pool of the fake worker, with what edit changes in
// its app, and returns it, once a worker is idle, with the file in which
// its workers record each request they start.
func fakePool(t *testing.T, edit func(*units.App)) (*Pool, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	starts := filepath.Join(t.TempDir(), "starts")
	app := units.App{
		Name: "fake", Module: "fake", Python: exe, Workers: 1,
		Env:     fakeworker.Env(starts),
		Timeout: 10 * time.Second, BootTimeout: 10 * time.Second,
		QueueSize: 16, QueueTimeout: 10 * time.Second, MaxBodyBytes: 1 << 20,
	}
	if edit != nil {
		edit(&app)
	}
	p := NewPool(app, 1, journal.New(io.Discard, slog.LevelInfo))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(ctx)
	})
	waitIdle(t, p) // a first request then finds the worker idle
	return p, starts
}

// fakeRequest is a GET of target ("/path?query") for the fake worker.
func fakeRequest(target string) Request {
	path, query, _ := strings.Cut(target, "?")
	var e wire.RequestEncoder
	e.Reset()
	e.AddString("REQUEST_METHOD", "GET")
	e.AddString("PATH_INFO", path)
	e.AddString("QUERY_STRING", query)
	return Request{Frame: append([]byte(nil), e.Finish(0)...)}
}

// fakeAnswer is what became of one request: the worker that answered,
// its place in the batch the worker found it in, and the query it echoed.
type fakeAnswer struct {
	err   error
	pid   int
	place int
	query string
}

// answerOf reads ex's answer whole and closes it.
func answerOf(ex *Exchange) fakeAnswer {
	defer ex.Close()
	body, err := bodyOf(ex)
	a := fakeAnswer{err: err, pid: ex.PID}
	for _, h := range ex.Head.Headers {
		if string(h.Name) == "X-Batch" {
			a.place, _ = strconv.Atoi(string(h.Value))
		}
	}
	if lines := strings.Split(body, "\n"); len(lines) > 2 {
		a.query = lines[2]
	}
	return a
}

// fakeDo sends a request from a goroutine of its own and delivers its
// answer.
func fakeDo(p *Pool, target string) <-chan fakeAnswer {
	ch := make(chan fakeAnswer, 1)
	go func() {
		ex, err := p.Do(fakeRequest(target))
		if err != nil {
			ch <- fakeAnswer{err: err}
			return
		}
		ch <- answerOf(ex)
	}()
	return ch
}

// hold takes a worker of the pool with a request whose exchange stays
// open (the worker is reserved until it is closed), so that what follows
// queues. It returns the worker's pid and the exchange's Close, which
// the test's end calls too if the test has not (a worker held for ever
// would hold the pool's Stop).
func hold(t *testing.T, p *Pool, target string) (pid int, release func()) {
	t.Helper()
	ex, err := p.Do(fakeRequest(target))
	if err != nil {
		t.Fatal(err)
	}
	release = sync.OnceFunc(ex.Close)
	t.Cleanup(release)
	return ex.PID, release
}

// await waits for one answer, at most 10 s.
func await(t *testing.T, ch <-chan fakeAnswer, what string) fakeAnswer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer after 10 s", what)
		return fakeAnswer{}
	}
}

// started returns the requests the pool's workers started, in order:
// each as the pid of its worker and its id (the query's id=).
func started(t *testing.T, log string) (pids []int, ids []string) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		pid, target, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(pid)
		_, query, _ := strings.Cut(target, "?")
		q, _ := url.ParseQuery(query)
		pids, ids = append(pids, n), append(ids, q.Get("id"))
	}
	return pids, ids
}

// startedIDs is started's ids.
func startedIDs(t *testing.T, log string) []string {
	t.Helper()
	_, ids := started(t, log)
	return ids
}

// TestFakeQueueLimits: with the only worker busy, a request waits in the
// queue and is served when the worker is free; one past the queue's
// size is refused at once (ErrQueueFull, 503), and one that waits past
// queue_timeout gets ErrQueueTimeout (503) and never reaches a worker.
func TestFakeQueueLimits(t *testing.T) {
	for _, tc := range []struct {
		name         string
		size         int
		queueTimeout time.Duration
		waiting      int   // requests queued first, which are served
		want         error // for the one after them
	}{
		{"room in the queue", 4, 10 * time.Second, 2, nil},
		{"queue full", 2, 10 * time.Second, 2, ErrQueueFull},
		{"queue of 0", 0, 10 * time.Second, 0, ErrQueueFull},
		{"queue_timeout", 4, 50 * time.Millisecond, 0, ErrQueueTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has a pool and workers of its own
			p, log := fakePool(t, func(a *units.App) { a.QueueSize, a.QueueTimeout = tc.size, tc.queueTimeout })
			_, release := hold(t, p, "/?id=hold")
			var waiting []<-chan fakeAnswer
			for i := range tc.waiting {
				waiting = append(waiting, fakeDo(p, "/?id=w"+strconv.Itoa(i)))
				waitQueued(t, p, i+1)
			}
			start := time.Now()
			probe := fakeDo(p, "/?id=probe")
			var got fakeAnswer
			if tc.want != nil { // refused while the worker is held
				got = await(t, probe, "the probe")
				if waited := time.Since(start); tc.want == ErrQueueTimeout && waited < tc.queueTimeout {
					t.Errorf("ErrQueueTimeout after %v, before queue_timeout %v", waited, tc.queueTimeout)
				}
			}
			if tc.want == nil {
				waitQueued(t, p, tc.waiting+1)
			}
			release()
			if tc.want == nil {
				got = await(t, probe, "the probe")
			}
			if !errors.Is(got.err, tc.want) {
				t.Errorf("the request after %d waiting: %v, want %v", tc.waiting, got.err, tc.want)
			}
			want := []string{"hold"}
			for i, ch := range waiting {
				if a := await(t, ch, "a waiting request"); a.err != nil {
					t.Errorf("waiting request %d: %v", i, a.err)
				}
				want = append(want, "w"+strconv.Itoa(i))
			}
			if tc.want == nil {
				want = append(want, "probe")
			}
			// A request served after the refused one shows the worker
			// is past any request it might still have been given.
			if a := answerOf(mustDo(t, p, "/?id=after")); a.err != nil {
				t.Fatal(a.err)
			}
			if got := startedIDs(t, log); !slices.Equal(got, append(want, "after")) {
				t.Errorf("the worker started %v, want %v", got, append(want, "after"))
			}
		})
	}
}

func mustDo(t *testing.T, p *Pool, target string) *Exchange {
	t.Helper()
	ex, err := p.Do(fakeRequest(target))
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return ex
}

// TestFakeWorkerLost: a worker that crashes in a request fails that
// request only (ErrWorkerDied, 502), one stuck past the app's timeout
// fails it with ErrTimeout (504) and is killed; either way the next
// request is served by a replacement. One that dies while idle costs
// nothing: the next request waits for its replacement.
func TestFakeWorkerLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string // "": the worker is killed while idle
		want   error
	}{
		{"crash in a request", "/crash?id=x", ErrWorkerDied},
		{"stuck past the timeout", "/hang?id=x", ErrTimeout},
		{"slow past the timeout", "/sleep?ms=5000&id=x", ErrTimeout},
		{"killed while idle", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has a pool and workers of its own
			const timeout = 200 * time.Millisecond
			p, log := fakePool(t, func(a *units.App) { a.Timeout = timeout })
			before := answerOf(mustDo(t, p, "/?id=before"))
			start := time.Now()
			if tc.target == "" {
				syscall.Kill(before.pid, syscall.SIGKILL)
			} else {
				if a := await(t, fakeDo(p, tc.target), tc.target); !errors.Is(a.err, tc.want) {
					t.Fatalf("GET %s: %v, want %v", tc.target, a.err, tc.want)
				}
				if waited := time.Since(start); tc.want == ErrTimeout && waited < timeout {
					t.Errorf("ErrTimeout after %v, before the timeout %v", waited, timeout)
				}
			}
			after := answerOf(mustDo(t, p, "/?id=after"))
			if after.err != nil || after.pid == before.pid {
				t.Errorf("the next request: %v, served by %d; want a replacement of %d", after.err, after.pid, before.pid)
			}
			if err := syscall.Kill(before.pid, 0); err != syscall.ESRCH {
				t.Errorf("the lost worker %d is still there (%v)", before.pid, err)
			}
			if st := p.Status(); len(st.Workers) != 1 || st.Workers[0].PID != after.pid {
				t.Errorf("workers %+v, want the replacement %d alone", st.Workers, after.pid)
			}
			want := []string{"before", "x", "after"}
			if tc.target == "" {
				want = []string{"before", "after"}
			}
			if got := startedIDs(t, log); !slices.Equal(got, want) {
				t.Errorf("started %v, want %v: each request once", got, want)
			}
		})
	}
}

// TestFakeBatch: requests queued behind a busy worker of a fast app go
// to it in one write when it is free (it finds them waiting together:
// places 1, 2, 3...), at most maxBatch at a time, and each gets its own
// answer, in order.
func TestFakeBatch(t *testing.T) {
	for _, n := range []int{1, 5, maxBatch + 8} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel() // each case has a pool and workers of its own
			p, log := fakePool(t, func(a *units.App) { a.QueueSize = 64 })
			_, release := hold(t, p, "/?id=hold")
			var chs []<-chan fakeAnswer
			for i := range n {
				chs = append(chs, fakeDo(p, "/?id="+strconv.Itoa(i)))
				waitQueued(t, p, i+1)
			}
			p.serviceNS.Store(int64(time.Microsecond)) // a fast app: batches
			release()
			want, prev := []string{"hold"}, 0
			for i, ch := range chs {
				a := await(t, ch, "request "+strconv.Itoa(i))
				if a.err != nil || a.query != "id="+strconv.Itoa(i) {
					t.Errorf("request %d: %v, answered %q", i, a.err, a.query)
				}
				// The first maxBatch go in one write; those after them in
				// writes of their own (as many at a time as the app's
				// pace, measured meanwhile, allows).
				if want := i + 1; i < maxBatch && a.place != want || i == maxBatch && a.place != 1 || i > maxBatch && a.place != 1 && a.place != prev+1 {
					t.Errorf("request %d was number %d of the requests its worker found waiting together", i, a.place)
				}
				prev = a.place
				want = append(want, strconv.Itoa(i))
			}
			if got := startedIDs(t, log); !slices.Equal(got, want) {
				t.Errorf("started %v, want %v", got, want)
			}
		})
	}
}

// TestFakeBatchDeath: a worker that crashes or hangs in the middle of a
// batch costs the request it was in (502, or 504 past the timeout) and
// the answers it had made but not sent (502); the requests it never
// started are served by its replacement, and none runs twice. Past the
// timeout, the answers it had made before the stuck request were asked
// for (the batch was overdue) and arrived.
func TestFakeBatchDeath(t *testing.T) {
	const old, replacement = "old", "new"
	for _, tc := range []struct {
		name  string
		batch []string
		want  []any // per request: old, replacement or the error it gets
	}{
		{"crash first", []string{"/crash", "/", "/"}, []any{ErrWorkerDied, replacement, replacement}},
		{"crash second", []string{"/", "/crash", "/", "/"}, []any{ErrWorkerDied, ErrWorkerDied, replacement, replacement}},
		{"crash last", []string{"/", "/", "/crash"}, []any{ErrWorkerDied, ErrWorkerDied, ErrWorkerDied}},
		{"hang second", []string{"/", "/hang", "/"}, []any{old, ErrTimeout, replacement}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has a pool and workers of its own
			p, log := fakePool(t, func(a *units.App) { a.Timeout = 300 * time.Millisecond })
			heldPID, release := hold(t, p, "/?id=hold")
			var chs []<-chan fakeAnswer
			for i, path := range tc.batch {
				chs = append(chs, fakeDo(p, path+"?id="+strconv.Itoa(i)))
				waitQueued(t, p, i+1)
			}
			p.serviceNS.Store(int64(time.Microsecond))
			release()
			for i, ch := range chs {
				a := await(t, ch, "request "+strconv.Itoa(i))
				var got any = a.err
				switch {
				case a.err != nil:
				case a.pid == heldPID:
					got = old
				default:
					got = replacement
				}
				if got != tc.want[i] {
					t.Errorf("request %d (%s): %v, want %v", i, tc.batch[i], got, tc.want[i])
				}
			}
			// Each started once: those that failed, by the worker that
			// failed them.
			ranOn := map[string][]int{}
			pids, ids := started(t, log)
			for k, id := range ids {
				ranOn[id] = append(ranOn[id], pids[k])
			}
			for i := range tc.batch {
				ran := ranOn[strconv.Itoa(i)]
				by := "the first worker"
				if tc.want[i] == replacement {
					by = "its replacement"
				}
				if len(ran) != 1 || (tc.want[i] == replacement) == (ran[0] == heldPID) {
					t.Errorf("request %d (%s) started by workers %v (the first: %d), want once by %s", i, tc.batch[i], ran, heldPID, by)
				}
			}
		})
	}
}

// TestFakeRecycle: a worker that has served max_requests is replaced,
// without a request failing, whether it served them directly or from
// the queue; the old worker ends once the new one serves.
func TestFakeRecycle(t *testing.T) {
	for _, tc := range []struct {
		name   string
		queued int // requests queued behind the first, served as a batch
	}{
		{"served directly", 0},
		{"served from the queue", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has a pool and workers of its own
			const limit = 3
			p, _ := fakePool(t, func(a *units.App) { a.MaxRequests = limit })
			first, release := hold(t, p, "/?id=hold")
			served := 1
			var chs []<-chan fakeAnswer
			for i := range tc.queued {
				chs = append(chs, fakeDo(p, "/?id=q"))
				waitQueued(t, p, i+1)
			}
			p.serviceNS.Store(int64(time.Microsecond))
			release()
			for _, ch := range chs {
				if a := await(t, ch, "a queued request"); a.err != nil || a.pid != first {
					t.Fatalf("a queued request: %v from %d, want the first worker %d", a.err, a.pid, first)
				}
				served++
			}
			var pid int
			for deadline := time.Now().Add(10 * time.Second); ; served++ {
				a := answerOf(mustDo(t, p, "/?id=d"))
				if a.err != nil {
					t.Fatalf("request %d: %v", served+1, a.err)
				}
				if pid = a.pid; pid != first || time.Now().After(deadline) {
					break
				}
			}
			if pid == first {
				t.Fatalf("worker %d still serves after %d requests with max_requests %d", first, served, limit)
			}
			if served < limit {
				t.Errorf("worker %d replaced after %d requests, before max_requests %d", first, served, limit)
			}
			for deadline := time.Now().Add(5 * time.Second); syscall.Kill(first, 0) != syscall.ESRCH; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the recycled worker %d still runs 5 s after its replacement served", first)
				}
			}
			if st := p.Status(); len(st.Workers) != 1 {
				t.Errorf("%d workers after a recycle, want 1", len(st.Workers))
			}
		})
	}
}

// TestFakeScaling: while requests wait, the pool adds a worker every
// spawn_after, up to max; a worker idle for idle_timeout retires, down
// to min.
func TestFakeScaling(t *testing.T) {
	p, _ := fakePool(t, func(a *units.App) {
		a.MinWorkers, a.MaxWorkers = 1, 3
		a.SpawnAfter, a.IdleTimeout = 20*time.Millisecond, 300*time.Millisecond
	})
	// Each request's exchange stays open, holding its worker: the next
	// one waits until the pool grows.
	pids := map[int]bool{}
	var releases []func()
	for i := range 3 {
		pid, release := hold(t, p, "/?id=h"+strconv.Itoa(i))
		pids[pid] = true
		releases = append(releases, release)
	}
	if len(pids) != 3 {
		t.Fatalf("3 requests held at once went to %d workers, want 3", len(pids))
	}
	extra := fakeDo(p, "/?id=extra")
	waitQueued(t, p, 1)
	time.Sleep(10 * p.app.SpawnAfter)
	if n := p.nslots.Load(); n != 3 {
		t.Errorf("%d workers with requests waiting, want max 3", n)
	}
	for _, release := range releases {
		release()
	}
	if a := await(t, extra, "the request waiting for a fourth worker"); a.err != nil || !pids[a.pid] {
		t.Errorf("the request waiting at max: %v from %d", a.err, a.pid)
	}
	n := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n = len(p.Status().Workers); n == 1 {
			break
		}
	}
	if n != 1 {
		t.Errorf("%d workers after idle_timeout, want min 1", n)
	}
}
