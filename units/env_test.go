package units

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnvFunction: env() reads berth's environment, with a default when
// the variable is unset; an unset variable without one is an error at the
// call's own line and column, naming the variable.
func TestEnvFunction(t *testing.T) {
	t.Setenv("BERTH_T_PORT", "8123")
	t.Setenv("BERTH_T_WORKERS", "3")
	t.Setenv("BERTH_T_API_TOKEN", "s3cret")
	os.Unsetenv("BERTH_T_UNSET")
	const file = `listener "http" {
  address = "127.0.0.1:${env("BERTH_T_PORT")}"
}

app "hello" {
  module  = env("BERTH_T_UNSET", "hello:app")
  workers = env("BERTH_T_WORKERS")
  timeout = env("BERTH_T_UNSET", "5s")
  env     = { TOKEN = env("BERTH_T_API_TOKEN") }
}
`
	cases := []struct {
		name    string
		replace [2]string // applied to file
		check   func(t *testing.T, c *Config)
		wantErr []string // in the error's text
	}{
		{name: "set and defaulted", check: func(t *testing.T, c *Config) {
			a := c.Apps[0]
			if c.Listeners[0].Address != "127.0.0.1:8123" || a.Module != "hello:app" || a.Workers != 3 || a.Timeout.String() != "5s" || a.Env["TOKEN"] != "s3cret" {
				t.Errorf("resolved %+v / %+v", c.Listeners[0], a)
			}
			got := strings.Join(c.Resolved(), "\n")
			for _, w := range []string{`env BERTH_T_PORT = "8123"`, `env BERTH_T_UNSET is unset: default "hello:app"`, `env BERTH_T_API_TOKEN = (6 characters, not shown)`} {
				if !strings.Contains(got, w) {
					t.Errorf("Resolved() lacks %q:\n%s", w, got)
				}
			}
			if strings.Contains(got, "s3cret") {
				t.Errorf("Resolved() shows a token's value:\n%s", got)
			}
		}},
		{name: "unset without default", replace: [2]string{`env("BERTH_T_WORKERS")`, `env("BERTH_T_UNSET")`},
			wantErr: []string{"env.hcl:7:13: error: Error in function call", "BERTH_T_UNSET is not set and env(\"BERTH_T_UNSET\") has no default"}},
		{name: "a variable reference", replace: [2]string{`${env("BERTH_T_PORT")}`, `${env.PORT}`},
			wantErr: []string{"env.hcl:2:26: error: Variables not allowed", `reads the environment with env("NAME")`}},
		{name: "too many arguments", replace: [2]string{`env("BERTH_T_WORKERS")`, `env("BERTH_T_WORKERS", "1", "2")`},
			wantErr: []string{"env.hcl:7:13: error: Error in function call", "at most one default"}},
		{name: "a default of the wrong kind", replace: [2]string{`env("BERTH_T_WORKERS")`, `env("BERTH_T_UNSET", "many")`},
			wantErr: []string{"env.hcl:7:13: error: Unsuitable value type"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := file
			if tc.replace[0] != "" {
				src = strings.Replace(src, tc.replace[0], tc.replace[1], 1)
			}
			c, err := Parse("env.hcl", []byte(src))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			var de *DiagError
			if !errors.As(err, &de) {
				t.Fatalf("Parse = %v, want a *DiagError", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, err)
				}
			}
			if n := len(de.Diags); n != 1 {
				t.Errorf("%d diagnostics, want 1:\n%s", n, err)
			}
		})
	}
}

// TestLoadOnHost: an interpreter that cannot be run is reported at the
// python attribute (or at the app, for the default), while Load, which
// does not look at the machine, accepts the file.
func TestLoadOnHost(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "python-noexec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "python-ok")
	if err := os.WriteFile(good, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, python, path string
		want               string // "" for no error
	}{
		{"missing path", `python = "/nonexistent/venv/bin/python"`, "", `c.hcl:7:12: error: Python not found: python "/nonexistent/venv/bin/python" cannot be run: no such file or directory.`},
		{"not executable", `python = "` + notExec + `"`, "", `c.hcl:7:12: error: Python not found: python "` + notExec + `" cannot be run: it is not executable (mode -rw-r--r--).`},
		{"a directory", `python = "` + dir + `"`, "", "it is a directory"},
		{"a name not on PATH", `python = "python3.999"`, "", `python "python3.999" cannot be run: no such program on PATH`},
		{"the default not on PATH", ``, dir, `c.hcl:5:1: error: Python not found: python is not set, and its default "python3" cannot be run`},
		{"executable", `python = "` + good + `"`, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			path := filepath.Join(t.TempDir(), "c.hcl")
			src := "listener \"http\" {\n  address = \"127.0.0.1:0\"\n}\n\napp \"a\" {\n  module = \"m:app\"\n  " + tc.python + "\n}\n"
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(path); err != nil {
				t.Fatalf("Load: %v", err)
			}
			_, err := LoadOnHost(path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("LoadOnHost: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadOnHost = %v\nwant %q", err, tc.want)
			}
		})
	}
}
