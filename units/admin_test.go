package units

import (
	"strings"
	"testing"
)

// TestAdminBlock: no listener may take the admin socket's name, and the
// stop timeout of a rendered service leaves room for drain_delay.
func TestAdminBlock(t *testing.T) {
	cases := []struct {
		name, src string
		// wantErr is in the diagnostics; else stopSec is the service's
		// TimeoutStopSec=.
		wantErr, stopSec string
	}{
		{"reserved name", `listener "berth-admin" {
  address = "127.0.0.1:8000"
}
app "a" {
  module = "a:app"
}
`, `x.hcl:1:10: error: Reserved listener name: "berth-admin" is the admin block's socket`, ""},
		{"admin is an ordinary name", `listener "admin" {
  address = "127.0.0.1:8000"
}
app "a" {
  module = "a:app"
}
`, "", "TimeoutStopSec=45s\n"},
		{"drain delay", `listener "http" {
  address = "127.0.0.1:8000"
}
admin {
  address     = "127.0.0.1:9191"
  drain_delay = "5s"
}
app "a" {
  module           = "a:app"
  graceful_timeout = "40s"
}
`, "", "TimeoutStopSec=60s\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("x.hcl", []byte(tc.src))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			files, err := cfg.Units(UnitOptions{Name: "x", Berth: "/usr/bin/berth", Config: "/etc/berth/x.hcl"})
			if err != nil {
				t.Fatal(err)
			}
			service := files[len(files)-1]
			if !strings.Contains(service.Content, tc.stopSec) {
				t.Errorf("%s lacks %q:\n%s", service.Name, tc.stopSec, service.Content)
			}
		})
	}
}
