// Package units is berth's configuration: the typed model of listeners and
// apps, decoded from HCL and validated with hcl.Diagnostics so that every
// mistake is reported with its file, line, column and source line.
//
// The package only describes what should run; it starts nothing. Other
// packages take the model and act on it.
package units

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Config is one validated configuration file.
type Config struct {
	// File is the path the configuration was read from.
	File      string
	Listeners []Listener
	Apps      []App
	Log       Log
	// Admin is the admin listener (health and readiness), or nil.
	Admin *Admin
	// IdleExit, when set, is how long berth may go without a request or
	// an open client connection before it exits (idle.go).
	IdleExit time.Duration
	// Env is what the file read with env(), in the order first read.
	Env []EnvUse
}

// Admin is the admin listener: /healthz and /readyz for load balancers
// and probes, apart from the apps' listeners so that no app route can
// shadow them and no client of the site can reach them.
type Admin struct {
	// Network is "tcp" or "unix"; Address as for a listener.
	Network, Address string
	// Socket is the ownership of a Unix socket berth binds.
	Socket SocketOwner
	// DrainDelay is how long berth keeps serving after a stop begins,
	// with /readyz answering 503, before it stops accepting: the time a
	// load balancer needs to see the instance leave.
	DrainDelay time.Duration
	// Metrics serves /metrics and counts the per-request series; off, the
	// front skips them.
	Metrics bool
}

// SocketOwner is the mode and ownership of a Unix socket berth binds (and
// what rendered socket units set): a reverse proxy such as nginx runs as
// its own user and must be let in, typically through its group.
type SocketOwner struct {
	// Mode is the socket file's permission bits.
	Mode uint32
	// User and Group own the socket file when set (names or numbers).
	User, Group string
}

// Log is how berth logs. A reload does not change it: the process keeps
// the logger it started with.
type Log struct {
	// Format is "auto" (the journal under journald, else text), "text",
	// "json" or "journal".
	Format string
	// Level is the lowest level logged: debug, info, warn or error.
	Level string
	// Access logs one record per request.
	Access bool
	// AccessFormat is the access records' form: "fields" (a record of the
	// log's format with one field each) or "combined" (Apache's and
	// nginx's combined line, on stdout).
	AccessFormat string
}

// Listener is a listening socket. Under systemd the socket is passed in
// and matched by Name (FileDescriptorName=); otherwise berth binds Address.
//
// Header limits and timeouts belong to the listener rather than the app
// because they apply before a request has been routed to any app.
type Listener struct {
	Name string
	// Network is "tcp" or "unix".
	Network string
	// Address is host:port for TCP, a filesystem path for Unix sockets.
	Address string
	// HeaderTimeout bounds reading one request's header block.
	HeaderTimeout time.Duration
	// BodyTimeout bounds reading one request's body, from the end of its
	// header block.
	BodyTimeout time.Duration
	// WriteTimeout bounds writing each part of a streamed response to the
	// client; a client that stops reading is cut off and frees the worker.
	WriteTimeout time.Duration
	// IdleTimeout bounds waiting for the next request on a keep-alive
	// connection.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus all header lines (431).
	MaxHeaderBytes int
	// MaxURIBytes bounds the request target (414).
	MaxURIBytes int
	// Socket is the ownership of a Unix socket berth binds.
	Socket SocketOwner

	// Trusted are the peers whose X-Forwarded-*, Forwarded and PROXY
	// protocol headers say who the client is and how it connected.
	Trusted Trust
	// ProxyProtocol: every connection starts with a PROXY protocol (v1
	// or v2) header from a trusted peer, or is closed.
	ProxyProtocol bool

	// MaxConnections caps the listener's open connections (0: from the
	// file limit, see DefaultMaxConnections); past it a new one gets 503
	// and is closed.
	MaxConnections int
	// MaxConnectionsPerIP caps what one peer outside Trusted may hold
	// (0: no cap); past it a new one is closed at once.
	MaxConnectionsPerIP int
}

// Equal reports whether l and o are the same listener with the same
// settings.
func (l Listener) Equal(o Listener) bool {
	return reflect.DeepEqual(l, o)
}

