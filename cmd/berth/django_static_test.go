package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berthd/berth/internal/e2e"
)

// djangoSite is a Django project with the admin, DEBUG off and
// ManifestStaticFilesStorage (hashed names), whose WSGI entry point notes
// every request it gets in $SEEN.
var djangoSite = map[string]string{
	"settings.py": `from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                  "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.common.CommonMiddleware",
              "django.middleware.csrf.CsrfViewMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.messages.middleware.MessageMiddleware"]
ROOT_URLCONF = "urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                 "django.contrib.auth.context_processors.auth",
                                                 "django.contrib.messages.context_processors.messages"]}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")}}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
`,
	"urls.py": `from django.contrib import admin
from django.urls import path
urlpatterns = [path("admin/", admin.site.urls)]
`,
	"wsgi.py": `import os
from django.core.wsgi import get_wsgi_application
django_app = get_wsgi_application()
def application(environ, start_response):
    with open(os.environ["SEEN"], "a") as f:
        f.write(environ["PATH_INFO"] + "\n")
    return django_app(environ, start_response)
`,
}

// TestDjangoStatic runs collectstatic for a Django site with the admin,
// serves the result with a static block while Django runs with DEBUG
// off, and checks that the admin login page's stylesheets and scripts
// are answered by berth (their types, 200 then 304, a year's immutable
// caching for their hashed names) and that none of those requests
// reached the app.
func TestDjangoStatic(t *testing.T) {
	t.Parallel()
	py := e2e.SystemPython(t)
	needDjango(t, py)
	dir := t.TempDir()
	for name, src := range djangoSite {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	collect := exec.Command(py, "-m", "django", "collectstatic", "--noinput")
	collect.Dir = dir
	collect.Env = append(os.Environ(), "DJANGO_SETTINGS_MODULE=settings", "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
	if out, err := collect.CombinedOutput(); err != nil {
		t.Fatalf("collectstatic: %v\n%s", err, out)
	}
	seen := filepath.Join(dir, "seen.log")
	b := e2e.StartBerth(t, fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:0"
}
app "shop" {
  module  = "wsgi:application"
  python  = %q
  chdir   = %q
  workers = 1
  env     = { DJANGO_SETTINGS_MODULE = "settings", SEEN = %q, PYTHONDONTWRITEBYTECODE = "1" }
  static "/static" {
    dir     = "staticfiles"
    max_age = "1h"
  }
}
`, py, dir, seen))

	resp, page := do(t, "GET", b.URL("/admin/login/"), nil)
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Django administration") {
		t.Fatalf("the admin's login page: %d %.300s", resp.StatusCode, page)
	}
	var assets []string
	for _, m := range regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(string(page), -1) {
		assets = append(assets, m[1])
	}
	// The admin's scripts, by their hashed names in the manifest.
	var manifest struct{ Paths map[string]string }
	raw, err := os.ReadFile(filepath.Join(dir, "staticfiles/staticfiles.json"))
	if err != nil || json.Unmarshal(raw, &manifest) != nil {
		t.Fatalf("collectstatic wrote no manifest: %v", err)
	}
	for _, js := range []string{"admin/js/core.js", "admin/js/vendor/jquery/jquery.js", "admin/js/actions.js"} {
		assets = append(assets, "/static/"+manifest.Paths[js])
	}
	var css, scripts int
	for _, a := range assets {
		want, err := os.ReadFile(filepath.Join(dir, "staticfiles", strings.TrimPrefix(a, "/static/")))
		if err != nil {
			t.Fatalf("%s is not in the collected files: %v", a, err)
		}
		resp, body := do(t, "GET", b.URL(a), nil)
		ctype := resp.Header.Get("Content-Type")
		switch {
		case strings.HasSuffix(a, ".css") && ctype == "text/css; charset=utf-8":
			css++
		case strings.HasSuffix(a, ".js") && ctype == "text/javascript; charset=utf-8":
			scripts++
		default:
			t.Errorf("%s: Content-Type %q", a, ctype)
		}
		if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s = %d, %d bytes (the file has %d), Cache-Control %q", a, resp.StatusCode, len(body), len(want), resp.Header.Get("Cache-Control"))
		}
		again, _ := do(t, "GET", b.URL(a), map[string]string{"If-None-Match": resp.Header.Get("ETag")})
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("%s again with its ETag = %d, want 304", a, again.StatusCode)
		}
	}
	if css < 2 || scripts < 3 {
		t.Errorf("the login page and the manifest gave %d stylesheets and %d scripts (%v); want at least 2 and 3", css, scripts, assets)
	}
	// A name as written in the source, which collectstatic also keeps.
	if resp, _ := do(t, "GET", b.URL("/static/admin/css/base.css"), nil); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=3600" {
		t.Errorf("/static/admin/css/base.css = %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	got, _ := os.ReadFile(seen)
	if !strings.Contains(string(got), "/admin/login/\n") || strings.Contains(string(got), "/static/") {
		t.Errorf("requests that reached Django:\n%s\nwant the login page and no static file", got)
	}
	t.Logf("%d stylesheets and %d scripts served by berth; Django saw:\n%s", css, scripts, got)
}
