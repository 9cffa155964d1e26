package units

import (
	"strings"
	"testing"
)

// TestObservabilitySettings: the admin block's metrics and the log
// block's access_format, their defaults and a bad value's diagnostic.
func TestObservabilitySettings(t *testing.T) {
	const app = "app \"a\" {\n  module = \"a:app\"\n}\nlistener \"http\" {\n  address = \"127.0.0.1:8000\"\n}\n"
	for _, tc := range []struct {
		name, src    string
		metrics      bool
		accessFormat string
		wantErr      string
	}{
		{"defaults without admin", app, true, "fields", ""},
		{"defaults with admin", app + "admin {\n  address = \"127.0.0.1:9191\"\n}\n", true, "fields", ""},
		{"metrics off", app + "admin {\n  address = \"127.0.0.1:9191\"\n  metrics = false\n}\n", false, "fields", ""},
		{"combined", app + "log {\n  access_format = \"combined\"\n}\n", true, "combined", ""},
		{"bad format", app + "log {\n  access_format = \"common\"\n}\n", false, "", `x.hcl:8:19: error: Invalid access_format: Want one of fields, combined; got "common"`},
	} {
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
			if cfg.MetricsOn() != tc.metrics || cfg.Log.AccessFormat != tc.accessFormat {
				t.Errorf("metrics %v, access_format %q; want %v, %q", cfg.MetricsOn(), cfg.Log.AccessFormat, tc.metrics, tc.accessFormat)
			}
		})
	}
}
