package units

import (
	"fmt"
	"strings"
)

// nginxHashed matches what berth takes for a name with a content hash
// (front's hashedName): the part before the extension, or the last part,
// is 12 to 64 lower-case hex digits, at least one of them a letter.
const nginxHashed = `"\.(?=[0-9]*[a-f])[0-9a-f]{12,64}(\.[^./]+)?$"`

// writeStaticLocations writes, for each static block of apps, a location
// in which nginx serves the files from the directory itself, as berth
// would (nginx in front has them at hand, and serves them with no hop to
// berth): an alias of the directory, its precompressed .gz siblings
// (gzip_static), no dotfiles, and the same Cache-Control. nginx picks the
// longest prefix, so these win over the app's own location; ^~ keeps
// regular expressions elsewhere from taking them. A block with
// fallthrough, which passes what the directory lacks to the app, is left
// to berth, through the app's location.
func writeStaticLocations(b *strings.Builder, apps []App) {
	for _, a := range apps {
		for _, s := range a.Static {
			if s.Fallthrough {
				fmt.Fprintf(b, "\n    # Static files of app %q under %s (%s): berth serves them, and\n    # passes what the directory lacks to the app (fallthrough).\n", a.Name, nginxMountName(s.Path), s.Dir)
				continue
			}
			fmt.Fprintf(b, "\n    # Static files of app %q, from %s, as berth serves them.\n", a.Name, s.Dir)
			fmt.Fprintf(b, "    location ^~ %s {\n", nginxQuote(s.Path+"/"))
			fmt.Fprintf(b, "        alias %s;\n", nginxQuote(strings.TrimSuffix(s.Dir, "/")+"/"))
			b.WriteString("        gzip_static on;\n        # brotli_static on;  # with ngx_brotli (Debian: libnginx-mod-http-brotli-static)\n")
			b.WriteString("        location ~ /\\. {\n            return 404;\n        }\n")
			switch s.Immutable {
			case ImmutableAll:
				b.WriteString("        add_header Cache-Control \"public, max-age=31536000, immutable\";\n")
			case ImmutableHashed:
				fmt.Fprintf(b, "        location ~ %s {\n            add_header Cache-Control \"public, max-age=31536000, immutable\";\n        }\n", nginxHashed)
				fallthrough
			default:
				if s.MaxAge > 0 {
					fmt.Fprintf(b, "        add_header Cache-Control \"public, max-age=%d\";\n", int64(s.MaxAge.Seconds()))
				}
			}
			b.WriteString("    }\n")
		}
	}
}

// nginxMountName is a path as the comments name it: "/" for the root.
func nginxMountName(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
