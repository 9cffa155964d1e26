package units

import (
	"strings"
	"testing"
	"time"
)

// TestIdleExit: idle_exit is a duration of at least a second at the top
// level; absent, it is off.
func TestIdleExit(t *testing.T) {
	for _, tc := range []struct {
		attr string
		want time.Duration
		err  string
	}{
		{``, 0, ""},
		{`idle_exit = "15m"`, 15 * time.Minute, ""},
		{`idle_exit = "0s"`, 0, "Invalid duration"},
		{`idle_exit = "500ms"`, 0, "idle_exit too short"},
		{`idle_exit = 15`, 0, "Invalid duration"},
	} {
		cfg, err := Parse("x.hcl", []byte(tc.attr+"\nlistener \"http\" {\n address = \"127.0.0.1:8000\"\n}\napp \"a\" {\n module = \"a\"\n}\n"))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.attr, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.attr, err)
			continue
		}
		if cfg.IdleExit != tc.want {
			t.Errorf("%q: IdleExit %v, want %v", tc.attr, cfg.IdleExit, tc.want)
		}
		if note := cfg.IdleExitNote(); (note != "") != (tc.want != 0) {
			t.Errorf("%q: IdleExitNote %q", tc.attr, note)
		}
	}
}
