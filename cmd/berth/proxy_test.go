package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/berthd/berth/internal/e2e"
)

// proxyHeader formats a PROXY protocol header of version v (1 or 2) for
// a client at src that connected to dst.
func proxyHeader(t *testing.T, v byte, src, dst string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(v, tcpAddr(t, src), tcpAddr(t, dst))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tcpAddr(t *testing.T, s string) *net.TCPAddr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// proxyExchange dials addr, sends the parts with a pause between them,
// and reads one response per request in reqs: the environ the probe app
// saw for each, or nil with what was read when berth answered none (or
// closed the connection before the parts were all sent).
func proxyExchange(t *testing.T, addr string, parts [][]byte, reqs int) ([]map[string]any, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	for i, p := range parts {
		if i > 0 {
			time.Sleep(150 * time.Millisecond)
		}
		if _, err := c.Write(p); err != nil {
			return nil, "" // berth closed the connection already
		}
	}
	br := bufio.NewReader(c)
	var envs []map[string]any
	for range reqs {
		if _, err := br.Peek(1); err != nil {
			rest, _ := io.ReadAll(br)
			return nil, string(rest)
		}
		_, body := e2e.ReadResponse(t, br, "GET")
		env := map[string]any{}
		if err := json.Unmarshal([]byte(body), &env); err != nil {
			t.Fatalf("not an environ: %q", body)
		}
		envs = append(envs, env)
	}
	return envs, ""
}

const envGET = "GET /env HTTP/1.1\r\nHost: shop.example\r\n\r\n"

// TestProxyProtocol runs a listener with proxy_protocol = true: the
// address a v1 or v2 header carries is the app's REMOTE_ADDR (a trusted
// proxy's X-Forwarded-For on top of it too), a header may come in pieces
// and with the request in the same packet, a LOCAL header (a health
// check) keeps the connection's own address, and a connection without a
// valid header, or from a peer outside trusted_proxies, is closed with no
// answer while berth goes on serving.
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	python := e2e.SystemPython(t)
	// header_timeout is 3 s: a header in pieces comes with 150 ms pauses
	// (450 ms in all), which other tests' load may stretch.
	inst := e2e.StartBerth(t, e2e.AppConfig(python, "probe:app", "workers = 1", `proxy_protocol = true
  header_timeout = "3s"`))
	dst := inst.Addr
	v1 := proxyHeader(t, 1, "198.51.100.7:4711", dst)
	v2 := proxyHeader(t, 2, "[2001:db8::9]:5000", "[2001:db8::1]:443")
	local, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	viaLoop := proxyHeader(t, 2, "127.0.0.5:1000", dst)
	cases := []struct {
		name  string
		parts [][]byte
		reqs  int
		addr  []string // REMOTE_ADDR per request; nil: no answer at all
		port  string   // REMOTE_PORT of the first, "" to skip
	}{
		{"v1", [][]byte{v1, []byte(envGET)}, 1, []string{"198.51.100.7"}, "4711"},
		{"v2 with the request in one write", [][]byte{append(append([]byte{}, v2...), envGET...)}, 1, []string{"2001:db8::9"}, "5000"},
		{"v2 in pieces", [][]byte{v2[:5], v2[5:14], v2[14:], []byte(envGET)}, 1, []string{"2001:db8::9"}, ""},
		{"keep-alive", [][]byte{v1, []byte(envGET + envGET)}, 2, []string{"198.51.100.7", "198.51.100.7"}, ""},
		{"LOCAL", [][]byte{local, []byte(envGET)}, 1, []string{"127.0.0.1"}, ""},
		{"then X-Forwarded-For from a trusted source", [][]byte{viaLoop, []byte("GET /env HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.44\r\n\r\n")}, 1, []string{"192.0.2.44"}, ""},
		{"no header", [][]byte{[]byte(envGET)}, 1, nil, ""},
		{"garbage header", [][]byte{[]byte("PROXY TCP4 nonsense\r\n" + envGET)}, 1, nil, ""},
		{"v2 with an unknown command", [][]byte{append([]byte("\r\n\r\n\x00\r\nQUIT\n\x2f\x11\x00\x0c"), make([]byte, 12)...), []byte(envGET)}, 1, nil, ""},
		{"cut short past header_timeout", [][]byte{v1[:9]}, 1, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			envs, rest := proxyExchange(t, inst.Addr, tc.parts, tc.reqs)
			if tc.addr == nil {
				if envs != nil || rest != "" {
					t.Fatalf("answered %v %q; want the connection closed with nothing", envs, rest)
				}
				return
			}
			if len(envs) != len(tc.addr) {
				t.Fatalf("%d answers (%q after them), want %d", len(envs), rest, len(tc.addr))
			}
			for i, want := range tc.addr {
				if got := envs[i]["REMOTE_ADDR"]; got != want {
					t.Errorf("request %d: REMOTE_ADDR = %v, want %s", i, got, want)
				}
			}
			if tc.port != "" && envs[0]["REMOTE_PORT"] != tc.port {
				t.Errorf("REMOTE_PORT = %v, want %s", envs[0]["REMOTE_PORT"], tc.port)
			}
		})
	}
	if !strings.Contains(inst.Logs.String(), "without a valid PROXY header") {
		t.Errorf("the refused connections were not logged (at debug)")
	}

	// A peer that is not a trusted proxy is closed before it sends.
	other := e2e.StartBerth(t, e2e.AppConfig(python, "probe:app", "workers = 1", `proxy_protocol = true
  trusted_proxies = ["10.0.0.0/8"]`))
	envs, rest := proxyExchange(t, other.Addr, [][]byte{v1, []byte(envGET)}, 1)
	if envs != nil || rest != "" {
		t.Errorf("an untrusted peer was answered: %v %q", envs, rest)
	}
	if !strings.Contains(other.Logs.String(), "peer not in trusted_proxies") {
		t.Errorf("the untrusted peer was not logged (at debug)")
	}
}
