package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRequestLabels: methods and statuses map to the bounded label
// values, so that no client can make series at will.
func TestRequestLabels(t *testing.T) {
	for _, tc := range []struct {
		method       string
		status       int
		label, class string
	}{
		{"GET", 200, "GET", "2xx"},
		{"HEAD", 304, "HEAD", "3xx"},
		{"POST", 404, "POST", "4xx"},
		{"PATCH", 503, "PATCH", "5xx"},
		{"OPTIONS", 101, "OPTIONS", "1xx"},
		{"BREW", 418, "OTHER", "4xx"},
		{"get", 200, "OTHER", "2xx"},
		{"GET", 99, "GET", "other"},
		{"GET", 600, "GET", "other"},
	} {
		r := New(nil)
		r.Listener("http").Route("shop").Request([]byte(tc.method), tc.status, time.Millisecond, 10)
		fs, err := r.Families()
		if err != nil {
			t.Fatal(err)
		}
		match := map[string]string{"app": "shop", "listener": "http", "method": tc.label, "status_class": tc.class}
		if got := Total(fs, "berth_requests_total", match); got != 1 {
			t.Errorf("%s %d: berth_requests_total%v = %v, want 1", tc.method, tc.status, match, got)
		}
	}
}

// TestSeriesOutliveTheirUsers: an app's, a listener's and a route's
// series are the same objects when asked for again (as after a reload),
// so their counts go on from where they were; off, requests are not
// counted and /metrics says so.
func TestSeriesOutliveTheirUsers(t *testing.T) {
	r := New(nil)
	r.App("shop").Served()
	r.Listener("http").Route("shop").Request([]byte("GET"), 200, time.Millisecond, 5)
	if r.App("shop") != r.App("shop") || r.Listener("http").Route("shop") != r.Listener("http").Route("shop") {
		t.Fatal("a second ask made new series")
	}
	r.App("shop").Served()
	r.Listener("http").Route("shop").Request([]byte("GET"), 200, time.Millisecond, 5)
	r.SetOn(false)
	r.Listener("http").Route("shop").Request([]byte("GET"), 200, time.Millisecond, 5)
	fs, _ := r.Families()
	for name, want := range map[string]float64{"berth_served_total": 2, "berth_requests_total": 2, "berth_response_bytes_total": 10, "berth_request_duration_seconds": 2} {
		if got := Total(fs, name, map[string]string{"app": "shop"}); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 404 {
		t.Errorf("/metrics while off = %d", rec.Code)
	}
	r.SetOn(true)
	rec = httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`berth_served_total{app="shop"} 2`, "go_goroutines ", "process_cpu_seconds_total "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// BenchmarkRequest is what the series cost one request on berth's hot
// path: the front's count, duration and bytes, and the supervisor's
// queue wait and served count.
func BenchmarkRequest(b *testing.B) {
	r := New(nil)
	rt, app := r.Listener("http").Route("shop"), r.App("shop")
	method := []byte("GET")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			app.QueueWait(0)
			app.Served()
			rt.Request(method, 200, 800*time.Microsecond, 12)
		}
	})
}
