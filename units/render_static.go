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

// tmpBinds are the unit lines that let berth read what a site needs under
// its hardening: ProtectSystem=strict and ProtectHome=read-only leave
// every other path readable, so only a path in /tmp or /var/tmp needs
// one, BindReadOnlyPaths=, which systemd applies over the private /tmp:
// the configuration file's directory, each app's chdir, pythonpath and
// virtualenv (its python's), and the static directories. "" when none
// does.
func (c *Config) tmpBinds(config string) string {
	var paths []string
	if config != "" {
		paths = append(paths, filepath.Dir(config))
	}
	for _, a := range c.Apps {
		paths = append(paths, a.Chdir)
		paths = append(paths, a.PythonPath...)
		if filepath.IsAbs(a.Python) {
			paths = append(paths, filepath.Dir(filepath.Dir(a.Python))) // the venv
		}
		for _, s := range a.Static {
			paths = append(paths, s.Dir)
		}
	}
	dirs := underPrivateTmp(paths)
	if len(dirs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# What the site reads from the private /tmp or /var/tmp (PrivateTmp=),\n# bound back in read-only.\n")
	for _, d := range dirs {
		if strings.ContainsAny(d, " \t\"'\\") {
			d = strconv.Quote(d) // systemd unquotes C-style
		}
		fmt.Fprintf(&b, "BindReadOnlyPaths=%s\n", d)
	}
	return b.String()
}

// underPrivateTmp are the paths in /tmp or /var/tmp (not those themselves),
// sorted, without one inside another kept.
func underPrivateTmp(paths []string) []string {
	var in []string
	for _, p := range paths {
		for _, tmp := range privateTmp {
			if rel, err := filepath.Rel(tmp, filepath.Clean(p)); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
				in = append(in, filepath.Clean(p))
			}
		}
	}
	slices.Sort(in)
	var out []string
	for _, p := range in {
		if n := len(out); n > 0 && (p == out[n-1] || strings.HasPrefix(p, out[n-1]+"/")) {
			continue
		}
		out = append(out, p)
	}
	return out
}
