// Package metrics is berth's Prometheus series: what the front, the
// supervisor and the server count, kept in one registry that lives as long
// as the berth process, so that a reload — which replaces fronts, pools and
// workers — never makes a counter go down.
//
// The series are github.com/prometheus/client_golang's. Its counters and
// histograms cost more per update than github.com/VictoriaMetrics/metrics'
// (measured here, one request's counter, histogram and bytes: 60-100 ns
// against 25-60 ns, noisy), about 0.2% of a hello request's 30 us, where
// the target is 3%; but its exposition is what Prometheus' own tools
// expect: HELP text on every family and histograms with le buckets, so
// `promtool check metrics` passes, where VictoriaMetrics' output (its
// Go runtime series included) fails the lint. The hot path never looks a
// series up by its labels: each route resolves its children once and
// keeps them (Route).
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// durationBuckets are the request duration's and queue wait's histogram
// buckets, in seconds: from half a millisecond (a hello app answers in
// well under one) to 30 s (the default timeout).
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Registry holds every series of one berth process.
type Registry struct {
	// reg has berth's own series; runtime the Go runtime's and the
	// process's, which /metrics adds but Families leaves out: gathering
	// them reads /proc and the runtime, and status is asked for every
	// 2 s (systemd's STATUS line).
	reg, runtime *prometheus.Registry
	// on says whether the per-request series are counted (the admin
	// block's metrics attribute); the rest always is.
	on atomic.Bool

	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	bytes      *prometheus.CounterVec
	queueWait  *prometheus.HistogramVec
	rejections *prometheus.CounterVec
	timeouts   *prometheus.CounterVec
	exits      *prometheus.CounterVec
	served     *prometheus.CounterVec
	backoff    *prometheus.GaugeVec
	accepted   *prometheus.CounterVec
	open       *prometheus.GaugeVec
	reloads    *prometheus.CounterVec

	// mu guards the maps: each app, route and listener is made once and
	// handed out again after every reload.
	mu        sync.Mutex
	apps      map[string]*App
	routes    map[[2]string]*Route
	listeners map[string]*Listener
}

// New returns a registry with every berth series, the Go runtime's and
// the process's; live is read at each scrape for the series that are a
// state rather than a count (see Live). Request series are on.
func New(live func() []Live) *Registry {
	r := &Registry{
		reg:       prometheus.NewRegistry(),
		runtime:   prometheus.NewRegistry(),
		apps:      map[string]*App{},
		routes:    map[[2]string]*Route{},
		listeners: map[string]*Listener{},
	}
	r.on.Store(true)
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: durationBuckets}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	r.requests = counter("berth_requests_total", "Requests answered, by app (empty: none matched or the request was refused before routing), listener, method and status class.", "app", "listener", "method", "status_class")
	r.duration = histogram("berth_request_duration_seconds", "Time from a request's header block to the end of its response.", "app", "listener")
	r.bytes = counter("berth_response_bytes_total", "Response body bytes sent.", "app", "listener")
	r.queueWait = histogram("berth_queue_wait_seconds", "Time requests waited for an idle worker (0 for one served at once), including those refused after queue_timeout.", "app")
	r.rejections = counter("berth_queue_rejections_total", "Requests refused with 503: the queue was full, queue_timeout passed, or the app was stopping.", "app", "reason")
	r.timeouts = counter("berth_request_timeouts_total", "Requests that ran past the app's timeout (504, or a streamed body cut off).", "app")
	r.exits = counter("berth_worker_exits_total", "Workers that ended, by cause: crash, oom (killed by the kernel's OOM killer), timeout (killed), max_requests, max_lifetime, max_rss (recycled), scale_down, stop (their generation ended).", "app", "cause")
	r.served = counter("berth_served_total", "Requests the app's workers answered, across generations.", "app")
	r.backoff = gauge("berth_worker_backoff", "Worker slots waiting out a respawn back-off: their last worker died young or failed to boot.", "app")
	r.accepted = counter("berth_connections_accepted_total", "Client connections accepted.", "listener")
	r.open = gauge("berth_connections_open", "Client connections open.", "listener")
	r.reloads = counter("berth_reloads_total", "Reloads, by result: ok or failed.", "result")
	r.reloads.WithLabelValues("ok")
	r.reloads.WithLabelValues("failed")
	r.reg.MustRegister(r.requests, r.duration, r.bytes, r.queueWait, r.rejections, r.timeouts,
		r.exits, r.served, r.backoff, r.accepted, r.open, r.reloads, liveCollector(live))
	r.runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Spool adds the series of the responses berth holds for slow clients
// (front's spool), read at each scrape from files (temp files made, ever)
// and memory (bytes held in memory now).
func (r *Registry) Spool(files, memory func() float64) {
	r.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "berth_response_spool_files_total",
			Help: "Temp files made to hold responses for clients slower than their worker (max_buffered_response)."}, files),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_response_spool_memory_bytes",
			Help: "Bytes of responses held in memory for slow clients (at most 64 MiB in all)."}, memory))
}

// SetOn turns the per-request series (requests, durations, bytes, queue
// waits) on or off; off, the front skips them (one atomic load a request).
func (r *Registry) SetOn(on bool) { r.on.Store(on) }

// On reports whether the per-request series are counted.
func (r *Registry) On() bool { return r.on.Load() }

// Reload counts a reload's result.
func (r *Registry) Reload(ok bool) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	r.reloads.WithLabelValues(result).Inc()
}

// Handler serves the registry in Prometheus' text format; 404 while the
// series are off, so that a scrape says so rather than reading zeros.
func (r *Registry) Handler() http.Handler {
	h := promhttp.HandlerFor(prometheus.Gatherers{r.reg, r.runtime}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !r.On() {
			http.Error(w, "metrics are off (admin block: metrics = false)", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, req)
	})
}
