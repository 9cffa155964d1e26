package units

import (
	"slices"
	"strings"
	"testing"
)

// TestAppListeners: an app answers on one listener or a list of them
// (what `berth serve -b A -b B` writes), each must be declared, and two
// apps may not take the same mount on any listener they share.
func TestAppListeners(t *testing.T) {
	const listeners = `
listener "a" {
  address = "127.0.0.1:0"
}
listener "b" {
  address = "unix:/tmp/b.sock"
}
`
	cases := []struct {
		name, apps string
		want       []string // the first app's listeners
		wantErr    string
	}{
		{"one name", `app "x" {
  module = "m:app"
  listener = "b"
}`, []string{"b"}, ""},
		{"a list", `app "x" {
  module = "m:app"
  listener = ["a", "b"]
}`, []string{"a", "b"}, ""},
		{"an unknown name in the list", `app "x" {
  module = "m:app"
  listener = ["a", "c"]
}`, nil, `l.hcl:10:14: error: Unknown listener: No listener "c" is declared`},
		{"an empty list", `app "x" {
  module = "m:app"
  listener = []
}`, nil, `l.hcl:10:14: error: Invalid listener`},
		{"a mount taken on the second listener", `app "x" {
  module = "m:app"
  listener = ["a", "b"]
}
app "y" {
  module = "m:app"
  listener = "b"
}`, nil, `l.hcl:12:1: error: Mount already taken: App "x" already answers at the root on listener "b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("l.hcl", []byte(listeners+tc.apps))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %v\nwant %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a := c.Apps[0]
			if !slices.Equal(a.Listeners, tc.want) || a.Listener != tc.want[0] || !a.On(tc.want[len(tc.want)-1]) {
				t.Errorf("listeners %q (first %q), want %q", a.Listeners, a.Listener, tc.want)
			}
		})
	}
}
