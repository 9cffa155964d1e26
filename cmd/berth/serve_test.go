package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

func TestHelloExample(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	wd, _ := os.Getwd()
	cfg := fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "hello" {
  module = "hello:app"
  python = %q
  chdir  = %q
}
`, py, filepath.Join(wd, "../../examples/hello"))
	b := e2e.StartBerth(t, cfg)
	resp, err := e2e.HTTPClient.Get(b.URL("/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello, World!\n" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("GET / = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if err := b.WaitFor(`hello GET / listener=http proto=HTTP/1.1 status=200 bytes=14 duration_us=\d+ queue_us=\d+ remote=127.0.0.1 request_id=\w+ user_agent=\S+`, 5*time.Second); err != nil {
		t.Errorf("no access line: %v", err)
	}
}

func TestFlaskExample(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	e2e.NeedFlask(t, py)
	wd, _ := os.Getwd()
	cfg := fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "shop" {
  module = "shop:app"
  python = %q
  chdir  = %q
}
`, py, filepath.Join(wd, "../../examples/flask"))
	b := e2e.StartBerth(t, cfg)

	if code, body := b.Get("/"); code != 200 || body != "Welcome to the shop\n" {
		t.Errorf("GET / = %d %q", code, body)
	}
	var items []map[string]any
	code, body := b.Get("/items")
	if err := json.Unmarshal([]byte(body), &items); code != 200 || err != nil || len(items) != 2 || items[0]["name"] != "teapot" {
		t.Errorf("GET /items = %d %q (%v)", code, body, err)
	}
	if code, body := b.Get("/items/9"); code != 404 || !strings.Contains(body, `"no such item"`) {
		t.Errorf("GET /items/9 = %d %q", code, body)
	}
	resp, err := e2e.HTTPClient.PostForm(b.URL("/order"), url.Values{"name": {"cup"}, "qty": {"3"}})
	if err != nil {
		t.Fatal(err)
	}
	var order map[string]any
	json.NewDecoder(resp.Body).Decode(&order)
	resp.Body.Close()
	if resp.StatusCode != 201 || order["ordered"] != "cup" || order["qty"] != 3.0 {
		t.Errorf("POST /order = %d %v", resp.StatusCode, order)
	}
	resp, err = e2e.HTTPClient.Post(b.URL("/echo"), "application/json", strings.NewReader(`{"a": [1, 2]}`))
	if err != nil {
		t.Fatal(err)
	}
	var echo map[string]any
	json.NewDecoder(resp.Body).Decode(&echo)
	resp.Body.Close()
	if fmt.Sprint(echo["json"]) != "map[a:[1 2]]" || echo["length"] != 13.0 {
		t.Errorf("POST /echo = %v", echo)
	}
}

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"check", "../../examples/hello/berth.hcl"}, 0, "ok: 1 listener(s), 1 app(s): hello (hello:app, 2 workers, on http)", ""},
		{[]string{"check", "../../units/testdata/bad_duration.hcl"}, 1, "", "bad_duration.hcl:8:13: error: Invalid duration"},
		{[]string{"check", "nope.hcl"}, 1, "", "no such file"},
		{[]string{"check"}, 2, "", "usage: berth check CONFIG"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"version"}, 0, "berth ", ""},
		{[]string{"help"}, 0, "berth serve", ""},
	} {
		var out, errb strings.Builder
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("berth %v = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
	}
}

// TestJSONLog: log { format = "json" } writes one JSON object per line,
// the access record's fields included.
func TestJSONLog(t *testing.T) {
	t.Parallel()
	cfg := e2e.AppConfig(e2e.SystemPython(t), "probe:app", "workers = 1", "") + "\nlog {\n  format = \"json\"\n}\n"
	inst := e2e.Launch(t, cfg)
	if err := inst.WaitFor(`"msg":"listening"`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	inst.Addr = e2e.RegexpFind(inst.Logs.String(), `"addr":"([^"]+)"`)
	if code, _ := inst.Get("/status"); code != 418 {
		t.Fatalf("GET /status = %d", code)
	}
	if err := inst.WaitFor(`"msg":"GET /status"`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(inst.Logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		if rec["msg"] == "GET /status" {
			found = true
			if rec["status"] != 418.0 || rec["app"] != "probe" || rec["method"] != "GET" || rec["level"] != "INFO" || rec["request_id"] == "" {
				t.Errorf("access record: %v", rec)
			}
		}
	}
	if !found {
		t.Error("no access record")
	}
}

// TestBadConfigServe: serve refuses a bad config with its diagnostics.
func TestBadConfigServe(t *testing.T) {
	t.Parallel()
	inst := e2e.Launch(t, "listener \"http\" {\n  address = \"127.0.0.1:0\"\n}\napp \"x\" {\n  module = \"x:app\"\n  timeout = \"soon\"\n}\n")
	<-inst.Done
	if ee, ok := inst.Err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want 1", inst.Err)
	}
	if !strings.Contains(inst.Logs.String(), "berth.hcl:6:13: error: Invalid duration") {
		t.Errorf("logs:\n%s", inst.Logs)
	}
}
