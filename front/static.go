package front

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"os"
	"path"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
)

// Static files. A request under one of an app's static mounts is answered
// here, in the front, from the mount's directory: a site's CSS, scripts,
// images and uploads never wait for, or occupy, a Python worker.
//
// berth does this itself rather than with fasthttp's FS handler, which
// was read and run here (fasthttp 1.77, with GenerateETag,
// AcceptByteRange, and Compress with CompressedFileSuffixes .br and .gz).
// It was no faster: beside berth's handler in the same interleaved wrk
// rounds (c50, one core each), 39k and 35k req/s on a 4 KiB file to
// berth's 40k and 28k, and about the same CPU per 1 MiB response (the
// machine is shared: ±20% between rounds). What it does differently is
// what a site must not get: a request for a FIFO in the directory hung
// (its open blocks, and the goroutine and its thread with it, for good);
// it served dotfiles (.env); its ETag is weak, which If-Range may not
// use; and it keeps small files in memory and open handles to the others
// for CacheDuration, so a rewritten 3-byte file was served stale for 14
// s. Each request here opens the file (openat2, confined to the
// directory by the kernel), fstats it and sends it, as nginx with its
// default open_file_cache off does: a file that collectstatic rewrote is
// served at once.

// staticMount is a static block on a listener's routes, its directory
// opened once when the routes are built (at start and on each reload).
// The directory stays open while any request may use it; the garbage
// collector closes it once a reload's new routes have replaced it.
type staticMount struct {
	cfg units.Static
	// dir is the directory (O_PATH) that openat2 resolves names beneath;
	// root is the same directory for kernels without openat2 (before
	// Linux 5.6), where Go's os.Root confines the names instead.
	dir  *os.File
	root *os.Root
	// err says why the directory did not open; its requests get 503 (or
	// the app, with fallthrough) until a reload opens it.
	err error
	// maxAge is Cache-Control for files whose names carry no hash, or nil.
	maxAge []byte
	// app is the app's own route, which gets what falls through.
	app *route
}

// immutable is Cache-Control for a file whose name carries its content's
// hash: a client may keep it for a year (the most RFC 9111 advises) and
// never ask again, even on reload.
var immutable = []byte("public, max-age=31536000, immutable")

// openat2Missing is set once openat2 returned ENOSYS: the kernel predates
// it, and os.Root confines names instead.
var openat2Missing atomic.Bool

// staticRoutes are the routes of app's static mounts (cfg), beside its own
// route rt: the same app, hosts and log, under the mounts' paths.
func staticRoutes(rt *route, cfg []units.Static, log *slog.Logger) []*route {
	var list []*route
	for _, sc := range cfg {
		m := newStaticMount(sc, rt)
		if m.err != nil {
			log.Error("static files unavailable until the directory opens and berth reloads", journal.KeyApp, rt.app.Name(), "path", sc.Path, "err", m.err)
		}
		srt := &route{app: rt.app, mount: sc.Path, hosts: rt.hosts, log: rt.log, static: m, bufferBody: 1,
			tooLarge: "a static file takes no request body"}
		if sc.Fallthrough {
			srt.maxBody, srt.tooLarge, srt.bufferBody = rt.maxBody, rt.tooLarge, rt.bufferBody
		}
		list = append(list, srt)
	}
	return list
}

func newStaticMount(cfg units.Static, app *route) *staticMount {
	m := &staticMount{cfg: cfg, app: app}
	if cfg.MaxAge > 0 {
		m.maxAge = fmt.Appendf(nil, "public, max-age=%d", int64(cfg.MaxAge/time.Second))
	}
	fd, err := unix.Open(cfg.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.err = fmt.Errorf("opening static directory %s: %w", cfg.Dir, err)
		return m
	}
	m.dir = os.NewFile(uintptr(fd), cfg.Dir)
	if m.root, err = os.OpenRoot(cfg.Dir); err != nil {
		m.err = fmt.Errorf("opening static directory %s: %w", cfg.Dir, err)
	}
	return m
}

// staticFile is the file chosen to answer a request: the one named, or a
// precompressed sibling of it.
type staticFile struct {
	fd    int
	name  string // as named in the request, under the mount
	size  int64
	mtime time.Time
	// coding is the sibling's Content-Encoding, "" for the file itself.
	coding string
	// vary: the client's Accept-Encoding decided which file this is.
	vary bool
}

// codings are the precompressed siblings berth looks for, best first, as
// Django's and WhiteNoise's tools name them (app.css.br, app.css.gz).
var codings = []struct{ name, suffix string }{{"br", ".br"}, {"gzip", ".gz"}}

