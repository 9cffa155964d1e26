package main

import "testing"

// TestBerthConfig: berth sites knows a berth service by its ExecStart=,
// as D-Bus gives it, whatever the unit is called.
func TestBerthConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		exec any
		want string
		ok   bool
	}{
		{"rendered", [][]any{{"/usr/local/bin/berth", []string{"/usr/local/bin/berth", "serve", "/etc/berth/shop.hcl"}, false}}, "/etc/berth/shop.hcl", true},
		{"template", [][]any{{"/usr/bin/berth", []string{"/usr/bin/berth", "serve", "/etc/berth/demo.hcl"}, false}}, "/etc/berth/demo.hcl", true},
		{"another command", [][]any{{"/usr/sbin/nginx", []string{"/usr/sbin/nginx", "-g", "daemon on;"}, false}}, "", false},
		{"berth but not serve", [][]any{{"/usr/bin/berth", []string{"/usr/bin/berth", "reload", "/etc/berth/x.hcl"}, false}}, "", false},
		{"no ExecStart", [][]any{}, "", false},
		{"not an array", "x", "", false},
	} {
		got, ok := berthConfig(tc.exec)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: berthConfig = %q %v, want %q %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
