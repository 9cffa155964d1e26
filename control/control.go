// Package control is the control socket of a running berth: a Unix socket
// in the runtime directory, mode 0600, on which `berth reload` and `berth
// status` ask the running instance to act and wait for its answer.
//
// The protocol is one JSON request line and one JSON response line per
// connection: {"command":"reload"} → {"ok":true,"result":{...}}.
package control

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Request is what a client asks.
type Request struct {
	Command string `json:"command"`
}

// Response is what the server answers. Result is the command's own
// report; OK false with Error means the command could not run at all.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Handler runs a command and returns its report, and whether the command
// succeeded (a reload that was refused did not).
type Handler func(ctx context.Context, command string) (result any, ok bool, err error)

// RuntimeDir is where berth keeps its control sockets: systemd's
// RuntimeDirectory= when set, /run/berth for root, else the user's
// runtime directory or a private directory under /tmp.
func RuntimeDir() string {
	if d := os.Getenv("RUNTIME_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	if os.Geteuid() == 0 {
		return "/run/berth"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "berth")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("berth-%d", os.Geteuid()))
}

// SocketPath is the control socket of the instance serving the
// configuration file config. It is derived from the file's absolute path,
// so `berth serve`, `berth reload` and `berth status` given the same file
// meet on the same socket, and two configurations never share one.
func SocketPath(config string) (string, error) {
	abs, err := filepath.Abs(config)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", config, err)
	}
	sum := sha256.Sum256([]byte(abs))
	base := strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
	return filepath.Join(RuntimeDir(), fmt.Sprintf("%s-%s.sock", base, hex.EncodeToString(sum[:4]))), nil
}

// Server answers requests on a control socket.
type Server struct {
	ln   net.Listener
	path string
	h    Handler
	log  *slog.Logger
}

// Listen creates the control socket at path (mode 0600, in a directory
// created with mode 0700) and serves requests with h until Close. A
// stale socket left by a dead instance is replaced; one in use is an
// error, since another berth serves the same configuration.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating control socket directory: %w", err)
	}
	// In a shared place (/tmp), the directory must be ours and private:
	// another user must not be able to plant or replace the socket.
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("checking control socket directory: %w", err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0) {
		return nil, fmt.Errorf("control socket directory %s must belong to uid %d and not be writable by others", dir, os.Geteuid())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use: is another berth serving this configuration?", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale control socket: %w", err)
	}
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("creating control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("securing control socket: %w", err)
	}
	s := &Server{ln: ln, path: path, h: h, log: log}
	go s.serve()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving and removes the socket.
func (s *Server) Close() error { return s.ln.Close() }

func (s *Server) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req Request
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var resp Response
	if err != nil {
		resp.Error = fmt.Sprintf("bad request: %v", err)
	} else {
		_ = c.SetReadDeadline(time.Time{})
		s.log.Debug("control request", "command", req.Command)
		result, ok, err := s.h(context.Background(), req.Command)
		switch {
		case err != nil:
			resp.Error = err.Error()
		default:
			resp.OK = ok
			if resp.Result, err = json.Marshal(result); err != nil {
				resp.OK, resp.Error = false, fmt.Sprintf("encoding result: %v", err)
			}
		}
	}
	b, _ := json.Marshal(resp)
	_, _ = c.Write(append(b, '\n'))
}

// Call sends command to the control socket at path and waits for the
// answer, at most timeout.
func Call(path, command string, timeout time.Duration) (*Response, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscallECONNREFUSED) {
			return nil, fmt.Errorf("no berth is running for this configuration (no control socket at %s)", path)
		}
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	b, _ := json.Marshal(Request{Command: command})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("sending %s: %w", command, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("waiting for the answer to %s: %w", command, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("reading the answer to %s: %w", command, err)
	}
	return &resp, nil
}
