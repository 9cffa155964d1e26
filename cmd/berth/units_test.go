package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUnitsUser: `berth units` runs a site as an unprivileged user unless
// told otherwise, and renders root only with --root.
func TestUnitsUser(t *testing.T) {
	t.Parallel()
	cfg := "../../examples/hello/berth.hcl"
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in the service (or on stderr when code != 0)
		not  []string
	}{
		{"default", nil, 0, []string{"User=berth\nDynamicUser=yes\n"}, []string{"User=root"}},
		{"--user", []string{"--user", "shop"}, 0, []string{"User=shop\nGroup=shop\n"}, []string{"DynamicUser", "User=root"}},
		{"--user root refused", []string{"--user", "root"}, 2, []string{"refusing to run a site as root"}, nil},
		{"--user 0 refused", []string{"--user", "0"}, 2, []string{"refusing to run a site as root"}, nil},
		{"--root", []string{"--root"}, 0, []string{"User=root\n"}, []string{"DynamicUser"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append(append([]string{"units", "--berth", "/usr/bin/berth"}, tc.args...), cfg), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errb.String())
			}
			got := out.String()
			if code != 0 {
				got = errb.String()
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got, w) {
					t.Errorf("output has %q:\n%s", w, got)
				}
			}
		})
	}
}
