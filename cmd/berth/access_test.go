package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
	"github.com/berthd/berth/server"
)

// hostileUA is a User-Agent a client may send that would break a log line
// written as it came: quotes, a backslash, braces and a byte that is not
// UTF-8 (obs-text, which HTTP allows).
const hostileUA = "evil\" \\ {\"status\":1} \xe9"

// TestAccessRecordJSON: with log format json, an access record is one JSON
// object with the user agent, referer, protocol, queue wait and the
// duration in microseconds, whatever the client put in its headers.
func TestAccessRecordJSON(t *testing.T) {
	t.Parallel()
	cfg := e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", "") + "\nlog {\n  format = \"json\"\n}\n"
	b := e2e.Launch(t, cfg)
	if err := b.WaitFor(`"msg":"ready"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	b.Addr = e2e.RegexpFind(b.Logs.String(), `"msg":"listening".*?"addr":"([^"]+)"`)
	resp := b.Raw("GET /pid?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: "+hostileUA+"\r\nReferer: http://ref/\"q\r\nConnection: close\r\n\r\n", 5*time.Second)
	if e2e.StatusOf(resp) != 200 {
		t.Fatalf("GET /pid: %q", resp)
	}
	if err := b.WaitFor(`"msg":"GET /pid\?x=1"`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	line := e2e.RegexpFind(b.Logs.String(), `(?m)^(\{.*"msg":"GET /pid\?x=1".*\})$`)
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("access record is not JSON: %v: %s", err, line)
	}
	want := map[string]any{"app": "probe", "method": "GET", "path": "/pid?x=1", "proto": "HTTP/1.1", "status": float64(200),
		"user_agent": strings.ToValidUTF8(hostileUA, "\ufffd"), "referer": `http://ref/"q`, "queue_us": float64(0)}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %#v, want %#v", k, rec[k], v)
		}
	}
	if d, ok := rec["duration_us"].(float64); !ok || d <= 0 || d > 5e6 {
		t.Errorf("duration_us = %#v", rec["duration_us"])
	}
	if _, ok := rec["duration"]; ok || rec["bytes"] == nil {
		t.Errorf("record %v", rec)
	}

	// With its one worker asleep, a second request waits its turn: its
	// queue_us says how long, within its duration_us. The worker sleeps
	// 1.5 s: beside other tests, the second request once took 250 ms to
	// arrive after the status showed the worker busy.
	slow := make(chan string)
	go func() {
		slow <- b.Raw("GET /sleep?1.5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 5*time.Second)
	}()
	b.WaitStatus(5*time.Second, "the slow request on the one worker", func(st server.Status) bool { return st.Busy == 1 })
	if resp := b.Raw("GET /pid?queued HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 5*time.Second); e2e.StatusOf(resp) != 200 {
		t.Fatalf("GET /pid?queued: %q", resp)
	}
	<-slow
	if err := b.WaitFor(`"msg":"GET /pid\?queued"`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rec = nil
	json.Unmarshal([]byte(e2e.RegexpFind(b.Logs.String(), `(?m)^(\{.*"msg":"GET /pid\?queued".*\})$`)), &rec)
	wait, _ := rec["queue_us"].(float64)
	d, _ := rec["duration_us"].(float64)
	if wait < 200_000 || wait > d {
		t.Errorf("queued request: queue_us %v, duration_us %v; want at least 200000 (the sleep is 1.5 s), within the duration", rec["queue_us"], rec["duration_us"])
	}
}

// TestAccessCombined: with access_format = "combined", each request is a
// line of the combined log format on stdout, the user agent escaped.
func TestAccessCombined(t *testing.T) {
	t.Parallel()
	cfg := e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", "") + "\nlog {\n  access_format = \"combined\"\n}\n"
	b := e2e.StartBerth(t, cfg)
	resp := b.Raw("GET /pid HTTP/1.1\r\nHost: a\r\nUser-Agent: "+hostileUA+"\r\nConnection: close\r\n\r\n", 5*time.Second)
	if e2e.StatusOf(resp) != 200 {
		t.Fatalf("GET /pid: %q", resp)
	}
	body := resp[strings.Index(resp, "\r\n\r\n")+4:]
	want := fmt.Sprintf(`(?m)^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /pid HTTP/1\.1" 200 %d "-" "%s"$`,
		len(body), regexp.QuoteMeta(`evil\x22 \x5C {\x22status\x22:1} \xE9`))
	if err := b.WaitFor(want, 5*time.Second); err != nil {
		t.Errorf("%v\n%s", err, b.Logs)
	}
	if strings.Contains(b.Logs.String(), "GET /pid status=") {
		t.Errorf("the access record was also written as a log record:\n%s", b.Logs)
	}
}