// serveStatic answers a request routed to a static mount from its
// directory and returns nil; or, on a mount with fallthrough, returns the
// app's route for a request the directory does not serve, which then goes
// to the app as any other.
func (s *Server) serveStatic(ctx *fasthttp.RequestCtx, env *environ, rt *route, start time.Time) *route {
	m := rt.static
	h := &ctx.Request.Header
	get := h.IsGet() || h.IsHead()
	cl := h.ContentLength()
	body := cl > 0 || cl == -1 // a length, or chunked
	if m.cfg.Fallthrough && (!get || body) {
		env.route = m.app
		return m.app // only a GET or HEAD without a body asks for a file
	}
	var f staticFile
	status := fasthttp.StatusMethodNotAllowed
	if get {
		f, status = m.open(env.path[len(rt.mount):], h.Peek(fasthttp.HeaderAcceptEncoding))
	}
	if status != 0 && m.cfg.Fallthrough {
		env.route = m.app
		return m.app
	}
	requestID(ctx)
	if body {
		ctx.SetConnectionClose() // its body is left unread
	}
	if s.logAccess {
		env.resolveClient(ctx, s.listener.Trusted)
	}
	if status != 0 {
		s.unavailable(ctx, status, staticRefusals[status])
		if status == fasthttp.StatusMethodNotAllowed {
			ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
		}
		s.access(ctx, env, rt.log, start, 0)
		return nil
	}
	s.sendStatic(ctx, env, rt, f, start)
	return nil
}

// staticRefusals are the bodies of the answers a static mount gives when
// it serves no file.
var staticRefusals = map[int]string{
	fasthttp.StatusNotFound:           "not found",
	fasthttp.StatusForbidden:          "forbidden",
	fasthttp.StatusMethodNotAllowed:   "method not allowed: static files answer GET and HEAD",
	fasthttp.StatusServiceUnavailable: "service unavailable: the static directory did not open (see berth's log)",
}

// open finds the file for a request's path under the mount (rel: "" or
// "/name"), or a precompressed sibling of it the client accepts. A
// non-zero status says why there is none: 404 for a name that is missing,
// a directory, a dotfile (a name any of whose segments starts with "."),
// a special file (a FIFO, a device, a socket) or a path that leaves the
// directory (through ".." or a symlink that points outside it, which the
// kernel refuses to follow: RESOLVE_BENEATH); 403 for a file berth may
// not read.
func (m *staticMount) open(rel, acceptEncoding []byte) (staticFile, int) {
	if m.err != nil {
		return staticFile{}, fasthttp.StatusServiceUnavailable
	}
	if len(rel) < 2 || rel[len(rel)-1] == '/' || bytes.Contains(rel, []byte("/.")) {
		return staticFile{}, fasthttp.StatusNotFound
	}
	f := staticFile{name: string(rel[1:])}
	for _, c := range codings {
		if !acceptsCoding(acceptEncoding, c.name) {
			continue
		}
		f.vary = true
		if m.openRegular(&f, f.name+c.suffix) == 0 {
			f.coding = c.name
			return f, 0
		}
	}
	return f, m.openRegular(&f, f.name)
}

// openRegular opens name beneath the directory into f, when it is a
// regular file. The open does not block on a FIFO (O_NONBLOCK) nor make a
// terminal berth's (O_NOCTTY); a file that is not regular is closed
// unread.
func (m *staticMount) openRegular(f *staticFile, name string) int {
	fd, err := m.openat(name)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return fasthttp.StatusForbidden
		}
		return fasthttp.StatusNotFound
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return fasthttp.StatusNotFound
	}
	f.fd, f.size, f.mtime = fd, st.Size, time.Unix(st.Mtim.Unix())
	return 0
}

const staticOpenFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY

