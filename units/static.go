package units

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
)

// Static is a directory whose files berth's front serves itself, under a
// path of an app's: a site's CSS, scripts, images and uploads, which need
// no Python and should never wait for, or occupy, a worker.
type Static struct {
	// Prefix is the path under the app's mount, as written ("/static";
	// "" for the app's root), without a trailing slash.
	Prefix string
	// Path is where requests find it: the app's mount, then Prefix. It
	// follows the app's hosts too.
	Path string
	// Dir is the absolute directory the files are read from.
	Dir string
	// MaxAge, when not zero, is the Cache-Control max-age of files whose
	// names carry no content hash.
	MaxAge time.Duration
	// Immutable says which files a client may keep for a year without
	// asking again (Cache-Control: immutable): ImmutableHashed,
	// ImmutableAll or ImmutableNone.
	Immutable string
	// Fallthrough passes a request for a file the directory does not serve
	// (missing, a directory, a dotfile) to the app instead of answering
	// 404 itself.
	Fallthrough bool
	// At is where the configuration names Dir (file:line:col), for
	// messages.
	At string
}

// Values of Static.Immutable.
const (
	// ImmutableHashed: only names that carry a content hash, such as
	// Django's ManifestStaticFilesStorage writes (base.5af66c1b1797.css).
	ImmutableHashed = "hashed"
	ImmutableAll    = "all"
	ImmutableNone   = "none"
)

// staticSchema pulls an app's static blocks out of its body, with their
// ranges for the diagnostics.
var staticSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "static", LabelNames: []string{"prefix"}}},
}

type rawStatic struct {
	Dir         string         `hcl:"dir"`
	MaxAge      hcl.Expression `hcl:"max_age,optional"`
	Immutable   hcl.Expression `hcl:"immutable,optional"`
	Fallthrough hcl.Expression `hcl:"fallthrough,optional"`
}

// staticKey names a static block among a configuration's: its app's
// name and its prefix (decoder.staticAt holds where each was declared,
// for the checks across apps in checkStatics).
func staticKey(app, prefix string) string { return app + "\x00" + prefix }

// statics decodes an app's static blocks, with dir relative to the app's
// chdir (already resolved). A directory that does not exist is an error
// at the dir attribute on the host (`berth check`); elsewhere the file
// may be rendered into units or nginx's configuration on a machine
// without it, and berth serve and a reload check it (CheckStaticDirs).
func (d *decoder) statics(a *App, blocks hcl.Blocks) {
	for _, b := range blocks {
		prefix, ok := d.staticPrefix(b)
		if !ok {
			continue
		}
		if slices.ContainsFunc(a.Static, func(s Static) bool { return s.Prefix == prefix }) {
			d.errorf(&b.LabelRanges[0], "Duplicate static block", "App %q already serves static files under %q.", a.Name, b.Labels[0])
			continue
		}
		var raw rawStatic
		diags := gohcl.DecodeBody(b.Body, nil, &raw)
		d.diags = append(d.diags, diags...)
		if diags.HasErrors() {
			continue
		}
		s := Static{Prefix: prefix, Path: a.Mount + prefix, Dir: raw.Dir, Immutable: d.str(raw.Immutable, ImmutableHashed)}
		if !filepath.IsAbs(s.Dir) {
			s.Dir = filepath.Join(a.Chdir, s.Dir)
		}
		s.Dir = filepath.Clean(s.Dir)
		attrs, _ := b.Body.JustAttributes()
		dirRange := attrs["dir"].Expr.Range()
		s.At = fmt.Sprintf("%s:%d:%d", dirRange.Filename, dirRange.Start.Line, dirRange.Start.Column)
		if err := staticDir(s.Dir); err != nil && d.host {
			d.errorf(&dirRange, "Static directory not found", "dir = %q, relative to the app's chdir, is %s: %v.", raw.Dir, s.Dir, err)
		}
		s.MaxAge = d.maxAge(raw.MaxAge)
		if !slices.Contains([]string{ImmutableHashed, ImmutableAll, ImmutableNone}, s.Immutable) {
			rng := raw.Immutable.Range()
			d.errorf(&rng, "Invalid immutable", "Want \"hashed\" (names with a content hash, such as Django's base.5af66c1b1797.css; the default), \"all\" or \"none\"; got %q.", s.Immutable)
		}
		if _, set := d.value(raw.Fallthrough); set {
			d.diags = append(d.diags, gohcl.DecodeExpression(raw.Fallthrough, nil, &s.Fallthrough)...)
		}
		if prefix == "" && !s.Fallthrough {
			d.errorf(&b.LabelRanges[0], "Static files hide the app", "A static block at the app's root answers every request, so app %q would get none: set fallthrough = true (the app then gets what the directory does not hold), or give the block a prefix such as \"/static\".", a.Name)
		}
		a.Static = append(a.Static, s)
		d.staticAt[staticKey(a.Name, prefix)] = b.LabelRanges[0]
	}
}

