package units

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// fileSchema is the top level of a configuration file. Anything else is
// reported by hcl as an unsupported block or argument, with its range.
var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "idle_exit"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "listener", LabelNames: []string{"name"}},
		{Type: "app", LabelNames: []string{"name"}},
		{Type: "log"},
		{Type: "admin"},
	},
}

type rawAdmin struct {
	Address     string         `hcl:"address"`
	DrainDelay  hcl.Expression `hcl:"drain_delay,optional"`
	SocketMode  hcl.Expression `hcl:"socket_mode,optional"`
	SocketUser  hcl.Expression `hcl:"socket_user,optional"`
	SocketGroup hcl.Expression `hcl:"socket_group,optional"`
	Metrics     *bool          `hcl:"metrics,optional"`
}

type rawLog struct {
	Format       *string `hcl:"format,optional"`
	Level        *string `hcl:"level,optional"`
	Access       *bool   `hcl:"access,optional"`
	AccessFormat *string `hcl:"access_format,optional"`
}

// rawListener and rawApp are the attributes as written. Attributes that
// need checks beyond their type are kept as expressions so that a bad
// value can be reported at its own range.
type rawListener struct {
	Address        string         `hcl:"address"`
	HeaderTimeout  hcl.Expression `hcl:"header_timeout,optional"`
	BodyTimeout    hcl.Expression `hcl:"body_timeout,optional"`
	WriteTimeout   hcl.Expression `hcl:"write_timeout,optional"`
	IdleTimeout    hcl.Expression `hcl:"idle_timeout,optional"`
	MaxHeaderBytes hcl.Expression `hcl:"max_header_bytes,optional"`
	MaxURIBytes    hcl.Expression `hcl:"max_uri_bytes,optional"`
	SocketMode     hcl.Expression `hcl:"socket_mode,optional"`
	SocketUser     hcl.Expression `hcl:"socket_user,optional"`
	SocketGroup    hcl.Expression `hcl:"socket_group,optional"`
	TrustedProxies hcl.Expression `hcl:"trusted_proxies,optional"`
	ProxyProtocol  hcl.Expression `hcl:"proxy_protocol,optional"`
	MaxConns       hcl.Expression `hcl:"max_connections,optional"`
	MaxConnsPerIP  hcl.Expression `hcl:"max_connections_per_ip,optional"`
}

// rawWorkers is the `workers { min, max }` block of a scaling pool.
type rawWorkers struct {
	Min         hcl.Expression `hcl:"min,optional"`
	Max         hcl.Expression `hcl:"max"`
	SpawnAfter  hcl.Expression `hcl:"spawn_after,optional"`
	IdleTimeout hcl.Expression `hcl:"idle_timeout,optional"`
}

// workersSchema pulls `workers` out of an app body first: it is either an
// attribute (a fixed pool) or a block (a scaling pool), which gohcl's
// struct tags cannot express.
var workersSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "workers"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "workers"}},
}

type rawApp struct {
	Listener     hcl.Expression    `hcl:"listener,optional"`
	Mount        hcl.Expression    `hcl:"mount,optional"`
	Hosts        hcl.Expression    `hcl:"hosts,optional"`
	Module       hcl.Expression    `hcl:"module"`
	Python       hcl.Expression    `hcl:"python,optional"`
	Chdir        *string           `hcl:"chdir,optional"`
	PythonPath   []string          `hcl:"pythonpath,optional"`
	Env          map[string]string `hcl:"env,optional"`
	Threads      hcl.Expression    `hcl:"threads,optional"`
	MaxRequests  hcl.Expression    `hcl:"max_requests,optional"`
	MaxJitter    hcl.Expression    `hcl:"max_requests_jitter,optional"`
	MaxLifetime  hcl.Expression    `hcl:"max_lifetime,optional"`
	MaxRSS       hcl.Expression    `hcl:"max_rss,optional"`
	Graceful     hcl.Expression    `hcl:"graceful_timeout,optional"`
	Timeout      hcl.Expression    `hcl:"timeout,optional"`
	BootTimeout  hcl.Expression    `hcl:"boot_timeout,optional"`
	QueueSize    hcl.Expression    `hcl:"queue,optional"`
	QueueTimeout hcl.Expression    `hcl:"queue_timeout,optional"`
	MaxBodyBytes hcl.Expression    `hcl:"max_body_bytes,optional"`
	BufferBody   hcl.Expression    `hcl:"buffer_body_bytes,optional"`
	Scheduling   hcl.Expression    `hcl:"scheduling,optional"`
	MaxBuffered  hcl.Expression    `hcl:"max_buffered_response,optional"`
}

