package units

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// NginxOptions say how nginx listens in front of berth.
type NginxOptions struct {
	// Name prefixes the upstreams' names (NAME_LISTENER), so that several
	// sites' files can share one nginx.
	Name string
	// Listener renders only the listener of that name; "" renders every
	// listener that has apps.
	Listener string
	// Listen are nginx's listen addresses ("80", "127.0.0.1:8080",
	// "[::]:443"); none means 80, or 443 with TLS.
	Listen []string
	// ServerNames name the server of the apps that answer any host.
	ServerNames []string
	// TLSCert and TLSKey, both or neither, make nginx terminate TLS.
	TLSCert, TLSKey string
	// Redirect, with TLS, is where nginx listens for plain HTTP and
	// redirects it to https ("" for nowhere).
	Redirect string
}

// nginxMargin is how much longer nginx waits for berth than berth takes to
// answer a request at worst, so that the client gets berth's 503 or 504
// (logged, with the worker's stack) rather than nginx's.
const nginxMargin = 5 * time.Second

// nginxSite is what nginx needs of one berth listener.
type nginxSite struct {
	l        Listener
	upstream string // the upstream block's name
	server   string // its server line's address
	servers  []nginxServer
}

// nginxServer is one server block: a set of host names and the apps that
// answer them.
type nginxServer struct {
	site *nginxSite
	// names are its server_name; none for the apps that answer any host.
	names []string
	// anyHost: the apps without hosts, which answer any other host.
	anyHost bool
	apps    []App
}

// Nginx renders an nginx configuration that puts nginx in front of this
// configuration's listeners, to be included in nginx's http block: an
// upstream per listener and a server block per set of hosts, with one
// location per app mount carrying that app's body limit and timeouts.
// The warnings say where berth will not believe what nginx tells it (who
// the client is, whether it came over https); the rendered text carries
// them too, as comments.
func (c *Config) Nginx(opt NginxOptions) (string, []string, error) {
	if err := opt.check(); err != nil {
		return "", nil, err
	}
	sites, err := c.nginxSites(opt)
	if err != nil {
		return "", nil, err
	}
	var servers []nginxServer
	var warnings []string
	for _, s := range sites {
		servers = append(servers, s.servers...)
		warnings = append(warnings, s.warnings()...)
	}
	if err := checkServerNames(servers); err != nil {
		return "", nil, err
	}
	// nginx gives a request whose host no server names to the first
	// server on its address: the one for any host.
	slices.SortStableFunc(servers, func(a, b nginxServer) int {
		return cmp.Compare(boolInt(b.anyHost), boolInt(a.anyHost))
	})
	var b strings.Builder
	file, err := filepath.Abs(c.File)
	if err != nil {
		return "", nil, fmt.Errorf("resolving config path: %w", err)
	}
	writeNginxHeader(&b, file)
	for _, w := range warnings {
		fmt.Fprintf(&b, "# WARNING: %s\n", w)
	}
	for _, s := range sites {
		s.writeUpstream(&b)
	}
	for _, srv := range servers {
		srv.write(&b, opt)
	}
	if opt.TLSCert != "" && opt.Redirect != "" {
		writeRedirect(&b, opt, servers)
	}
	return b.String(), warnings, nil
}

// nginxToken is what berth writes into nginx's configuration unquoted from
// its options; anything else (spaces, ;, {, quotes, $) would change what
// the directive means.
var nginxToken = regexp.MustCompile(`^[A-Za-z0-9._~/:@+,=\[\]*-]+$`)

