package units

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// privateTmp are the directories the rendered service sees empty and its
// own (PrivateTmp=yes): a static directory in one is not there for berth
// unless the unit binds it back in.
var privateTmp = []string{"/tmp", "/var/tmp"}

// staticBinds are the unit lines that let berth read the static
// directories under its hardening: ProtectSystem=strict and
// ProtectHome=read-only leave every other path readable, so only a
// directory in /tmp or /var/tmp needs one, BindReadOnlyPaths=, which
// systemd applies over the private /tmp. "" when there is none.
func (c *Config) staticBinds() string {
	var dirs []string
	for _, a := range c.Apps {
		for _, s := range a.Static {
			for _, tmp := range privateTmp {
				if rel, err := filepath.Rel(tmp, s.Dir); err == nil && !strings.HasPrefix(rel, "..") && !slices.Contains(dirs, s.Dir) {
					dirs = append(dirs, s.Dir)
				}
			}
		}
	}
	if len(dirs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# Static directories in the private /tmp or /var/tmp (PrivateTmp=), bound\n# back in read-only.\n")
	for _, d := range dirs {
		if strings.ContainsAny(d, " \t\"'\\") {
			d = strconv.Quote(d) // systemd unquotes C-style
		}
		fmt.Fprintf(&b, "BindReadOnlyPaths=%s\n", d)
	}
	return b.String()
}