// openat opens name beneath the directory: symlinks are followed while
// they stay inside it.
func (m *staticMount) openat(name string) (int, error) {
	if !openat2Missing.Load() {
		how := unix.OpenHow{Flags: staticOpenFlags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		fd, err := unix.Openat2(int(m.dir.Fd()), name, &how)
		runtime.KeepAlive(m.dir)
		if err != unix.ENOSYS {
			return fd, err
		}
		openat2Missing.Store(true)
	}
	f, err := m.root.OpenFile(name, staticOpenFlags, 0)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return unix.Dup(int(f.Fd()))
}

// sendStatic answers with f: 304 or 412 as the request's conditions say,
// else 200 with the file or 206 with the part a Range asks for.
func (s *Server) sendStatic(ctx *fasthttp.RequestCtx, env *environ, rt *route, f staticFile, start time.Time) {
	h, hdr := &ctx.Request.Header, &ctx.Response.Header
	var tag [64]byte
	etag := appendETag(tag[:0], f.mtime, f.size, f.coding)
	status := preconditions(h, etag, f.mtime)
	if status == fasthttp.StatusPreconditionFailed {
		unix.Close(f.fd)
		s.unavailable(ctx, status, "precondition failed")
		s.access(ctx, env, rt.log, start, 0)
		return
	}
	// What a 304 repeats of the 200 (RFC 9110 section 15.4.5).
	hdr.SetCanonical(strETag, etag)
	var date [32]byte
	hdr.SetCanonical(strLastModified, fasthttp.AppendHTTPDate(date[:0], f.mtime))
	if cc := rt.static.cacheControl(f.name); cc != nil {
		hdr.SetCanonical(strCacheControl, cc)
	}
	if f.vary {
		hdr.SetCanonical(strVary, strAcceptEncoding)
	}
	if status == fasthttp.StatusNotModified {
		unix.Close(f.fd)
		ctx.SetStatusCode(status)
		s.access(ctx, env, rt.log, start, 0)
		return
	}
	part, status := choosePart(h, hdr, etag, f)
	if status == fasthttp.StatusRequestedRangeNotSatisfiable {
		unix.Close(f.fd)
		s.unavailable(ctx, status, "range not satisfiable")
		hdr.Set(fasthttp.HeaderContentRange, fmt.Sprintf("bytes */%d", f.size))
		s.access(ctx, env, rt.log, start, 0)
		return
	}
	ctx.SetStatusCode(status)
	hdr.SetContentType(contentType(f.name))
	if f.coding != "" {
		hdr.SetCanonical(strContentEncoding, []byte(f.coding))
	}
	hdr.SetCanonical(strAcceptRanges, strBytes)
	s.staticBody(ctx, env, rt, f, part, start)
}

// Header names as berth writes them, past fasthttp's normalising (which
// would write "Etag").
var (
	strETag            = []byte("ETag")
	strLastModified    = []byte("Last-Modified")
	strCacheControl    = []byte("Cache-Control")
	strVary            = []byte("Vary")
	strAcceptEncoding  = []byte("Accept-Encoding")
	strContentEncoding = []byte("Content-Encoding")
	strAcceptRanges    = []byte("Accept-Ranges")
	strBytes           = []byte("bytes")
)

// preconditions evaluates a request's conditional fields against the
// file's validators in the order RFC 9110 section 13.2.2 gives:
// If-Match, else If-Unmodified-Since (412 when false); then If-None-Match,
// else If-Modified-Since (304 when false). It returns 0 to answer in full.
func preconditions(h *fasthttp.RequestHeader, etag []byte, mtime time.Time) int {
	if im := h.PeekAll(fasthttp.HeaderIfMatch); len(im) > 0 {
		if !etagMatch(im, etag, false) {
			return fasthttp.StatusPreconditionFailed
		}
	} else if ius := h.Peek(fasthttp.HeaderIfUnmodifiedSince); len(ius) > 0 {
		if notNewer, ok := notAfter(mtime, ius); ok && !notNewer {
			return fasthttp.StatusPreconditionFailed
		}
	}
	if inm := h.PeekAll(fasthttp.HeaderIfNoneMatch); len(inm) > 0 {
		if etagMatch(inm, etag, true) {
			return fasthttp.StatusNotModified
		}
	} else if ims := h.Peek(fasthttp.HeaderIfModifiedSince); len(ims) > 0 {
		if notNewer, ok := notAfter(mtime, ims); ok && notNewer {
			return fasthttp.StatusNotModified
		}
	}
	return 0
}

// choosePart is the part of f to send and the status to send it with:
// the whole file (200), one range (206, with its Content-Range set), or
// 416. A Range with an If-Range that does not match (the strong ETag, or
// the exact Last-Modified date) gets the whole file, as do GETs without
// Range.
func choosePart(h *fasthttp.RequestHeader, hdr *fasthttp.ResponseHeader, etag []byte, f staticFile) (byteRange, int) {
	whole := byteRange{n: f.size}
	field := h.Peek(fasthttp.HeaderRange)
	if len(field) == 0 {
		return whole, fasthttp.StatusOK
	}
	if ir := h.Peek(fasthttp.HeaderIfRange); len(ir) > 0 {
		t, err := fasthttp.ParseHTTPDate(ir)
		dateOK := err == nil && t.Equal(f.mtime.Truncate(time.Second))
		if !dateOK && !etagMatch([][]byte{ir}, etag, false) {
			return whole, fasthttp.StatusOK
		}
	}
	part, res := parseRange(field, f.size)
	switch res {
	case rangePart:
		hdr.SetContentRange(int(part.start), int(part.start+part.n-1), int(f.size))
		return part, fasthttp.StatusPartialContent
	case rangeUnsatisfiable:
		return whole, fasthttp.StatusRequestedRangeNotSatisfiable
	}
	return whole, fasthttp.StatusOK
}

// cacheControl is the Cache-Control of the file name, or nil for none.
func (m *staticMount) cacheControl(name string) []byte {
	switch m.cfg.Immutable {
	case units.ImmutableAll:
		return immutable
	case units.ImmutableHashed:
		if hashedName([]byte(name)) {
			return immutable
		}
	}
	return m.maxAge
}

// contentType is the type of a file by its extension, as Go's mime
// package knows it (its own table, then the system's /etc/mime.types);
// application/octet-stream, as nginx's default_type, for the rest.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// staticCopyMax is the largest file part read into fasthttp's write
// buffer behind the head and sent with it in one write; a larger one goes
// with sendfile after the head. On a 4 KiB file the one write served 55k
// to 66k req/s where sendfile after the head served 29k to 45k, and on a
// 16 KiB file 37k to 67k against 27k to 43k (two builds, 4 interleaved
// wrk rounds, c50): sendfile saves a copy but costs a second write, the
// file's registration with the poller and a seek.
const staticCopyMax = 16 << 10

// staticBody sets the response's body to the part of f: none for HEAD
// (but its Content-Length), else read behind the head, or sent with
// sendfile.
func (s *Server) staticBody(ctx *fasthttp.RequestCtx, env *environ, rt *route, f staticFile, part byteRange, start time.Time) {
	if ctx.IsHead() {
		unix.Close(f.fd)
		ctx.Response.SkipBody = true
		ctx.Response.Header.SetContentLength(int(part.n))
		s.access(ctx, env, rt.log, start, 0)
		return
	}
	b := &fileBody{fd: f.fd, off: part.start, left: part.n, done: s.streamDone(ctx, env, rt.log, start)}
	if part.n <= staticCopyMax {
		ctx.Response.SetBodyStream(b, int(part.n))
		return
	}
	// The head goes out at once, then the file straight from the page
	// cache to the socket (sendfileBody.WriteTo).
	ctx.Response.ImmediateHeaderFlush = true
	ctx.Response.SetBodyStream(&sendfileBody{fileBody: b, st: &stream{s: s, log: rt.log, conn: ctx.Conn(), limit: part.n}}, int(part.n))
}

// fileBody is a static response's body: a part of an open file, which
// fasthttp reads into its write buffer behind the head (Read), to send
// both in one write. A file that shrinks while it is sent ends the body
// short, and the connection with it, so the client sees it incomplete;
// one that grows is sent as long as it was.
type fileBody struct {
	fd   int
	off  int64
	left int64
	sent int64
	done func(n int64)
}

// Read reads the file from where the body has got to.
func (b *fileBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	n, err := unix.Pread(b.fd, p[:min(int64(len(p)), b.left)], b.off)
	if err == nil && n == 0 {
		err = io.ErrUnexpectedEOF // the file shrank
	}
	n = max(n, 0)
	b.off += int64(n)
	b.left -= int64(n)
	b.sent += int64(n)
	return n, err
}

// sendfileBody is a larger static body, which writes itself to the
// client's socket with sendfile, as a wsgi.file_wrapper's file is
// (stream.sendRange: write_timeout per write that makes no progress, and
// the same end when the file shrinks).
type sendfileBody struct {
	*fileBody
	st *stream
}

// SupportsBodyWriteTo tells fasthttp to use WriteTo.
func (b *sendfileBody) SupportsBodyWriteTo() bool { return true }

// WriteTo sends the body to the client's socket itself, not to w:
// fasthttp has flushed the head (ImmediateHeaderFlush).
func (b *sendfileBody) WriteTo(io.Writer) (int64, error) {
	file := os.NewFile(uintptr(b.fd), "static file")
	defer file.Close()
	b.fd = -1 // file's now
	n, err := b.st.sendRange(file, b.off, b.left)
	b.sent += n
	b.left -= n
	return n, err
}

// Close closes the file, counts the request and writes its access
// record; fasthttp calls it when the response is done or abandoned.
func (b *fileBody) Close() error {
	if b.fd >= 0 {
		unix.Close(b.fd)
		b.fd = -1
	}
	if b.done != nil {
		b.done(b.sent)
		b.done = nil
	}
	return nil
}

// resolveClient finds who sent the request, believing the forwarding
// headers of trusted proxies, for the access record, as build does for
// a request to the app.
func (e *environ) resolveClient(ctx *fasthttp.RequestCtx, trust units.Trust) {
	e.collectHeaders(&ctx.Request.Header)
	e.origin.resolve(ctx.RemoteAddr(), trust, &e.fwd)
	e.addr = e.addr[:0]
	if e.origin.addr.IsValid() {
		e.addr = e.origin.addr.AppendTo(e.addr)
	}
}
