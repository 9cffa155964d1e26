package units

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNginxStatic: `berth nginx` gives each static block without
// fallthrough a location where nginx serves the directory itself, with
// berth's caching and refusals, and leaves one with fallthrough to berth.
func TestNginxStatic(t *testing.T) {
	path := writeConfig(t, `
listener "http" {
  address = "unix:/run/shop.sock"
}
app "shop" {
  module = "shop:app"
  mount  = "/shop"
  static "/static" {
    dir     = "static files"
    max_age = "1h"
  }
  static "/media" {
    dir       = "media"
    immutable = "none"
  }
  static "/assets" {
    dir       = "assets"
    immutable = "all"
  }
}
app "site" {
  module = "site:app"
  static "/" {
    dir         = "public"
    fallthrough = true
  }
}
`, "static files", "media", "assets", "public")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := cfg.Nginx(NginxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(path)
	for _, want := range []string{
		"    location ^~ /shop/static/ {\n        alias \"" + root + "/static files/\";\n        gzip_static on;\n",
		"        location ~ /\\. {\n            return 404;\n        }\n        location ~ " + nginxHashed + " {\n            add_header Cache-Control \"public, max-age=31536000, immutable\";\n        }\n        add_header Cache-Control \"public, max-age=3600\";\n    }\n",
		"    location ^~ /shop/media/ {\n        alias " + root + "/media/;\n",
		"    location ^~ /shop/assets/ {\n        alias " + root + "/assets/;\n        gzip_static on;\n        # brotli_static on;  # with ngx_brotli (Debian: libnginx-mod-http-brotli-static)\n        location ~ /\\. {\n            return 404;\n        }\n        add_header Cache-Control \"public, max-age=31536000, immutable\";\n    }\n",
		"    # Static files of app \"site\" under / (" + root + "/public): berth serves them, and\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("berth nginx lacks\n%s\nin:\n%s", want, out)
		}
	}
	media := out[strings.Index(out, "location ^~ /shop/media/"):]
	if media = media[:strings.Index(media, "\n    }\n")]; strings.Contains(media, "Cache-Control") {
		t.Errorf("immutable = \"none\" without max_age: the location sets Cache-Control:\n%s", media)
	}
}