// App is one WSGI application and the pool of Python workers that runs it.
type App struct {
	Name string
	// Listener is the app's first listener; Listeners all of them
	// (`listener = ["http", "local"]`), as Gunicorn serves one app on
	// every --bind.
	Listener  string
	Listeners []string
	// Mount is the path prefix the app answers under on its listener
	// ("" for the root): it becomes SCRIPT_NAME and is cut from
	// PATH_INFO. Several apps share a listener by mounting apart; the
	// longest matching prefix wins.
	Mount string
	// Hosts, when set, limits the app to requests whose Host (lower case,
	// without its port) is one of them; such an app is preferred over
	// one without hosts.
	Hosts []string
	// Module is "pkg.mod:callable", "pkg.mod:factory()" or "pkg.mod"
	// (callable "application").
	Module string
	// Python is the interpreter: a name looked up in PATH or a path.
	Python string
	// Chdir is the absolute working directory of the workers.
	Chdir string
	// PythonPath entries are prepended to sys.path, absolute.
	PythonPath []string
	Env        map[string]string
	// Workers is how many workers start; with scaling it is MinWorkers.
	Workers int
	// Threads is how many threads each worker runs, each a dispatch
	// slot of its own (wsgi.multithread is true when above 1).
	Threads int
	// MinWorkers and MaxWorkers bound the pool. They equal Workers for
	// a fixed pool (`workers = N`); `workers { min, max }` scales it.
	MinWorkers, MaxWorkers int
	// SpawnAfter: a scaling pool adds a worker when requests have been
	// waiting in the queue this long.
	SpawnAfter time.Duration
	// IdleTimeout: a scaling pool retires a worker idle this long, never
	// going below MinWorkers.
	IdleTimeout time.Duration
	// MaxRequests recycles a worker after this many requests (0: never),
	// give or take a random MaxRequestsJitter so workers do not all
	// recycle at once.
	MaxRequests, MaxRequestsJitter int
	// MaxLifetime recycles a worker after this long (0: never).
	MaxLifetime time.Duration
	// MaxRSS recycles a worker whose resident memory exceeds this many
	// bytes (0: never).
	MaxRSS int64
	// Limits are what the kernel holds the app's workers to (limits.go).
	Limits Limits
	// GracefulTimeout bounds draining a generation on reload and on
	// shutdown; workers still busy then are killed.
	GracefulTimeout time.Duration
	// Timeout bounds one request's time in a worker (504 past it).
	Timeout time.Duration
	// BootTimeout bounds a worker's import of the app.
	BootTimeout time.Duration
	// QueueSize is how many requests may wait for an idle worker (503
	// past it).
	QueueSize int
	// QueueTimeout is how long a request may wait for an idle worker (503
	// past it).
	QueueTimeout time.Duration
	// MaxBodyBytes bounds a request body (413 past it).
	MaxBodyBytes int64
	// BufferBodyBytes is the largest request body held in memory; a
	// larger one goes to an unlinked temp file that the worker reads
	// through a file descriptor.
	BufferBodyBytes int64
	// Scheduling is the workers' Linux scheduling policy: SchedBatch
	// (the default) or SchedNormal.
	Scheduling string
	// Static are the directories berth serves under the app's paths
	// itself, without its workers (static.go).
	Static []Static
	// MaxBufferedResponse is how much of a streamed response berth takes
	// from the worker ahead of a slow client (memory, then a temp file),
	// so that the worker goes on; past it the worker waits for the
	// client. 0: the worker always waits.
	MaxBufferedResponse int64
}

// Worker scheduling policies (App.Scheduling).
//
// With SchedBatch the workers run under SCHED_BATCH: their share of the
// CPU is what it would be, but a worker woken by a request does not
// preempt what runs, berth's front included, which is on the path of
// every request and otherwise queued behind app code. On 2 cores, hello
// c50's p99 fell by a quarter wherever it was measured (bench/ab.sh, 3
// interleaved rounds: 3.7-5.1 -> 2.6-3.7 ms). Throughput rose 16-40%
// with berth in the same session as wrk (33k -> 38-42k req/s), where
// the kernel's autogroups put them all in one scheduling group; with
// berth in a session of its own, as bench.py and systemd run it, by -6%
// to +31% (3 rounds), and bench.py's ratios did not move. Flask: the
// same within noise. SchedNormal leaves the workers as berth is.
const (
	SchedBatch  = "batch"
	SchedNormal = "normal"
)