// staticPrefix reads a static block's label: a path prefix, as a mount is.
func (d *decoder) staticPrefix(b *hcl.Block) (string, bool) {
	s := b.Labels[0]
	if s == "" || s == "/" {
		return "", true // the app's root
	}
	parts := strings.Split(s, "/")
	if !strings.HasPrefix(s, "/") || !mountRE.MatchString(s) || strings.HasPrefix(s, "//") || slices.Contains(parts, ".") || slices.Contains(parts, "..") {
		d.errorf(&b.LabelRanges[0], "Invalid static prefix", "A static block's label is a path prefix under the app's mount, such as \"/static\" or \"/media\": it starts with \"/\", and its segments are not empty, not \".\" or \"..\", and hold no %%, ? or #; got %q.", s)
		return "", false
	}
	return strings.TrimSuffix(s, "/"), true
}

// maxAge reads max_age: a positive Go duration, or whole days ("365d",
// which Go's durations lack).
func (d *decoder) maxAge(expr hcl.Expression) time.Duration {
	v, ok := d.value(expr)
	if !ok {
		return 0
	}
	if v.Type() == cty.String {
		if days, found := strings.CutSuffix(v.AsString(), "d"); found {
			if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 3650 {
				return time.Duration(n) * 24 * time.Hour
			}
		}
	}
	return d.duration(expr, 0)
}

// checkStatics refuses a static path another app or static block of the
// same listener already answers for the same hosts: berth would route
// each request to one of them only.
func (d *decoder) checkStatics(cfg *Config) {
	if d.diags.HasErrors() {
		return // the apps' listeners may not be known
	}
	type taken struct {
		app, what string
		hosts     []string
	}
	at := map[string][]taken{} // listener and path -> who answers there
	key := func(listener, path string) string { return listener + "\x00" + path }
	for _, a := range cfg.Apps {
		for _, l := range a.Listeners {
			at[key(l, a.Mount)] = append(at[key(l, a.Mount)], taken{app: a.Name, what: "app", hosts: a.Hosts})
		}
	}
	for _, a := range cfg.Apps {
		for _, s := range a.Static {
			where := d.staticAt[staticKey(a.Name, s.Prefix)]
			for _, l := range a.Listeners {
				for _, o := range at[key(l, s.Path)] {
					if hostsOverlap(o.hosts, a.Hosts) && !(o.app == a.Name && o.what == "app") {
						d.errorf(&where, "Mount already taken", "%s %q already answers %q on listener %q; give the static block of app %q another prefix.", o.what, o.app, s.Path, l, a.Name)
					}
				}
				at[key(l, s.Path)] = append(at[key(l, s.Path)], taken{app: a.Name, what: "a static block of app", hosts: a.Hosts})
			}
		}
	}
}

// CheckStaticDirs reports the first static directory that is not one berth
// can open, naming where the configuration gives it. berth serve and a
// reload call it before anything serves, so that a missing directory
// stops the start, or fails the reload and leaves the old configuration
// serving; `berth check` reports every one, with its source line.
func (c *Config) CheckStaticDirs() error {
	for _, a := range c.Apps {
		for _, s := range a.Static {
			if err := staticDir(s.Dir); err != nil {
				return fmt.Errorf("%s: app %q: static directory %s: %w", s.At, a.Name, s.Dir, err)
			}
		}
	}
	return nil
}

// staticDir says why dir is not a directory, or nil.
func staticDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return err
	case !fi.IsDir():
		return errors.New("not a directory")
	}
	return nil
}
