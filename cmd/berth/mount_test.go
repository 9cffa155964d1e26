package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/internal/e2e"
)

// TestMounting serves four apps on one listener — at the root, at /api,
// at /api/v2, and one for the host blog.test — and checks each request
// reaches the right one with SCRIPT_NAME and PATH_INFO split at its mount.
func TestMounting(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	app := func(name, extra string) string {
		return e2e.ProbeApp(name, py, fmt.Sprintf("env = { PROBE_NAME = %q }\n  %s", name, extra))
	}
	config := `
listener "http" {
  address = "127.0.0.1:0"
}
` + app("site", "") + app("api", `mount = "/api/"`) + app("api-v2", `mount = "/api/v2"`) +
		app("blog", `hosts = ["Blog.test"]`) + app("docs", `mount = "/docs"
  hosts = ["blog.test"]`)
	b := e2e.StartBerth(t, config)

	cases := []struct {
		host, path         string
		app, script, pinfo string
	}{
		{"x.test", "/env", "site", "", "/env"},
		{"x.test", "/api/env", "api", "/api", "/env"},
		{"x.test", "/api/v2/env", "api-v2", "/api/v2", "/env"},
		{"x.test", "/api/v2x/env", "api", "/api", "/v2x/env"},
		{"x.test", "/apix/env", "site", "", "/apix/env"},
		{"x.test", "/%61pi/env", "api", "/api", "/env"}, // routed on the decoded path
		{"blog.test", "/env", "blog", "", "/env"},
		{"BLOG.test:8080", "/env", "blog", "", "/env"},
		{"blog.test.", "/env", "blog", "", "/env"},
		{"blog.test", "/docs/env", "docs", "/docs", "/env"},
		// A host's own apps come first: blog.test's root app takes
		// /api too.
		{"blog.test", "/api/env", "blog", "", "/api/env"},
		{"x.test", "/docs/env", "site", "", "/docs/env"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("GET", b.URL(c.path), nil)
		req.Host = c.host
		resp, err := e2e.HTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var env map[string]any
		json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if env["probe.name"] != c.app || env["SCRIPT_NAME"] != c.script || env["PATH_INFO"] != c.pinfo {
			t.Errorf("Host %s GET %s: app %v SCRIPT_NAME %q PATH_INFO %q; want %s, %q, %q",
				c.host, c.path, env["probe.name"], env["SCRIPT_NAME"], env["PATH_INFO"], c.app, c.script, c.pinfo)
		}
	}

	// berth status names each app with its mount.
	var out, errb strings.Builder
	code := run([]string{"status", b.Config}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "-> site, api at /api, api-v2 at /api/v2, blog for blog.test, docs at /docs for blog.test") {
		t.Errorf("berth status exit %d:\n%s%s", code, out.String(), errb.String())
	}
}

// TestNoRootApp: with no app at "/", a path outside every mount is 404
// from berth, and the connection stays usable.
func TestNoRootApp(t *testing.T) {
	t.Parallel()
	b := e2e.StartBerth(t, e2e.AppConfig(e2e.SystemPython(t), "probe:app", `mount = "/app"`, ""))
	raw := b.Raw("GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\nGET /app/env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 10*time.Second)
	if strings.Count(raw, "HTTP/1.1 404") != 1 || !strings.Contains(raw, "no app is mounted at this path") || !strings.Contains(raw, `"SCRIPT_NAME": "/app"`) {
		t.Errorf("responses:\n%s", raw)
	}
}