// Defaults, chosen so that an app with only a module works well on the
// machine it runs on.
const (
	DefaultPython       = "python3"
	DefaultTimeout      = 30 * time.Second
	DefaultBootTimeout  = 60 * time.Second
	DefaultGraceful     = 30 * time.Second
	DefaultSpawnAfter   = 100 * time.Millisecond
	DefaultWorkerIdle   = 60 * time.Second
	DefaultQueueSize    = 1024
	DefaultQueueTimeout = 10 * time.Second
	DefaultMaxBodyBytes = 16 << 20
	// MaxMaxBodyBytes caps max_body_bytes; bodies past buffer_body_bytes
	// are on disk, so the cap is about disk, not memory.
	MaxMaxBodyBytes        = 1 << 40
	DefaultBufferBodyBytes = 1 << 20
	// DefaultMaxBufferedResponse is the most of one response berth holds
	// for a slow client, on disk past a little memory (as nginx's
	// proxy_max_temp_file_size, 1 GiB, with proxy buffering).
	DefaultMaxBufferedResponse = 256 << 20
	// MaxBufferBodyBytes caps buffer_body_bytes: a body held in memory
	// also crosses to the worker in one frame.
	MaxBufferBodyBytes    = 256 << 20
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultBodyTimeout    = 60 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	DefaultMaxHeaderBytes = 16 << 10
	DefaultMaxURIBytes    = 8 << 10
	// DefaultSocketMode lets the socket's group in: a proxy on the host
	// connects through socket_group.
	DefaultSocketMode = 0o660
)

// DefaultMaxConnections is a listener's max_connections when not set:
// three quarters of the process's file limit (RLIMIT_NOFILE, which Go
// raises to its hard limit at start), leaving the rest for request bodies
// spilled to files, workers' sockets and pipes, and the journal. With
// several listeners, set it on each so that they add up below the limit;
// past it accept backs off rather than failing.
func DefaultMaxConnections() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<24 {
		return 1 << 16
	}
	return max(int(r.Cur)*3/4, 16)
}

// DefaultWorkers is one worker per core: Python runs one request at a time
// per process, and more processes than cores only add context switches.
func DefaultWorkers() int { return runtime.NumCPU() }

// Load reads and validates the configuration at path. On failure the error
// is a *DiagError whose Error text names file, line and column; use
// Format to print it with source lines.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, src)
}

// Parse validates src as if read from path. Relative paths in the
// configuration are resolved against the directory of path.
func Parse(path string, src []byte) (*Config, error) {
	return parse(path, src, false)
}

// parse is Parse, with host true also checking what the file names on
// this machine (host.go).
func parse(path string, src []byte, host bool) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving config path: %w", err)
	}
	d := newDecoder(path, filepath.Dir(abs), src)
	d.host = host
	cfg := d.decode()
	d.diags = dedupe(d.diags)
	hintEnv(d.diags)
	if d.diags.HasErrors() {
		// Report in file order, as a reader goes through the file.
		sort.SliceStable(d.diags, func(i, j int) bool {
			a, b := d.diags[i].Subject, d.diags[j].Subject
			if a == nil || b == nil {
				return b == nil && a != nil
			}
			return a.Start.Byte < b.Start.Byte
		})
		return nil, &DiagError{Diags: d.diags, Files: d.files()}
	}
	cfg.File = path
	cfg.Env = d.env
	return cfg, nil
}

// Summary is the one line `berth check` prints for a valid configuration.
func (c *Config) Summary() string {
	s := fmt.Sprintf("%s: ok: %d listener(s), %d app(s)", c.File, len(c.Listeners), len(c.Apps))
	for i, a := range c.Apps {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		s += fmt.Sprintf("%s%s (%s, %d workers, on %s)", sep, a.Name, a.Module, a.Workers, strings.Join(a.Listeners, ", "))
	}
	return s
}

// On reports whether the app answers on the listener named listener.
func (a App) On(listener string) bool {
	return slices.Contains(a.Listeners, listener)
}

// Listener returns the listener named name.
func (c *Config) Listener(name string) (Listener, bool) {
	for _, l := range c.Listeners {
		if l.Name == name {
			return l, true
		}
	}
	return Listener{}, false
}
