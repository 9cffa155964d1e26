package units

import (
	"os"
	"strings"
	"testing"
)

// TestStaticBinds: a static directory in /tmp or /var/tmp, which the
// rendered service's PrivateTmp= would hide, is bound back in read-only;
// one elsewhere needs nothing.
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
		{[]string{tmp, tmp}, "# back in read-only.\nBindReadOnlyPaths=\"" + tmp + "\"\n\n[Install]"},
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
		case c.want == "" && strings.Contains(service, "BindReadOnlyPaths"):
			t.Errorf("%v: a bind where none is needed:\n%s", c.dirs, service)
		case c.want != "" && !strings.Contains(service, c.want):
			t.Errorf("%v: the service lacks %q:\n%s", c.dirs, c.want, service)
		}
	}
}