// moduleRE accepts "pkg.mod", "pkg.mod:name" and "pkg.mod:factory()".
var moduleRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\(\))?)?$`)

// ValidModule reports whether s is spelled as an app's module may be:
// "pkg.mod", "pkg.mod:callable" or "pkg.mod:factory()".
func ValidModule(s string) bool { return moduleRE.MatchString(s) }

// nameRE is what listener and app names may be: they become systemd
// FileDescriptorName= values and journal fields.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

type decoder struct {
	path   string
	dir    string
	src    []byte
	parser *hclparse.Parser
	diags  hcl.Diagnostics
	// ctx evaluates every expression (env.go); env is what env() read.
	ctx *hcl.EvalContext
	env []EnvUse
	// host: also check what the file names on this machine (host.go).
	host bool
	// staticAt is where each static block's label is (static.go).
	staticAt map[string]hcl.Range
}

func newDecoder(path, dir string, src []byte) *decoder {
	d := &decoder{path: path, dir: dir, src: src, parser: hclparse.NewParser(), staticAt: map[string]hcl.Range{}}
	d.ctx = d.evalContext()
	return d
}

func (d *decoder) files() map[string]*hcl.File { return d.parser.Files() }

func (d *decoder) errorf(rng *hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng,
	})
}

func (d *decoder) decode() *Config {
	f, diags := d.parser.ParseHCL(d.src, d.path)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return nil
	}
	content, diags := f.Body.Content(fileSchema)
	d.diags = append(d.diags, diags...)
	if content == nil {
		return nil
	}
	cfg := &Config{Log: Log{Format: "auto", Level: "info", Access: true, AccessFormat: AccessFields}}
	cfg.IdleExit = d.idleExit(content.Attributes["idle_exit"])
	seen := map[string]map[string]*hcl.Block{"listener": {}, "app": {}, "log": {}, "admin": {}}
	var appBlocks []*hcl.Block
	var appRaws []*rawApp
	for _, b := range content.Blocks {
		if b.Type == "log" {
			if len(seen["log"]) > 0 {
				d.errorf(&b.DefRange, "Duplicate log block", "A configuration has at most one log block.")
				continue
			}
			seen["log"][""] = b
			d.logBlock(&cfg.Log, b)
			continue
		}
		if b.Type == "admin" {
			if len(seen["admin"]) > 0 {
				d.errorf(&b.DefRange, "Duplicate admin block", "A configuration has at most one admin block.")
				continue
			}
			seen["admin"][""] = b
			cfg.Admin = d.admin(b)
			continue
		}
		name := b.Labels[0]
		if !nameRE.MatchString(name) {
			d.errorf(&b.LabelRanges[0], "Invalid name", "%s names are 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit; got %q.", b.Type, name)
		}
		if first, dup := seen[b.Type][name]; dup {
			d.errorf(&b.LabelRanges[0], "Duplicate "+b.Type+" name", "%s %q was already declared at %s:%d:%d.", b.Type, name, first.DefRange.Filename, first.DefRange.Start.Line, first.DefRange.Start.Column)
			continue
		}
		seen[b.Type][name] = b
		switch b.Type {
		case "listener":
			if name == AdminSocketName {
				d.errorf(&b.LabelRanges[0], "Reserved listener name", "%q is the admin block's socket (its FileDescriptorName= under systemd); give this listener another name.", name)
				continue
			}
			if l, ok := d.listener(name, b); ok {
				cfg.Listeners = append(cfg.Listeners, l)
			}
		case "app":
			a, raw, ok := d.app(name, b)
			if ok {
				cfg.Apps = append(cfg.Apps, a)
				appBlocks = append(appBlocks, b)
				appRaws = append(appRaws, raw)
			}
		}
	}
	if d.diags.HasErrors() {
		return cfg
	}
	if len(cfg.Apps) == 0 {
		end := f.Body.MissingItemRange()
		d.errorf(&end, "No app", "A configuration declares at least one app block, for example:\n  app \"hello\" {\n    module = \"hello:app\"\n  }")
		return cfg
	}
	d.linkListeners(cfg, appBlocks, appRaws)
	d.checkStatics(cfg)
	return cfg
}

// linkListeners resolves each app's listeners: those it names, or the
// only one declared; apps that share a listener must mount apart.
func (d *decoder) linkListeners(cfg *Config, blocks []*hcl.Block, raws []*rawApp) {
	var names []string
	for _, l := range cfg.Listeners {
		names = append(names, l.Name)
	}
	sort.Strings(names)
	var placed []int // apps whose listeners resolved
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		rng := raws[i].Listener.Range()
		if len(a.Listeners) == 0 {
			switch len(cfg.Listeners) {
			case 0:
				d.errorf(&blocks[i].DefRange, "No listener", "App %q needs a listener to serve on; declare one, for example:\n  listener \"http\" {\n    address = \"127.0.0.1:8000\"\n  }", a.Name)
				continue
			case 1:
				a.Listeners = []string{cfg.Listeners[0].Name}
				rng = blocks[i].DefRange
			default:
				d.errorf(&blocks[i].DefRange, "Missing listener", "App %q must name its listener: several are declared (%s).", a.Name, strings.Join(names, ", "))
				continue
			}
		}
		a.Listener = a.Listeners[0]
		known := true
		for _, name := range a.Listeners {
			if _, ok := cfg.Listener(name); !ok {
				d.errorf(&rng, "Unknown listener", "No listener %q is declared; declared: %s.", name, strings.Join(names, ", "))
				known = false
			}
		}
		if known && !d.mountTaken(cfg, placed, i, blocks[i], raws[i]) {
			placed = append(placed, i)
		}
	}
}

// mountTaken reports (as an error at the app) an app of placed that
// already answers app i's mount and hosts on one of its listeners.
func (d *decoder) mountTaken(cfg *Config, placed []int, i int, block *hcl.Block, raw *rawApp) bool {
	a := &cfg.Apps[i]
	for _, j := range placed {
		o := &cfg.Apps[j]
		shared := ""
		for _, name := range a.Listeners {
			if o.On(name) {
				shared = name
				break
			}
		}
		if shared == "" || o.Mount != a.Mount || !hostsOverlap(o.Hosts, a.Hosts) {
			continue
		}
		at := block.DefRange
		if _, ok := d.value(raw.Mount); ok {
			at = raw.Mount.Range()
		}
		where := "at the root"
		if a.Mount != "" {
			where = fmt.Sprintf("under %q", a.Mount)
		}
		d.errorf(&at, "Mount already taken", "App %q already answers %s on listener %q%s; give app %q another mount = \"/prefix\" (or hosts = [...], or a listener of its own).",
			o.Name, where, shared, hostsNote(o.Hosts, a.Hosts), a.Name)
		return true
	}
	return false
}

// listenerNames reads an app's listener: a name, or a list of names
// (none when not written).
func (d *decoder) listenerNames(expr hcl.Expression) []string {
	v, ok := d.value(expr)
	if !ok {
		return nil
	}
	if v.Type() == cty.String {
		return []string{v.AsString()}
	}
	var names []string
	if diags := gohcl.DecodeExpression(expr, d.ctx, &names); diags.HasErrors() || len(names) == 0 {
		rng := expr.Range()
		d.errorf(&rng, "Invalid listener", "Want a listener's name, such as \"http\", or a list of names, such as [\"http\", \"local\"].")
		return nil
	}
	return slices.Compact(names)
}

// hostsOverlap reports whether two apps' host lists can both match a
// request: both unrestricted, or a name in common.
func hostsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func hostsNote(a, b []string) string {
	for _, x := range a {
		if slices.Contains(b, x) {
			return fmt.Sprintf(" for host %q", x)
		}
	}
	return ""
}

// mountRE is a mount: "/" then path segments of unreserved characters.
// No "%" (mounts match the decoded path), no "." or ".." segments, no
// empty segments.
var mountRE = regexp.MustCompile(`^(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*/?$`)

// hostRE is a host name or IPv4 address (lower case), or a bracketed IPv6
// address, as a Host header carries it without the port.
var hostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])$`)

