package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthd/berth/activation"
	"github.com/berthd/berth/internal/fakeworker"
	"github.com/berthd/berth/notify"
	"github.com/berthd/berth/units"
)

// These tests run a whole Server — sockets, fronts, supervisors, worker
// processes — with the fake worker (this test binary, internal/fakeworker)
// in place of Python: a reload or a stop takes milliseconds.

func TestMain(m *testing.M) {
	fakeworker.MaybeRun()
	os.Exit(m.Run())
}

// site is a configuration file in a directory of its own, whose listeners
// are Unix sockets there (no ports to share between tests).
type site struct {
	t   *testing.T
	dir string
	exe string
	// failing are apps that fail to boot: more of their env.
	failing map[string]string
}

func newSite(t *testing.T) *site {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Socket paths must stay short (108 bytes).
	dir, err := os.MkdirTemp("", "srv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &site{t: t, dir: dir, exe: exe, failing: map[string]string{}}
}

// sock is the path of the socket named name.
func (s *site) sock(name string) string { return filepath.Join(s.dir, name+".sock") }

// listener is a listener block on socket file, with extra attributes.
func (s *site) listener(name, file, extra string) string {
	return fmt.Sprintf("listener %q {\n  address = \"unix:%s\"\n  %s\n}\n", name, s.sock(file), extra)
}

// app is an app block served by the fake worker on listeners, an HCL
// expression ("\"http\"" or a list), with extra attributes. A worker
// built with -race would sleep a second on its way out (GORACE's
// atexit_sleep_ms), longer than graceful_timeout here.
func (s *site) app(name, listeners, extra string) string {
	return fmt.Sprintf("app %q {\n  listener = %s\n  module = \"fake\"\n  python = %q\n  workers = 1\n  graceful_timeout = \"300ms\"\n  env = { %s = \"1\", GORACE = \"atexit_sleep_ms=0\" %s}\n  %s\n}\n",
		name, listeners, s.exe, fakeworker.EnvVar, s.failing[name], extra)
}

// write makes the configuration file say src.
func (s *site) write(src string) string {
	path := filepath.Join(s.dir, "berth.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// start serves src until the test ends.
func (s *site) start(src string) *Server {
	t := s.t
	path := s.write(src)
	cfg, err := units.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := New(path, cfg, log, activation.Inherit(), notify.New(log))
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(true) })
	return srv
}

// get asks socket file for path; "" when nothing answers.
func get(file, path string) string {
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", file)
		},
	}}
	resp, err := c.Get("http://berth" + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.ReplaceAll(string(body), "\n", " "))
}

// TestReload: a reload from one configuration to another changes what
// its message says, and the sockets serve accordingly: those the new
// configuration has answer, those it dropped refuse.
func TestReload(t *testing.T) {
	const ok = "200 GET / _ 0 "
	cases := []struct {
		name     string
		from, to func(s *site) string
		ok       bool
		message  []string // what the message says, in part
		detail   string   // what its detail says, in part
		serving  []string // socket files that answer after it
		refusing []string // socket files that refuse after it
	}{
		{"nothing changed: a new generation",
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			true, []string{"reloaded shop generation 2"}, "", []string{"a"}, nil},
		{"a listener and an app added",
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			func(s *site) string {
				return s.listener("http", "a", "") + s.app("shop", `"http"`, "") + s.listener("more", "b", "") + s.app("blog", `"more"`, "")
			},
			true, []string{"opened listener more on ", "added app blog"}, "", []string{"a", "b"}, nil},
		{"a listener and an app removed",
			func(s *site) string {
				return s.listener("http", "a", "") + s.app("shop", `"http"`, "") + s.listener("more", "b", "") + s.app("blog", `"more"`, "")
			},
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			true, []string{"closed listener more", "removed app blog"}, "", []string{"a"}, []string{"b"}},
		{"renamed: the socket serves on",
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			func(s *site) string { return s.listener("web", "a", "") + s.app("shop", `"web"`, "") },
			true, []string{"renamed listener http to web"}, "", []string{"a"}, nil},
		{"moved",
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			func(s *site) string { return s.listener("http", "b", "") + s.app("shop", `"http"`, "") },
			true, []string{"moved listener http to "}, "", []string{"b"}, []string{"a"}},
		{"new settings",
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			func(s *site) string {
				return s.listener("http", "a", `idle_timeout = "7s"`) + s.app("shop", `"http"`, "")
			},
			true, []string{"new settings for listener http"}, "", []string{"a"}, nil},
		{"new socket mode",
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			func(s *site) string {
				return s.listener("http", "a", `socket_mode = "0600"`) + s.app("shop", `"http"`, "")
			},
			true, []string{"new socket mode or owner for listener http"}, "", []string{"a"}, nil},
		{"a kept name takes a dropped listener's socket: its own closes",
			func(s *site) string {
				return s.listener("http", "a", "") + s.listener("old", "b", "") + s.app("shop", `["http", "old"]`, "")
			},
			func(s *site) string { return s.listener("http", "b", "") + s.app("shop", `"http"`, "") },
			true, []string{"renamed listener old to http"}, "", []string{"b"}, []string{"a"}},
		{"a configuration that does not validate: nothing changes",
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			func(s *site) string { return s.listener("http", "b", "") + s.app("shop", `"http"`, "workers = -1") },
			false, []string{"1 error(s) in the configuration"}, "workers", []string{"a"}, []string{"b"}},
		{"an app that fails to boot: nothing changes",
			func(s *site) string { return s.listener("http", "a", "") + s.app("shop", `"http"`, "") },
			func(s *site) string {
				s.failing["blog"] = ", " + fakeworker.FailVar + ` = "ImportError: no module named blog"`
				return s.listener("http", "b", "") + s.app("shop", `"http"`, "") + s.app("blog", `"http"`, `mount = "/blog"`)
			},
			false, []string{`app "blog" failed to boot its new generation`}, "ImportError: no module named blog", []string{"a"}, []string{"b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t)
			srv := s.start(tc.from(s))
			s.write(tc.to(s))
			res := srv.Reload(context.Background())
			if res.OK != tc.ok {
				t.Errorf("reload ok = %v, want %v: %s %s", res.OK, tc.ok, res.Message, res.Detail)
			}
			for _, m := range tc.message {
				if !strings.Contains(res.Message, m) {
					t.Errorf("reload message %q does not say %q", res.Message, m)
				}
			}
			if !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("reload detail %q does not say %q", res.Detail, tc.detail)
			}
			for _, f := range tc.serving {
				if got := get(s.sock(f), "/?_"); got != ok {
					t.Errorf("socket %s after the reload: %q", f, got)
				}
			}
			for _, f := range tc.refusing {
				if c, err := net.DialTimeout("unix", s.sock(f), time.Second); err == nil {
					c.Close()
					t.Errorf("socket %s accepts connections after the reload", f)
				}
			}
		})
	}
}
