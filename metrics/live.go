package metrics

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Live is one app's state at the moment of a scrape: the series that are
// not counts but what is so now, read from the running pools rather than
// kept up to date on every change.
type Live struct {
	App        string
	Generation int
	// Workers by state: booting (starting, replacing one that died, or
	// added by scaling), idle, busy (serving a request on any thread).
	Booting, Idle, Busy int
	// Queued is how many requests wait for a worker.
	Queued int
}

var (
	workersDesc    = prometheus.NewDesc("berth_workers", "Workers of the app's current generation, by state: booting, idle, busy.", []string{"app", "state"}, nil)
	queueDesc      = prometheus.NewDesc("berth_queue_depth", "Requests waiting for an idle worker.", []string{"app"}, nil)
	generationDesc = prometheus.NewDesc("berth_app_generation", "The app's current generation: 1 at start, one more at each reload.", []string{"app"}, nil)
)

// live is a collector of Live's series.
type live func() []Live

func liveCollector(f func() []Live) prometheus.Collector {
	if f == nil {
		f = func() []Live { return nil }
	}
	return live(f)
}

func (l live) Describe(ch chan<- *prometheus.Desc) {
	ch <- workersDesc
	ch <- queueDesc
	ch <- generationDesc
}

func (l live) Collect(ch chan<- prometheus.Metric) {
	for _, a := range l() {
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(a.Booting), a.App, "booting")
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(a.Idle), a.App, "idle")
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(a.Busy), a.App, "busy")
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(a.Queued), a.App)
		ch <- prometheus.MustNewConstMetric(generationDesc, prometheus.GaugeValue, float64(a.Generation), a.App)
	}
}

// Family is one metric family as `berth status --json` shows it: the
// same Gather that /metrics renders, so the two never disagree.
type Family struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Help    string   `json:"help"`
	Samples []Sample `json:"samples"`
}

// Sample is one series of a family: Value for a counter or gauge; Count,
// Sum and cumulative Buckets for a histogram.
type Sample struct {
	Labels  map[string]string `json:"labels,omitempty"`
	Value   *float64          `json:"value,omitempty"`
	Count   *uint64           `json:"count,omitempty"`
	Sum     *float64          `json:"sum,omitempty"`
	Buckets []Bucket          `json:"buckets,omitempty"`
}

// Bucket is a histogram's count of observations up to LE.
type Bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// Families gathers berth's own families (berth_*; not the Go runtime's
// and the process's, which /metrics adds, and which change between any
// two reads).
func (r *Registry) Families() ([]Family, error) {
	mfs, err := r.reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	var out []Family
	for _, mf := range mfs {
		f := Family{Name: mf.GetName(), Type: strings.ToLower(mf.GetType().String()), Help: mf.GetHelp(), Samples: []Sample{}}
		for _, m := range mf.GetMetric() {
			f.Samples = append(f.Samples, sample(m))
		}
		out = append(out, f)
	}
	return out, nil
}

func sample(m *dto.Metric) Sample {
	s := Sample{}
	if len(m.GetLabel()) > 0 {
		s.Labels = map[string]string{}
		for _, l := range m.GetLabel() {
			s.Labels[l.GetName()] = l.GetValue()
		}
	}
	switch {
	case m.Counter != nil:
		v := m.Counter.GetValue()
		s.Value = &v
	case m.Gauge != nil:
		v := m.Gauge.GetValue()
		s.Value = &v
	case m.Histogram != nil:
		h := m.Histogram
		c, sum := h.GetSampleCount(), h.GetSampleSum()
		s.Count, s.Sum = &c, &sum
		for _, b := range h.GetBucket() {
			s.Buckets = append(s.Buckets, Bucket{LE: b.GetUpperBound(), Count: b.GetCumulativeCount()})
		}
	}
	return s
}

// Total sums the values of family name's samples whose labels include
// every pair of match: the figures `berth status` prints, read from
// Families so that they are the ones /metrics shows.
func Total(fs []Family, name string, match map[string]string) float64 {
	total := 0.0
	for _, f := range fs {
		if f.Name != name {
			continue
		}
	next:
		for _, s := range f.Samples {
			for k, v := range match {
				if s.Labels[k] != v {
					continue next
				}
			}
			switch {
			case s.Value != nil:
				total += *s.Value
			case s.Count != nil:
				total += float64(*s.Count)
			}
		}
	}
	return total
}