// mount decodes an app's mount and hosts.
func (d *decoder) mount(a *App, raw *rawApp) {
	if _, ok := d.value(raw.Mount); ok {
		rng := raw.Mount.Range()
		s := d.str(raw.Mount, "/")
		switch {
		case !strings.HasPrefix(s, "/") || !mountRE.MatchString(s) || strings.HasPrefix(s, "//") || slices.Contains(strings.Split(s, "/"), ".") || slices.Contains(strings.Split(s, "/"), ".."):
			d.errorf(&rng, "Invalid mount", "A mount is a path prefix such as \"/\" or \"/api\": it starts with \"/\", and its segments are not empty, not \".\" or \"..\", and hold no %%, ? or #; got %q.", s)
		default:
			a.Mount = strings.TrimSuffix(s, "/")
		}
	}
	if _, ok := d.value(raw.Hosts); ok {
		var hosts []string
		diags := gohcl.DecodeExpression(raw.Hosts, d.ctx, &hosts)
		d.diags = append(d.diags, diags...)
		rng := raw.Hosts.Range()
		for _, h := range hosts {
			h = strings.ToLower(h)
			if !hostRE.MatchString(h) {
				d.errorf(&rng, "Invalid host", "hosts are names such as \"example.com\" (no port, no scheme) or addresses such as \"192.0.2.1\" or \"[2001:db8::1]\"; got %q.", h)
				continue
			}
			if !slices.Contains(a.Hosts, h) {
				a.Hosts = append(a.Hosts, h)
			}
		}
	}
}

