package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a queued request is refused with 503 (berth_queue_rejections_total).
const (
	RejectFull = iota
	RejectTimeout
	RejectStopping
	nRejects
)

var rejectNames = [nRejects]string{"full", "timeout", "stopping"}

// Cause is why a worker ended (berth_worker_exits_total).
type Cause int

// Causes of a worker's end.
const (
	CauseCrash Cause = iota
	CauseTimeout
	CauseMaxRequests
	CauseMaxLifetime
	CauseMaxRSS
	CauseScaleDown
	CauseStop
	// CauseOOM: the kernel's OOM killer ended the worker (its app's
	// cgroup counted the kill).
	CauseOOM
	nCauses
)

var causeNames = [nCauses]string{"crash", "timeout", "max_requests", "max_lifetime", "max_rss", "scale_down", "stop", "oom"}

func (c Cause) String() string { return causeNames[c] }

// App is one app's series that the supervisor counts. It outlives the
// app's generations (and the app itself, should a reload remove it and a
// later one bring it back), so its counters only grow. A nil *App counts
// nothing: pools made without one (in tests) need no registry.
type App struct {
	on        *atomic.Bool
	queueWait prometheus.Observer
	rejected  [nRejects]prometheus.Counter
	timeouts  prometheus.Counter
	exits     [nCauses]prometheus.Counter
	served    prometheus.Counter
	backoff   prometheus.Gauge
}

// App returns the series of the app called name, made on first use. Every
// child is resolved now, so its series shows 0 from the start (a rate over
// it works from the first scrape) and counting is one atomic add.
func (r *Registry) App(name string) *App {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.apps[name]; a != nil {
		return a
	}
	a := &App{
		on:        &r.on,
		queueWait: r.queueWait.WithLabelValues(name),
		timeouts:  r.timeouts.WithLabelValues(name),
		served:    r.served.WithLabelValues(name),
		backoff:   r.backoff.WithLabelValues(name),
	}
	for i, reason := range rejectNames {
		a.rejected[i] = r.rejections.WithLabelValues(name, reason)
	}
	for i, cause := range causeNames {
		a.exits[i] = r.exits.WithLabelValues(name, cause)
	}
	r.apps[name] = a
	return a
}

// QueueWait records how long a request waited for a worker.
func (a *App) QueueWait(d time.Duration) {
	if a != nil && a.on.Load() {
		a.queueWait.Observe(d.Seconds())
	}
}

// Rejected counts a request refused with 503 for reason (RejectFull...).
func (a *App) Rejected(reason int) {
	if a != nil {
		a.rejected[reason].Inc()
	}
}

// Timeout counts a request that ran past the app's timeout.
func (a *App) Timeout() {
	if a != nil {
		a.timeouts.Inc()
	}
}

// Exit counts a worker's end.
func (a *App) Exit(c Cause) {
	if a != nil {
		a.exits[c].Inc()
	}
}

// Served counts a request a worker answered.
func (a *App) Served() {
	if a != nil {
		a.served.Inc()
	}
}

// Backoff adds delta to the slots waiting out a respawn back-off.
func (a *App) Backoff(delta int) {
	if a != nil {
		a.backoff.Add(float64(delta))
	}
}

// Listener is one listener's connection series.
type Listener struct {
	r        *Registry
	name     string
	accepted prometheus.Counter
	open     prometheus.Gauge
}

// Listener returns the series of the listener called name, made on first
// use and shared by every front that serves it (a reload may start a new
// front while the old one finishes its connections).
func (r *Registry) Listener(name string) *Listener {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.listeners[name]; l != nil {
		return l
	}
	l := &Listener{r: r, name: name, accepted: r.accepted.WithLabelValues(name), open: r.open.WithLabelValues(name)}
	r.listeners[name] = l
	return l
}

// Accepted counts a new connection, open until Closed.
func (l *Listener) Accepted() {
	l.accepted.Inc()
	l.open.Inc()
}

// Closed counts a connection's end.
func (l *Listener) Closed() { l.open.Dec() }

// Route returns the request series of app on this listener (app "" for
// requests that reached no app).
func (l *Listener) Route(app string) *Route {
	r := l.r
	r.mu.Lock()
	defer r.mu.Unlock()
	key := [2]string{app, l.name}
	if rt := r.routes[key]; rt != nil {
		return rt
	}
	rt := &Route{
		r: r, app: app, listener: l.name,
		duration: r.duration.WithLabelValues(app, l.name),
		bytes:    r.bytes.WithLabelValues(app, l.name),
	}
	r.routes[key] = rt
	return rt
}

// Route is the request series of one app on one listener. Its counters by
// method and status class are resolved on first use (most of the 50
// pairs never occur) and kept.
type Route struct {
	r             *Registry
	app, listener string
	duration      prometheus.Observer
	bytes         prometheus.Counter
	counts        [nMethods][nClasses]atomic.Pointer[prometheus.Counter]
}

// On reports whether request series are counted; the front then takes the
// request's start time even without an access log.
func (rt *Route) On() bool { return rt != nil && rt.r.on.Load() }

// Request counts one answered request: its method, status, time from its
// header block to the end of its response, and the body bytes sent.
func (rt *Route) Request(method []byte, status int, d time.Duration, bytes int64) {
	if !rt.On() {
		return
	}
	m, c := methodIndex(method), classIndex(status)
	cell := &rt.counts[m][c]
	p := cell.Load()
	if p == nil {
		// Two first requests may both resolve it: WithLabelValues returns
		// the same child either way.
		ctr := rt.r.requests.WithLabelValues(rt.app, rt.listener, methodNames[m], classNames[c])
		p = &ctr
		cell.Store(p)
	}
	(*p).Inc()
	rt.duration.Observe(d.Seconds())
	if bytes > 0 {
		rt.bytes.Add(float64(bytes))
	}
}

// The method label's values: the methods of RFC 9110 and PATCH, and OTHER
// for any other token, so that a client cannot make series at will.
const (
	mGET = iota
	mHEAD
	mPOST
	mPUT
	mDELETE
	mPATCH
	mOPTIONS
	mCONNECT
	mTRACE
	mOTHER
	nMethods
)

var methodNames = [nMethods]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"}

func methodIndex(m []byte) int {
	switch string(m) { // no allocation: the compiler compares in place
	case "GET":
		return mGET
	case "HEAD":
		return mHEAD
	case "POST":
		return mPOST
	case "PUT":
		return mPUT
	case "DELETE":
		return mDELETE
	case "PATCH":
		return mPATCH
	case "OPTIONS":
		return mOPTIONS
	case "CONNECT":
		return mCONNECT
	case "TRACE":
		return mTRACE
	}
	return mOTHER
}

// Status classes: 1xx to 5xx, and "other" for a status outside 100-599.
const nClasses = 6

var classNames = [nClasses]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func classIndex(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}
