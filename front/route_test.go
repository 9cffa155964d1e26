package front

import "testing"

func TestRouteMatch(t *testing.T) {
	mk := func(mount string, hosts ...string) *route { return &route{mount: mount, hosts: hosts} }
	site, api, v2, blog, docs, raw := mk(""), mk("/api"), mk("/api/v2"), mk("", "blog.test"), mk("/docs", "blog.test"), mk("", "[::1]")
	list := []*route{site, api, v2, blog, docs, raw}
	sortRoutes(list)
	rs := &routes{list: list}
	name := map[*route]string{site: "site", api: "api", v2: "v2", blog: "blog", docs: "docs", raw: "raw", nil: "none"}
	for _, c := range []struct{ host, path, want string }{
		{"x.test", "/", "site"},
		{"x.test", "/api", "api"},
		{"x.test", "/api/", "api"},
		{"x.test", "/api/v2", "v2"},
		{"x.test", "/api/v2/x", "v2"},
		{"x.test", "/api/v2x", "api"},
		{"x.test", "/apix", "site"},
		{"", "/x", "site"},
		{"blog.test", "/x", "blog"},
		{"BLOG.TEST:80", "/x", "blog"},
		{"blog.test.", "/x", "blog"},
		{"blog.test", "/docs/a", "docs"},
		{"blog.test", "/api/v2", "blog"},
		{"[::1]:8000", "/api", "raw"},
		{"blog.testx", "/x", "site"},
	} {
		if got := name[rs.match([]byte(c.host), []byte(c.path))]; got != c.want {
			t.Errorf("Host %q path %q -> %s, want %s", c.host, c.path, got, c.want)
		}
	}
	if got := (&routes{list: []*route{api}}).match([]byte("x"), []byte("/other")); got != nil {
		t.Errorf("no root app: /other matched %v", got)
	}
}