func (d *decoder) listener(name string, b *hcl.Block) (Listener, bool) {
	var raw rawListener
	diags := gohcl.DecodeBody(b.Body, d.ctx, &raw)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return Listener{}, false
	}
	l := Listener{
		Name:                name,
		HeaderTimeout:       d.duration(raw.HeaderTimeout, DefaultHeaderTimeout),
		BodyTimeout:         d.duration(raw.BodyTimeout, DefaultBodyTimeout),
		WriteTimeout:        d.duration(raw.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:         d.duration(raw.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:      int(d.size(raw.MaxHeaderBytes, DefaultMaxHeaderBytes, 1<<10, 1<<20)),
		MaxURIBytes:         int(d.size(raw.MaxURIBytes, DefaultMaxURIBytes, 256, 1<<20)),
		MaxConnections:      int(d.integer(raw.MaxConns, 0, 1, 1<<24)),
		MaxConnectionsPerIP: int(d.integer(raw.MaxConnsPerIP, 0, 1, 1<<24)),
	}
	var ok bool
	if l.Network, l.Address, ok = d.address(raw.Address, b); !ok {
		return l, false
	}
	l.Socket = d.socketOwner(l.Network, raw.SocketMode, raw.SocketUser, raw.SocketGroup)
	l.Trusted = d.trust(raw.TrustedProxies)
	if v, ok := d.value(raw.ProxyProtocol); ok {
		d.diags = append(d.diags, gohcl.DecodeExpression(raw.ProxyProtocol, d.ctx, &l.ProxyProtocol)...)
		if v.True() && l.Trusted.Empty() {
			rng := raw.ProxyProtocol.Range()
			d.errorf(&rng, "No trusted proxies", "proxy_protocol takes its header only from trusted peers, and trusted_proxies is empty: name the load balancers' addresses.")
		}
	}
	if l.MaxURIBytes > l.MaxHeaderBytes {
		l.MaxURIBytes = l.MaxHeaderBytes
	}
	return l, true
}

// address parses a listener's (or the admin block's) address: host:port
// for TCP, unix:/path for a Unix socket, relative to the config's
// directory.
func (d *decoder) address(addr string, b *hcl.Block) (network, address string, ok bool) {
	attrs, _ := b.Body.JustAttributes()
	addrRange := b.DefRange
	if a, ok := attrs["address"]; ok {
		addrRange = a.Expr.Range()
	}
	if strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "./") {
		p := strings.TrimPrefix(addr, "unix:")
		if p == "" {
			d.errorf(&addrRange, "Invalid address", "A Unix socket address needs a path, for example \"unix:/run/berth/app.sock\".")
			return "", "", false
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(d.dir, p)
		}
		return "unix", p, true
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		d.errorf(&addrRange, "Invalid address", "Want host:port (TCP) or unix:/path (Unix socket): %v.", err)
		return "", "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		d.errorf(&addrRange, "Invalid address", "Port %q is not a number from 0 to 65535.", port)
		return "", "", false
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		d.errorf(&addrRange, "Invalid address", "Host %q is not an IP address; berth binds addresses, not names (use \"\" or \"[::]\" for all).", host)
		return "", "", false
	}
	return "tcp", addr, true
}