func (opt *NginxOptions) check() error {
	if (opt.TLSCert == "") != (opt.TLSKey == "") {
		return fmt.Errorf("TLS needs both a certificate and its key")
	}
	var bad []string
	for _, s := range slices.Concat(opt.Listen, opt.ServerNames, []string{opt.TLSCert, opt.TLSKey, opt.Redirect}) {
		if s != "" && !nginxToken.MatchString(s) {
			bad = append(bad, fmt.Sprintf("%q", s))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: not an address, name or path nginx can take as written", strings.Join(bad, ", "))
	}
	return nil
}

// nginxSites plans a site per listener that has apps (or the one asked
// for).
func (c *Config) nginxSites(opt NginxOptions) ([]*nginxSite, error) {
	if opt.Listener != "" {
		if _, ok := c.Listener(opt.Listener); !ok {
			return nil, fmt.Errorf("no listener %q in %s", opt.Listener, c.File)
		}
	}
	var sites []*nginxSite
	for _, l := range c.Listeners {
		if opt.Listener != "" && l.Name != opt.Listener {
			continue
		}
		var apps []App
		for _, a := range c.Apps {
			if a.On(l.Name) {
				apps = append(apps, a)
			}
		}
		if len(apps) == 0 {
			continue
		}
		server, err := nginxUpstreamServer(l)
		if err != nil {
			return nil, err
		}
		s := &nginxSite{l: l, upstream: nginxName(opt.Name + "_" + l.Name), server: server}
		s.servers = s.plan(apps, opt.ServerNames)
		sites = append(sites, s)
	}
	return sites, nil
}

// nginxName is s as an upstream's name: letters, digits and _.
func nginxName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// nginxUpstreamServer is where nginx on this host connects to reach l: its
// Unix socket, or its address, loopback when l listens on every address.
// A listener that expects the PROXY protocol cannot be reached: nginx's
// http proxy does not send it.
func nginxUpstreamServer(l Listener) (string, error) {
	if l.ProxyProtocol {
		return "", fmt.Errorf("listener %q expects the PROXY protocol, which nginx's http proxy does not send: give nginx a listener without proxy_protocol", l.Name)
	}
	if l.Network == "unix" {
		return "unix:" + l.Address, nil
	}
	host, port, err := net.SplitHostPort(l.Address)
	if err != nil {
		return "", fmt.Errorf("listener %q: %w", l.Name, err)
	}
	if port == "0" {
		return "", fmt.Errorf("listener %q: port 0 (any free port) is not an address nginx can connect to; give a port", l.Name)
	}
	switch host {
	case "", "0.0.0.0", "localhost":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// plan groups a listener's apps into server blocks. berth routes a request
// to the apps limited to its host first, then to those for any host, each
// group longest mount first; a host's server therefore holds its own apps
// and the apps for any host that none of its own covers, so that the
// location nginx picks (the longest prefix) belongs to the app berth
// picks. Hosts with the same apps share a server.
func (s *nginxSite) plan(apps []App, names []string) []nginxServer {
	var hosts []string
	var plain []App
	for _, a := range apps {
		if len(a.Hosts) == 0 {
			plain = append(plain, a)
		}
		for _, h := range a.Hosts {
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	var servers []nginxServer
	index := map[string]int{} // the apps' names -> servers[i]
	for _, h := range hosts {
		own := slices.DeleteFunc(slices.Clone(apps), func(a App) bool { return !slices.Contains(a.Hosts, h) })
		list := own
		for _, p := range plain {
			if !slices.ContainsFunc(own, func(a App) bool { return mountUnder(p.Mount, a.Mount) }) {
				list = append(list, p)
			}
		}
		var key []string
		for _, a := range list {
			key = append(key, a.Name)
		}
		if i, ok := index[strings.Join(key, " ")]; ok {
			servers[i].names = append(servers[i].names, h)
			continue
		}
		index[strings.Join(key, " ")] = len(servers)
		servers = append(servers, nginxServer{site: s, names: []string{h}, apps: list})
	}
	if len(plain) > 0 {
		servers = append(servers, nginxServer{site: s, names: names, anyHost: true, apps: plain})
	}
	return servers
}

// mountUnder reports whether mount m is mount top or below it, as berth's
// router matches paths ("" is the root).
func mountUnder(m, top string) bool {
	return m == top || strings.HasPrefix(m, top+"/")
}

// checkServerNames refuses servers nginx would not tell apart: two for any
// host (nginx takes the first server on an address for hosts none names),
// or a name in two servers (nginx would ignore the second).
func checkServerNames(servers []nginxServer) error {
	seen := map[string]*nginxServer{}
	var catchAll *nginxServer
	for i := range servers {
		s := &servers[i]
		if s.anyHost && catchAll != nil {
			return fmt.Errorf("listeners %q and %q both have apps for any host, and nginx serves any host on an address from one server: render one listener at a time (--listener NAME) with a --listen of its own", catchAll.site.l.Name, s.site.l.Name)
		}
		if s.anyHost {
			catchAll = s
		}
		for _, n := range s.names {
			o, ok := seen[n]
			switch {
			case ok && o.site == s.site:
				return fmt.Errorf("server name %q is a host apps of listener %q are limited to: name the server of the apps for any host otherwise", n, s.site.l.Name)
			case ok:
				return fmt.Errorf("host %q has apps on listeners %q and %q, and nginx would ignore the second server: render one listener at a time (--listener NAME) with a --listen of its own", n, o.site.l.Name, s.site.l.Name)
			}
			seen[n] = s
		}
	}
	return nil
}

// warnings say where berth will not believe the headers nginx sends, or
// nginx's workers cannot open the socket.
func (s *nginxSite) warnings() []string {
	l := s.l
	ignored := "berth ignores the X-Forwarded-For and X-Forwarded-Proto nginx sends, and apps see nginx's address and http"
	var w []string
	if l.Network == "unix" {
		if !l.Trusted.Unix {
			w = append(w, fmt.Sprintf("listener %q does not trust Unix-socket peers: add \"unix\" to its trusted_proxies, or %s.", l.Name, ignored))
		}
		// Connecting to a Unix socket takes write permission.
		if !(l.Socket.Group != "" && l.Socket.Mode&0o020 != 0) && l.Socket.Mode&0o002 == 0 {
			w = append(w, fmt.Sprintf("nginx's workers (user www-data on Debian, nginx on Fedora and RHEL) cannot connect to %s: set socket_group = \"www-data\" and a socket_mode that lets the group write (the default, \"0660\") on listener %q.", l.Address, l.Name))
		}
		return w
	}
	host, _, _ := net.SplitHostPort(s.server)
	if a, err := netip.ParseAddr(host); err == nil && !l.Trusted.Contains(a) {
		w = append(w, fmt.Sprintf("listener %q does not trust %s, the address nginx on this host connects from: add %q to its trusted_proxies (nginx's own address when it runs on another host), or %s.", l.Name, a, a.String(), ignored))
	}
	return w
}

func writeNginxHeader(b *strings.Builder, file string) {
	fmt.Fprintf(b, "# nginx in front of berth: rendered by `berth nginx` from %s.\n", file)
	fmt.Fprintf(b, `# Include it in nginx's http block (Debian: /etc/nginx/conf.d/), and render
# it again when that file changes: mounts, hosts, limits and timeouts come
# from it.
#
# Headers: nginx passes Host as the client sent it (with its port, so that
# the URLs apps build lead back), X-Forwarded-For and X-Forwarded-Proto, and
# clears Forwarded, X-Forwarded-Host and X-Forwarded-Port, which a client
# could otherwise send through nginx. berth believes these headers only from
# a listener's trusted_proxies (by default loopback and Unix-socket peers:
# nginx on this host).
#
# Buffering: request bodies go to berth as they come (proxy_request_buffering
# off): berth reads each whole before a worker sees it, in memory or in a
# temp file, so nginx's own copy would be a second one. Responses are
# buffered by nginx (proxy_buffering on, its default): berth frees a worker
# from a slow reader only for bodies up to 1 MiB, nginx for any size. A
# response that must reach the client as it is made (server-sent events)
# says so with the header X-Accel-Buffering: no.
#
# Timeouts: berth answers every request within queue_timeout + timeout (503
# or 504, with the worker's stack logged); nginx waits %s longer, so that
# the client gets berth's answer. Upstream connections are kept alive
# (HTTP/1.1, keepalive) and closed by nginx before berth's idle_timeout.
`, nginxSeconds(nginxMargin))
}

// writeUpstream writes the listener's upstream block.
func (s *nginxSite) writeUpstream(b *strings.Builder) {
	idle := max(s.l.IdleTimeout/2, time.Second)
	fmt.Fprintf(b, "\n# berth's listener %q.\nupstream %s {\n", s.l.Name, s.upstream)
	fmt.Fprintf(b, "    server %s;\n    keepalive 32;\n", nginxQuote(s.server))
	fmt.Fprintf(b, "    # Half berth's idle_timeout (%s): nginx closes first.\n", nginxSeconds(s.l.IdleTimeout))
	fmt.Fprintf(b, "    keepalive_timeout %s;\n}\n", nginxSeconds(idle))
}

// proxyCommon is what every location inherits from its server.
const proxyCommon = `    # Inherited by the locations below; a location that sets a
    # proxy_set_header of its own inherits none of these.
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Forwarded "";
    proxy_set_header X-Forwarded-Host "";
    proxy_set_header X-Forwarded-Port "";
    proxy_request_buffering off;
    proxy_buffering on;
`

// write writes the server block.
func (srv nginxServer) write(b *strings.Builder, opt NginxOptions) {
	b.WriteString("\nserver {\n")
	for _, l := range nginxListen(opt) {
		fmt.Fprintf(b, "    listen %s;\n", l)
	}
	if len(srv.names) > 0 {
		fmt.Fprintf(b, "    server_name %s;\n", strings.Join(srv.names, " "))
	}
	if opt.TLSCert != "" {
		fmt.Fprintf(b, "    ssl_certificate %s;\n    ssl_certificate_key %s;\n", opt.TLSCert, opt.TLSKey)
	}
	b.WriteString("\n" + proxyCommon)
	b.WriteString("\n    # Static files: alias locations for berth's static mounts go here\n    # (berth has none yet).\n")
	apps := slices.Clone(srv.apps)
	slices.SortStableFunc(apps, func(x, y App) int { return cmp.Compare(len(y.Mount), len(x.Mount)) })
	for _, a := range apps {
		writeLocations(b, srv.site.upstream, a)
	}
	if !slices.ContainsFunc(apps, func(a App) bool { return a.Mount == "" }) {
		b.WriteString("\n    # No app is mounted at the root; berth would answer 404 too.\n    location / {\n        return 404;\n    }\n")
	}
	b.WriteString("}\n")
}

// nginxListen is the server's listen lines.
func nginxListen(opt NginxOptions) []string {
	listen := opt.Listen
	if len(listen) == 0 && opt.TLSCert != "" {
		listen = []string{"443"}
	} else if len(listen) == 0 {
		listen = []string{"80"}
	}
	if opt.TLSCert == "" {
		return listen
	}
	var out []string
	for _, l := range listen {
		out = append(out, l+" ssl")
	}
	return out
}

// writeLocations writes an app's locations: its mount exactly and the
// paths below it, as berth matches "/api" and "/api/x" but not "/apix".
func writeLocations(b *strings.Builder, upstream string, a App) {
	wait := a.QueueTimeout + a.Timeout + nginxMargin
	fmt.Fprintf(b, "\n    # App %q: max_body_bytes %s; queue_timeout %s + timeout %s + %s.\n",
		a.Name, nginxSize(a.MaxBodyBytes), nginxSeconds(a.QueueTimeout), nginxSeconds(a.Timeout), nginxSeconds(nginxMargin))
	where := []string{"/"}
	if a.Mount != "" {
		where = []string{"= " + nginxQuote(a.Mount), nginxQuote(a.Mount + "/")}
	}
	for _, w := range where {
		fmt.Fprintf(b, "    location %s {\n", w)
		fmt.Fprintf(b, "        proxy_pass http://%s;\n", upstream)
		fmt.Fprintf(b, "        client_max_body_size %s;\n", nginxSize(a.MaxBodyBytes))
		fmt.Fprintf(b, "        proxy_read_timeout %s;\n", nginxSeconds(wait))
		fmt.Fprintf(b, "        proxy_send_timeout %s;\n", nginxSeconds(wait))
		b.WriteString("    }\n")
	}
}

// writeRedirect writes the plain-HTTP server that sends clients to https.
func writeRedirect(b *strings.Builder, opt NginxOptions, servers []nginxServer) {
	var names []string
	named := true
	for _, s := range servers {
		names = append(names, s.names...)
		named = named && len(s.names) > 0
	}
	target := "https://$host"
	if p := listenPort(nginxListen(opt)[0]); p != "" && p != "443" {
		target += ":" + p
	}
	fmt.Fprintf(b, "\n# Plain HTTP: to https.\nserver {\n    listen %s;\n", opt.Redirect)
	if named {
		fmt.Fprintf(b, "    server_name %s;\n", strings.Join(names, " "))
	}
	fmt.Fprintf(b, "    location / {\n        return 301 %s$request_uri;\n    }\n}\n", target)
}

// listenPort is the port of an nginx listen address ("443 ssl",
// "127.0.0.1:8443 ssl", "[::]:443 ssl"), or "" for a Unix socket.
func listenPort(listen string) string {
	addr, _, _ := strings.Cut(listen, " ")
	if strings.HasPrefix(addr, "unix:") {
		return ""
	}
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && !strings.HasSuffix(addr, "]") {
		return addr[i+1:]
	}
	return addr
}

var nginxPlain = regexp.MustCompile(`^[A-Za-z0-9._~/:@-]+$`)

// nginxQuote quotes s for nginx when it holds more than a path's usual
// characters (mounts may hold ; and quotes).
func nginxQuote(s string) string {
	if nginxPlain.MatchString(s) {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// nginxSize is n bytes in nginx's units, exactly.
func nginxSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprint(n)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nginxSeconds is d in whole seconds, rounded up.
func nginxSeconds(d time.Duration) string {
	return fmt.Sprintf("%ds", (d+time.Second-1)/time.Second)
}
