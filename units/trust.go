package units

import (
	"fmt"
	"net/netip"
	"strings"
)

// Trust is the set of peers whose forwarding headers and PROXY protocol
// headers berth believes: addresses and networks, and Unix-socket peers
// (a reverse proxy on the same host, which only the socket's owner and
// group may reach).
type Trust struct {
	Prefixes []netip.Prefix
	Unix     bool
}

// DefaultTrust is loopback and Unix peers, as Gunicorn's
// forwarded_allow_ips trusts loopback: a proxy on the same host is the
// common deployment, and nothing else can speak from those addresses.
func DefaultTrust() Trust {
	return Trust{
		Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Unix:     true,
	}
}

// Contains reports whether a TCP peer at a is trusted. An IPv4 address
// mapped into IPv6 is matched as IPv4.
func (t Trust) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Empty reports whether nothing is trusted.
func (t Trust) Empty() bool { return len(t.Prefixes) == 0 && !t.Unix }

// String lists the trusted peers as written in a configuration.
func (t Trust) String() string {
	var s []string
	for _, p := range t.Prefixes {
		if p.IsSingleIP() {
			s = append(s, p.Addr().String())
		} else {
			s = append(s, p.String())
		}
	}
	if t.Unix {
		s = append(s, "unix")
	}
	return strings.Join(s, ", ")
}

// ParseTrustEntry parses one entry of trusted_proxies: "unix", an address
// ("10.0.0.1", "::1") or a network ("10.0.0.0/8").
func ParseTrustEntry(t *Trust, s string) error {
	switch {
	case s == "unix":
		t.Unix = true
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q is not a network such as \"10.0.0.0/8\"", s)
		}
		t.Prefixes = append(t.Prefixes, p.Masked())
	default:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q is not an address, a network such as \"10.0.0.0/8\", or \"unix\"", s)
		}
		a = a.Unmap()
		t.Prefixes = append(t.Prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return nil
}