// socketOwner reads socket_mode, socket_user and socket_group, which
// only a Unix socket has.
func (d *decoder) socketOwner(network string, mode, user, group hcl.Expression) SocketOwner {
	o := SocketOwner{Mode: DefaultSocketMode, User: d.str(user, ""), Group: d.str(group, "")}
	for _, e := range []hcl.Expression{mode, user, group} {
		if _, set := d.value(e); set && network != "unix" {
			rng := e.Range()
			d.errorf(&rng, "Not a Unix socket", "socket_mode, socket_user and socket_group apply to a Unix socket (address = \"unix:/path\"); this address is TCP.")
			return o
		}
	}
	if s := d.str(mode, ""); s != "" {
		m, err := strconv.ParseUint(s, 8, 32)
		if err != nil || m > 0o777 || len(s) < 3 {
			rng := mode.Range()
			d.errorf(&rng, "Invalid socket_mode", "Want permission bits in octal as a string, such as \"0660\"; got %q.", s)
			return o
		}
		o.Mode = uint32(m)
	}
	return o
}

// trust reads trusted_proxies: a list of addresses, networks and "unix";
// unset, loopback and Unix peers; empty, nobody.
func (d *decoder) trust(expr hcl.Expression) Trust {
	if _, ok := d.value(expr); !ok {
		return DefaultTrust()
	}
	var list []string
	rng := expr.Range()
	if diags := gohcl.DecodeExpression(expr, d.ctx, &list); diags.HasErrors() {
		d.errorf(&rng, "Invalid trusted_proxies", "Want a list of addresses, networks and \"unix\", such as [\"127.0.0.1\", \"10.0.0.0/8\", \"unix\"], or [] to trust no one.")
		return Trust{}
	}
	var t Trust
	for _, e := range list {
		if err := ParseTrustEntry(&t, e); err != nil {
			d.errorf(&rng, "Invalid trusted_proxies", "%v.", err)
		}
	}
	return t
}

// admin reads the admin block.
func (d *decoder) admin(b *hcl.Block) *Admin {
	var raw rawAdmin
	diags := gohcl.DecodeBody(b.Body, d.ctx, &raw)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return nil
	}
	a := &Admin{DrainDelay: d.delay(raw.DrainDelay), Metrics: raw.Metrics == nil || *raw.Metrics}
	var ok bool
	if a.Network, a.Address, ok = d.address(raw.Address, b); !ok {
		return nil
	}
	a.Socket = d.socketOwner(a.Network, raw.SocketMode, raw.SocketUser, raw.SocketGroup)
	return a
}

