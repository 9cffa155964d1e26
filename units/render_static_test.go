package units

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestStaticBinds: a static directory in /tmp or /var/tmp, which the
// rendered service's PrivateTmp= would hide, is bound back in read-only;
// one elsewhere needs nothing. (The configuration's own directory, in
// the test's temp dir, is bound too: see TestTmpBinds.)
func TestStaticBinds(t *testing.T) {
	tmp, err := os.MkdirTemp("/var/tmp", "berth static ")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp)
	for _, c := range []struct {
		dirs []string
		want string
	}{
		{[]string{tmp}, "BindReadOnlyPaths=\"" + tmp + "\"\n"},
		{[]string{tmp, tmp}, "BindReadOnlyPaths=\"" + tmp + "\"\n"},
		{[]string{"/usr/share/doc"}, ""},
	} {
		var blocks string
		for i, d := range c.dirs {
			blocks += "  static \"/s" + string(rune('a'+i)) + "\" {\n    dir = \"" + strings.ReplaceAll(d, `"`, `\"`) + "\"\n  }\n"
		}
		path := writeConfig(t, "listener \"http\" {\n  address = \"127.0.0.1:8000\"\n}\napp \"a\" {\n  module = \"a:app\"\n"+blocks+"}\n")
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		files, err := cfg.Units(UnitOptions{Name: "shop", Berth: "/usr/bin/berth", Config: path})
		if err != nil {
			t.Fatal(err)
		}
		service := files[len(files)-1].Content
		switch {
		case c.want == "" && strings.Contains(service, "BindReadOnlyPaths=/usr"):
			t.Errorf("%v: a bind where none is needed:\n%s", c.dirs, service)
		case c.want != "" && (!strings.Contains(service, c.want) || strings.Count(service, c.want) > 1):
			t.Errorf("%v: the service lacks %q:\n%s", c.dirs, c.want, service)
		}
	}
}

// TestTmpBinds: what a site reads from /tmp or /var/tmp (its config's
// directory, chdir, pythonpath, virtualenv, static directories) is bound
// back in read-only, once, an inner path covered by an outer one.
func TestTmpBinds(t *testing.T) {
	for _, c := range []struct {
		paths []string
		want  []string
	}{
		{[]string{"/srv/site", "/usr/lib/python3"}, nil},
		{[]string{"/tmp/ci/examples/flask", "/tmp/ci/examples/flask/static"}, []string{"/tmp/ci/examples/flask"}},
		{[]string{"/var/tmp/a", "/tmp/b", "/tmp/b/c", "/tmp", "/tmpx/d"}, []string{"/tmp/b", "/var/tmp/a"}},
	} {
		if got := underPrivateTmp(c.paths); !slices.Equal(got, c.want) {
			t.Errorf("underPrivateTmp(%q) = %q, want %q", c.paths, got, c.want)
		}
	}
}
