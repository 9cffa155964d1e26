package front

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthd/berth/units"
)

// clientListener hands fasthttp its connections: TCP ones as clientConns,
// Unix ones as unixConns. It is where a flood of connections is met:
//
//   - Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM),
//     accept waits and tries again, backing off to a second, instead of
//     failing: fasthttp stops serving a listener on any accept error but
//     a timeout, which took every site of an instance down at its file
//     limit. The connections berth has are served meanwhile; one warning
//     says when it began, one line when it ended.
//   - A peer not in trusted_proxies may hold at most perIP connections
//     (max_connections_per_ip); past that a new one is closed at once.
//   - On a proxy_protocol listener, each connection comes from a trusted
//     peer (any other is closed at once) and starts with a PROXY header,
//     which the connection reads before fasthttp reads anything.
//   - Once a flood has drained (open connections below a quarter of their
//     peak, from at least floodPeak), the memory its buffers took is given
//     back to the system rather than kept for the next one: 10,000 idle
//     connections (12.6 KiB each: 80,000 a GiB) took berth from 13 to 139
//     MiB; 20 s after they closed it was at 29 MiB, where without this it
//     kept its peak for minutes.
type clientListener struct {
	net.Listener
	proxy bool
	trust units.Trust
	perIP int
	log   *slog.Logger

	// Owned by the accepting goroutine.
	starved   time.Time // when accept began to fail for lack of resources
	refusedAt int       // accept failures in this episode

	open atomic.Int64 // connections accepted and not closed
	peak atomic.Int64 // the most open since memory was last given back

	mu    sync.Mutex         // guards byIP
	byIP  map[netip.Addr]int // open connections of peers not trusted
	freed atomic.Int64       // unix nanos of the last FreeOSMemory
}

// freeAfter is how long after a flood drains its memory is given back.
const freeAfter = 15 * time.Second

// floodPeak is the smallest peak of open connections after which berth
// gives memory back as they drain.
const floodPeak = 1000

func newClientListener(ln net.Listener, l units.Listener, log *slog.Logger) *clientListener {
	return &clientListener{Listener: ln, proxy: l.ProxyProtocol, trust: l.Trusted, perIP: l.MaxConnectionsPerIP, log: log, byIP: map[netip.Addr]int{}}
}

func (l *clientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !l.starve(err) {
				return c, err
			}
			continue
		}
		l.fed()
		if conn := l.admit(c); conn != nil {
			return conn, nil
		}
	}
}

// starve handles an accept error: for a lack of descriptors or memory it
// waits (5 ms, doubling to a second) and reports true, to try again.
func (l *clientListener) starve(err error) bool {
	if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) && !errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.ENOMEM) {
		return false
	}
	if l.refusedAt == 0 {
		l.starved = time.Now()
		l.log.Warn("cannot accept connections: out of file descriptors or memory; serving the open ones and trying again (logged once until it recovers)",
			"err", err, "open", l.open.Load())
	}
	l.refusedAt++
	time.Sleep(min(5*time.Millisecond<<min(l.refusedAt-1, 8), time.Second))
	return true
}

// fed ends a starved episode, if one was on.
func (l *clientListener) fed() {
	if l.refusedAt > 0 {
		l.log.Info("accepting connections again", "after", time.Since(l.starved).Round(time.Millisecond), "failed_accepts", l.refusedAt)
		l.refusedAt = 0
	}
}

// admit wraps an accepted connection, or closes it and returns nil when
// its peer may not have it.
func (l *clientListener) admit(c net.Conn) net.Conn {
	peer, trusted := peerOf(c.RemoteAddr(), l.trust)
	if l.proxy && !trusted {
		l.log.Debug("closed a connection from a peer not in trusted_proxies on a proxy_protocol listener", "remote", c.RemoteAddr().String())
		c.Close()
		return nil
	}
	if !trusted && peer.IsValid() && l.perIP > 0 && !l.takeIP(peer) {
		l.log.Debug("closed a connection past max_connections_per_ip", "remote", peer.String())
		c.Close()
		return nil
	}
	var hdr *proxyHeader
	if l.proxy {
		hdr = &proxyHeader{log: l.log}
	}
	closed := l.opened(peer, trusted)
	switch c := c.(type) {
	case *net.TCPConn:
		return &clientConn{TCPConn: c, proxy: hdr, closed: closed}
	case *net.UnixConn:
		return &unixConn{UnixConn: c, proxy: hdr, closed: closed}
	}
	return c
}

// takeIP counts a connection of peer, or reports false at its limit.
func (l *clientListener) takeIP(peer netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP[peer] >= l.perIP {
		return false
	}
	l.byIP[peer]++
	return true
}

// opened counts a new connection and returns what its Close calls, once.
func (l *clientListener) opened(peer netip.Addr, trusted bool) func() {
	if n := l.open.Add(1); n > l.peak.Load() {
		l.peak.Store(n)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if !trusted && peer.IsValid() && l.perIP > 0 {
				l.mu.Lock()
				if l.byIP[peer]--; l.byIP[peer] <= 0 {
					delete(l.byIP, peer)
				}
				l.mu.Unlock()
			}
			l.drained(l.open.Add(-1))
		})
	}
}

// drained gives memory back once a flood has gone (see clientListener),
// at most once a minute.
func (l *clientListener) drained(open int64) {
	peak := l.peak.Load()
	if peak < floodPeak || open > peak/4 {
		return
	}
	now := time.Now().UnixNano()
	if last := l.freed.Load(); now-last < int64(time.Minute) || !l.freed.CompareAndSwap(last, now) {
		return
	}
	l.peak.Store(open)
	// Later: the rest of a flood closes meanwhile, and fasthttp's idle
	// serving goroutines, whose stacks hold much of the memory, end after
	// MaxIdleWorkerDuration (10 s). Two collections: pooled buffers
	// survive one.
	time.AfterFunc(freeAfter, func() {
		runtime.GC()
		debug.FreeOSMemory()
		l.log.Info("connections drained; gave their memory back", "open", l.open.Load(), "peak", peak)
	})
}

// peerOf is a connection peer's address (none for a Unix socket) and
// whether trust holds it.
func peerOf(a net.Addr, trust units.Trust) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		return ip, ok && trust.Contains(ip)
	case *net.UnixAddr:
		return netip.Addr{}, trust.Unix
	}
	return netip.Addr{}, false
}