func (d *decoder) app(name string, b *hcl.Block) (App, *rawApp, bool) {
	wc, rest, diags := b.Body.PartialContent(workersSchema)
	sc, rest, sdiags := rest.PartialContent(staticSchema)
	diags = append(diags, sdiags...)
	lc, rest, ldiags := rest.PartialContent(limitsSchema)
	diags = append(diags, ldiags...)
	var raw rawApp
	diags = append(diags, gohcl.DecodeBody(rest, d.ctx, &raw)...)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return App{}, nil, false
	}
	a := App{
		Name:                name,
		Listeners:           d.listenerNames(raw.Listener),
		Module:              d.str(raw.Module, ""),
		Chdir:               d.dir,
		Env:                 raw.Env,
		Threads:             int(d.integer(raw.Threads, 1, 1, 256)),
		MaxRequests:         int(d.integer(raw.MaxRequests, 0, 0, 1<<40)),
		MaxRequestsJitter:   int(d.integer(raw.MaxJitter, 0, 0, 1<<40)),
		MaxLifetime:         d.optDuration(raw.MaxLifetime),
		MaxRSS:              d.size(raw.MaxRSS, 0, 0, 1<<50),
		GracefulTimeout:     d.duration(raw.Graceful, DefaultGraceful),
		Timeout:             d.duration(raw.Timeout, DefaultTimeout),
		BootTimeout:         d.duration(raw.BootTimeout, DefaultBootTimeout),
		QueueSize:           int(d.integer(raw.QueueSize, DefaultQueueSize, 0, 1<<20)),
		QueueTimeout:        d.duration(raw.QueueTimeout, DefaultQueueTimeout),
		MaxBodyBytes:        d.size(raw.MaxBodyBytes, DefaultMaxBodyBytes, 0, MaxMaxBodyBytes),
		BufferBodyBytes:     d.size(raw.BufferBody, DefaultBufferBodyBytes, 0, MaxBufferBodyBytes),
		Scheduling:          d.str(raw.Scheduling, SchedBatch),
		MaxBufferedResponse: d.size(raw.MaxBuffered, DefaultMaxBufferedResponse, 0, 1<<40),
	}
	if a.Scheduling != SchedBatch && a.Scheduling != SchedNormal {
		rng := raw.Scheduling.Range()
		d.errorf(&rng, "Invalid scheduling", "Want \"batch\" (workers do not preempt berth's front when they wake; the default) or \"normal\"; got %q.", a.Scheduling)
	}
	d.workers(&a, wc)
	d.limits(&a, lc.Blocks)
	if a.Module == "" {
		d.errorf(&b.DefRange, "Missing module", "App %q needs module = \"package.module:callable\", the WSGI application to serve.", name)
	} else if !moduleRE.MatchString(a.Module) {
		rng := raw.Module.Range()
		d.errorf(&rng, "Invalid module", "Want \"package.module:callable\", \"package.module:factory()\" or \"package.module\"; got %q.", a.Module)
	}
	a.Python = d.str(raw.Python, DefaultPython)
	if strings.Contains(a.Python, "/") && !filepath.IsAbs(a.Python) {
		a.Python = filepath.Join(d.dir, a.Python)
	}
	if d.host {
		d.checkPython(a.Python, raw.Python, b)
	}
	if raw.Chdir != nil {
		a.Chdir = *raw.Chdir
		if !filepath.IsAbs(a.Chdir) {
			a.Chdir = filepath.Join(d.dir, a.Chdir)
		}
	}
	for _, p := range raw.PythonPath {
		if !filepath.IsAbs(p) {
			p = filepath.Join(a.Chdir, p)
		}
		a.PythonPath = append(a.PythonPath, p)
	}
	d.mount(&a, &raw)
	d.statics(&a, sc.Blocks)
	return a, &raw, !d.diags.HasErrors()
}

func (d *decoder) logBlock(l *Log, b *hcl.Block) {
	var raw rawLog
	diags := gohcl.DecodeBody(b.Body, d.ctx, &raw)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return
	}
	attrs, _ := b.Body.JustAttributes()
	check := func(name, value string, allowed ...string) bool {
		for _, a := range allowed {
			if value == a {
				return true
			}
		}
		rng := attrs[name].Expr.Range()
		d.errorf(&rng, "Invalid "+name, "Want one of %s; got %q.", strings.Join(allowed, ", "), value)
		return false
	}
	if raw.Format != nil && check("format", *raw.Format, "auto", "text", "json", "journal") {
		l.Format = *raw.Format
	}
	if raw.Level != nil && check("level", *raw.Level, "debug", "info", "warn", "error") {
		l.Level = *raw.Level
	}
	if raw.Access != nil {
		l.Access = *raw.Access
	}
	if raw.AccessFormat != nil && check("access_format", *raw.AccessFormat, AccessFields, AccessCombined) {
		l.AccessFormat = *raw.AccessFormat
	}
}

// workers fills the pool size from `workers = N` or `workers { ... }`.
func (d *decoder) workers(a *App, wc *hcl.BodyContent) {
	a.Workers = DefaultWorkers()
	a.SpawnAfter, a.IdleTimeout = DefaultSpawnAfter, DefaultWorkerIdle
	attr, hasAttr := wc.Attributes["workers"]
	switch {
	case hasAttr && len(wc.Blocks) > 0:
		d.errorf(&wc.Blocks[0].DefRange, "Duplicate workers", "App %q sets workers both as a number and as a block; use one.", a.Name)
	case len(wc.Blocks) > 1:
		d.errorf(&wc.Blocks[1].DefRange, "Duplicate workers", "App %q has more than one workers block.", a.Name)
	case hasAttr:
		a.Workers = int(d.integer(attr.Expr, int64(DefaultWorkers()), 1, 1024))
	case len(wc.Blocks) == 1:
		var rw rawWorkers
		diags := gohcl.DecodeBody(wc.Blocks[0].Body, d.ctx, &rw)
		d.diags = append(d.diags, diags...)
		if diags.HasErrors() {
			return
		}
		a.MinWorkers = int(d.integer(rw.Min, 1, 1, 1024))
		a.MaxWorkers = int(d.integer(rw.Max, 1, 1, 1024))
		a.SpawnAfter = d.duration(rw.SpawnAfter, DefaultSpawnAfter)
		a.IdleTimeout = d.duration(rw.IdleTimeout, DefaultWorkerIdle)
		if a.MaxWorkers < a.MinWorkers {
			rng := rw.Max.Range()
			d.errorf(&rng, "Value out of range", "max (%d) is below min (%d).", a.MaxWorkers, a.MinWorkers)
		}
		a.Workers = a.MinWorkers
		return
	}
	a.MinWorkers, a.MaxWorkers = a.Workers, a.Workers
}

