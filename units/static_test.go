package units

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeConfig writes src as berth.hcl in a new directory that holds the
// directories dirs, and returns the file's path.
func writeConfig(t *testing.T, src string, dirs ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(root, "berth.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStaticValid(t *testing.T) {
	path := writeConfig(t, `
listener "http" {
  address = "127.0.0.1:8000"
}
app "shop" {
  module = "shop.wsgi:application"
  chdir  = "src"
  mount  = "/shop"
  hosts  = ["shop.test"]
  static "/static/" {
    dir     = "staticfiles"
    max_age = "365d"
  }
  static "/media" {
    dir         = "/MEDIA"
    max_age     = "10m"
    immutable   = "none"
    fallthrough = true
  }
}
app "site" {
  module = "site:app"
  static "" {
    dir         = "public"
    immutable   = "all"
    fallthrough = true
  }
}
`, "src/staticfiles", "media", "public")
	root := filepath.Dir(path)
	src, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(src), "/MEDIA", filepath.Join(root, "media"))), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Static{
		{
			{Prefix: "/static", Path: "/shop/static", Dir: filepath.Join(root, "src/staticfiles"), MaxAge: 365 * 24 * time.Hour, Immutable: ImmutableHashed, At: path + ":11:15"},
			{Prefix: "/media", Path: "/shop/media", Dir: filepath.Join(root, "media"), MaxAge: 10 * time.Minute, Immutable: ImmutableNone, Fallthrough: true, At: path + ":15:19"},
		},
		{{Prefix: "", Path: "", Dir: filepath.Join(root, "public"), Immutable: ImmutableAll, Fallthrough: true, At: path + ":24:19"}},
	}
	for i, a := range cfg.Apps {
		if !reflect.DeepEqual(a.Static, want[i]) {
			t.Errorf("app %s: static =\n%+v\nwant\n%+v", a.Name, a.Static, want[i])
		}
	}
}

func TestStaticDiagnostics(t *testing.T) {
	app := func(body string) string {
		return "listener \"http\" {\n  address = \"127.0.0.1:8000\"\n}\napp \"shop\" {\n  module = \"shop:app\"\n" + body + "}\n"
	}
	for _, c := range []struct {
		name, src string
		want      []string // headlines: file:line:col: error: summary
	}{
		{"a directory that does not exist", app("  static \"/static\" {\n    dir = \"nowhere\"\n  }\n"),
			[]string{"berth.hcl:7:11: error: Static directory not found: "}},
		{"a file, not a directory", app("  static \"/static\" {\n    dir = \"berth.hcl\"\n  }\n"),
			[]string{"berth.hcl:7:11: error: Static directory not found: ", "berth.hcl: not a directory."}},
		{"no dir", app("  static \"/static\" {\n  }\n"),
			[]string{"berth.hcl:6:20: error: Missing required argument"}},
		{"bad prefixes", app("  static \"static\" {\n    dir = \"files\"\n  }\n  static \"/a/../b\" {\n    dir = \"files\"\n  }\n  static \"/a%20b\" {\n    dir = \"files\"\n  }\n"),
			[]string{"berth.hcl:6:10: error: Invalid static prefix", "berth.hcl:9:10: error: Invalid static prefix", "berth.hcl:12:10: error: Invalid static prefix"}},
		{"the same prefix twice", app("  static \"/static\" {\n    dir = \"files\"\n  }\n  static \"/static/\" {\n    dir = \"files\"\n  }\n"),
			[]string{"berth.hcl:9:10: error: Duplicate static block"}},
		{"at the root without fallthrough", app("  static \"/\" {\n    dir = \"files\"\n  }\n"),
			[]string{"berth.hcl:6:10: error: Static files hide the app"}},
		{"bad values", app("  static \"/static\" {\n    dir = \"files\"\n    max_age = \"forever\"\n    immutable = \"yes\"\n    fallthrough = \"maybe\"\n  }\n"),
			[]string{"berth.hcl:8:15: error: Invalid duration", "berth.hcl:9:17: error: Invalid immutable", "berth.hcl:10:20: error: Unsuitable value type"}},
		{"another app's mount", app("  static \"/api\" {\n    dir = \"files\"\n  }\n") + "app \"api\" {\n  module = \"api:app\"\n  mount = \"/api\"\n}\n",
			[]string{"berth.hcl:6:10: error: Mount already taken: app \"api\" already answers \"/api\""}},
		{"another app's static block", app("  static \"/static\" {\n    dir = \"files\"\n  }\n") + "app \"blog\" {\n  module = \"blog:app\"\n  mount = \"/blog\"\n}\napp \"api\" {\n  module = \"api:app\"\n  mount = \"/api\"\n  static \"/../static\" {\n    dir = \"files\"\n  }\n}\n",
			[]string{"berth.hcl:17:10: error: Invalid static prefix"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.src, "files")
			_, err := LoadOnHost(path)
			if err == nil {
				t.Fatalf("Load accepted:\n%s", c.src)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("diagnostics lack %q; got:\n%s", w, err)
				}
			}
		})
	}
}

// TestStaticOtherHosts: two apps on the same listener may serve the same
// static path for different hosts, as they may mount at the same path.
func TestStaticOtherHosts(t *testing.T) {
	path := writeConfig(t, `
listener "http" {
  address = "127.0.0.1:8000"
}
app "a" {
  module = "a:app"
  hosts  = ["a.test"]
  static "/b/static" {
    dir = "files"
  }
}
app "b" {
  module = "b:app"
  hosts  = ["b.test"]
  mount  = "/b"
  static "/static" {
    dir = "files"
  }
}
app "c" {
  module = "c:app"
  static "/static" {
    dir = "files"
  }
}
`, "files")
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(src), `"b.test"`, `"a.test"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), `berth.hcl:16:10: error: Mount already taken: a static block of app "a" already answers "/b/static"`) {
		t.Errorf("the same static path for the same host: %v", err)
	}
}

// TestStaticDirElsewhere: a configuration rendered on another machine
// (Load) may name a directory that is not there; berth serve and a reload
// refuse it (CheckStaticDirs), naming where it is written.
func TestStaticDirElsewhere(t *testing.T) {
	path := writeConfig(t, "listener \"http\" {\n  address = \"127.0.0.1:8000\"\n}\napp \"shop\" {\n  module = \"shop:app\"\n  static \"/static\" {\n    dir = \"later\"\n  }\n}\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckStaticDirs(); err == nil || !strings.Contains(err.Error(), "berth.hcl:7:11: app \"shop\": static directory "+filepath.Join(filepath.Dir(path), "later")+": stat ") {
		t.Errorf("CheckStaticDirs = %v", err)
	}
	if err := os.Mkdir(filepath.Join(filepath.Dir(path), "later"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckStaticDirs(); err != nil {
		t.Errorf("CheckStaticDirs once it exists = %v", err)
	}
}