// optDuration is a duration that is off (zero) when not written.
func (d *decoder) optDuration(expr hcl.Expression) time.Duration {
	if _, ok := d.value(expr); !ok {
		return 0
	}
	return d.duration(expr, 0)
}

// delay is a duration that may be "0s" (the default when not written).
func (d *decoder) delay(expr hcl.Expression) time.Duration {
	if v, ok := d.value(expr); ok && v.Type() == cty.String {
		if dur, err := time.ParseDuration(v.AsString()); err == nil && dur == 0 {
			return 0
		}
	}
	return d.optDuration(expr)
}

// value evaluates an optional expression; ok is false when the attribute
// was not written (gohcl hands us an expression that evaluates to null).
func (d *decoder) value(expr hcl.Expression) (cty.Value, bool) {
	v, diags := expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, false
	}
	return v, true
}

func (d *decoder) str(expr hcl.Expression, def string) string {
	if _, ok := d.value(expr); !ok {
		return def
	}
	var s string
	d.diags = append(d.diags, gohcl.DecodeExpression(expr, d.ctx, &s)...)
	return s
}

func (d *decoder) integer(expr hcl.Expression, def, min, max int64) int64 {
	if _, ok := d.value(expr); !ok {
		return def
	}
	var n int64
	diags := gohcl.DecodeExpression(expr, d.ctx, &n)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return def
	}
	if n < min || n > max {
		rng := expr.Range()
		d.errorf(&rng, "Value out of range", "Want a whole number from %d to %d; got %d.", min, max, n)
		return def
	}
	return n
}

func (d *decoder) duration(expr hcl.Expression, def time.Duration) time.Duration {
	v, ok := d.value(expr)
	if !ok {
		return def
	}
	rng := expr.Range()
	if v.Type() != cty.String {
		d.errorf(&rng, "Invalid duration", "Want a string such as \"30s\", \"1m30s\" or \"500ms\"; got a %s.", v.Type().FriendlyName())
		return def
	}
	dur, err := time.ParseDuration(v.AsString())
	if err != nil {
		d.errorf(&rng, "Invalid duration", "%q is not a duration; want a string such as \"30s\", \"1m30s\" or \"500ms\".", v.AsString())
		return def
	}
	if dur <= 0 {
		d.errorf(&rng, "Invalid duration", "Want a positive duration; got %q.", v.AsString())
		return def
	}
	return dur
}

// size accepts a whole number of bytes or a string with a unit: "64KiB",
// "16MiB", "1GiB" (binary) or "1KB", "1MB", "1GB" (decimal).
func (d *decoder) size(expr hcl.Expression, def, min, max int64) int64 {
	v, ok := d.value(expr)
	if !ok {
		return def
	}
	rng := expr.Range()
	var n int64
	switch v.Type() {
	case cty.Number:
		if diags := gohcl.DecodeExpression(expr, d.ctx, &n); diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			return def
		}
	case cty.String:
		var err error
		if n, err = ParseSize(v.AsString()); err != nil {
			d.errorf(&rng, "Invalid size", "%v.", err)
			return def
		}
	default:
		d.errorf(&rng, "Invalid size", "Want a number of bytes or a string such as \"16MiB\"; got a %s.", v.Type().FriendlyName())
		return def
	}
	if n < min || n > max {
		d.errorf(&rng, "Value out of range", "Want a size from %d to %d bytes; got %d.", min, max, n)
		return def
	}
	return n
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize parses a byte size such as "512", "64KiB" or "10MB".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size; want bytes or a number with KiB, MiB, GiB, KB, MB or GB", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}
