package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthd/berth/journal"
	"github.com/berthd/berth/units"
	"github.com/berthd/berth/wire"
)

// pythons finds every CPython >= 3.8 on the machine: pyenv's versions and
// the system's. Each is keyed by its minor version.
func pythons(t *testing.T) map[string]string {
	found := map[string]string{}
	var candidates []string
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		root = filepath.Join(os.Getenv("HOME"), ".pyenv")
	}
	g, _ := filepath.Glob(filepath.Join(root, "versions", "*", "bin", "python3"))
	candidates = append(candidates, g...)
	candidates = append(candidates, "/usr/bin/python3")
	for _, c := range candidates {
		out, err := exec.Command(c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(out))
		if _, ok := found[v]; !ok {
			found[v] = c
		}
	}
	return found
}

func testApp(python string, workers int) units.App {
	wd, _ := os.Getwd()
	return units.App{
		Name: "test", Module: "app:app", Python: python, Chdir: filepath.Join(wd, "testdata"),
		Workers: workers, Timeout: 10 * time.Second, BootTimeout: 30 * time.Second,
		QueueSize: 16, QueueTimeout: 10 * time.Second, MaxBodyBytes: 1 << 20,
	}
}

func request(method, path, header string) []byte {
	var e wire.RequestEncoder
	e.Reset()
	e.AddString("REQUEST_METHOD", method)
	e.AddString("PATH_INFO", path)
	e.AddString("HTTP_X_TEST", header)
	return append([]byte(nil), e.Finish(len("the body"))...)
}

// readAll reads a response body to its end; a file part is read from the
// descriptor the worker passed, at its offset.
func readAll(t *testing.T, ex *Exchange) string {
	t.Helper()
	body, err := bodyOf(ex)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// bodyOf is readAll for any goroutine: it returns the error.
func bodyOf(ex *Exchange) (string, error) {
	body := string(ex.Head.Body)
	for {
		p, err := ex.Next()
		if err == io.EOF {
			return body, nil
		}
		if err != nil {
			return body, fmt.Errorf("reading body: %w", err)
		}
		if p.File != nil {
			b, err := io.ReadAll(io.NewSectionReader(p.File, p.Offset, 1<<40))
			p.File.Close()
			if err != nil {
				return body, fmt.Errorf("reading the passed file: %w", err)
			}
			body += string(b)
			continue
		}
		body += string(p.Data)
	}
}

// do sends a bodyless request and reads the whole response.
func do(t *testing.T, p *Pool, method, path, header string) (*Exchange, string) {
	t.Helper()
	ex, err := p.Do(Request{Frame: request(method, path, header), Body: []byte("the body")})
	if err != nil {
		t.Fatal(err)
	}
	return ex, readAll(t, ex)
}

// TestPythonVersions runs the worker on every CPython >= 3.8 on the
// machine and checks a request, a response and a streamed response.
func TestPythonVersions(t *testing.T) {
	found := pythons(t)
	var names []string
	for v := range found {
		names = append(names, v)
	}
	sort.Strings(names)
	t.Logf("CPython versions found: %s", strings.Join(names, ", "))
	for _, v := range []string{"3.8", "3.9", "3.10", "3.11", "3.12", "3.13"} {
		t.Run(v, func(t *testing.T) {
			py, ok := found[v]
			if !ok {
				t.Skipf("python%s not found on this machine (looked in pyenv and /usr/bin)", v)
			}
			p := NewPool(testApp(py, 1), 1, journal.New(io.Discard, slog.LevelInfo))
			if err := p.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer p.Stop(context.Background())
			ex, err := p.Do(Request{Frame: request("POST", "/caf\xe9", "x"), Body: []byte("the body")})
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, ex)
			status, hs := ex.Head.Status, fmt.Sprint(headerMap(ex.Head))
			ex.Close()
			if status != 201 || !strings.HasPrefix(body, "POST /caf\xe9 x ") || !strings.HasSuffix(body, " the body") {
				t.Errorf("response %d %q", status, body)
			}
			if !strings.Contains(hs, "X-Python:"+v) {
				t.Errorf("headers %s do not name python %s", hs, v)
			}
			ex, err = p.Do(Request{Frame: request("GET", "/stream", ""), Body: []byte("the body")})
			if err != nil {
				t.Fatal(err)
			}
			if !ex.More() {
				t.Errorf("a generator's response came in one frame")
			}
			if body := readAll(t, ex); body != "from write;one;two" {
				t.Errorf("streamed body %q", body)
			}
			ex.Close()

			// A body spilled to a file arrives as a descriptor.
			f, err := os.CreateTemp(t.TempDir(), "body")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.WriteString("the body from a file")
			var e wire.RequestEncoder
			e.Reset()
			e.AddString("REQUEST_METHOD", "PUT")
			e.AddString("PATH_INFO", "/upload")
			e.AddString("CONTENT_LENGTH", "20")
			ex, err = p.Do(Request{Frame: e.FinishWithFile(), BodyFile: f})
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, ex); !strings.HasSuffix(body, " the body from a file") {
				t.Errorf("body from a file: %q", body)
			}
			ex.Close()

			// A body in shared memory (a memfd longer than the body, as
			// berth's reused ones are) arrives as its first CONTENT_LENGTH
			// bytes, twice from the same file.
			fd, err := unix.MemfdCreate("body", unix.MFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			mf := os.NewFile(uintptr(fd), "shared-body")
			defer mf.Close()
			if _, err := mf.WriteAt([]byte("a stamp!"), 0); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ file, body string }{
				{"a shared body, and bytes past it", "a shared body"},
				{"another", "another"},
			} {
				if _, err := mf.WriteAt([]byte(c.file), wire.SharedBodyOffset); err != nil {
					t.Fatal(err)
				}
				e.Reset()
				e.AddString("REQUEST_METHOD", "PUT")
				e.AddString("PATH_INFO", "/upload")
				e.AddString("CONTENT_LENGTH", fmt.Sprint(len(c.body)))
				ex, err = p.Do(Request{Frame: e.FinishWithShared(), BodyFile: mf})
				if err != nil {
					t.Fatal(err)
				}
				if body := readAll(t, ex); !strings.HasSuffix(body, " "+c.body) || strings.Contains(body, "past") {
					t.Errorf("shared body: %q, want it to end in %q", body, " "+c.body)
				}
				ex.Close()
			}

			// A shared body's file larger than a worker keeps mapped
			// (64 MiB; sparse here) is read, not kept.
			fd, err = unix.MemfdCreate("big-body", unix.MFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			bf := os.NewFile(uintptr(fd), "big-shared-body")
			defer bf.Close()
			if err := bf.Truncate(wire.SharedBodyOffset + 65<<20); err != nil {
				t.Fatal(err)
			}
			bf.WriteAt([]byte("stamp..."), 0)
			bf.WriteAt([]byte("from a big file"), wire.SharedBodyOffset)
			e.Reset()
			e.AddString("REQUEST_METHOD", "PUT")
			e.AddString("PATH_INFO", "/upload")
			e.AddString("CONTENT_LENGTH", "15")
			ex, err = p.Do(Request{Frame: e.FinishWithShared(), BodyFile: bf})
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, ex); !strings.HasSuffix(body, " from a big file") {
				t.Errorf("shared body from a big file: %q", body)
			}
			ex.Close()
			if maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", ex.PID)); strings.Contains(string(maps), "memfd:big-body") {
				t.Error("the worker keeps a mapping of a 65 MiB body file")
			}

			// A body in the client's socket: its start in the frame, the
			// rest read from the socket, CONTENT_LENGTH bytes and no more
			// (a pipelined request after it stays for berth). One cut
			// short answers 500 with Connection: close.
			pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			conn, client := os.NewFile(uintptr(pair[0]), "conn"), os.NewFile(uintptr(pair[1]), "client")
			defer conn.Close()
			defer client.Close()
			start, rest := []byte("the start;"), bytes.Repeat([]byte("0123456789"), 10000)
			if _, err := client.Write(append(rest, "GET /next"...)); err != nil {
				t.Fatal(err)
			}
			e.Reset()
			e.AddString("REQUEST_METHOD", "PUT")
			e.AddString("PATH_INFO", "/upload")
			e.AddString("CONTENT_LENGTH", fmt.Sprint(len(start)+len(rest)))
			ex, err = p.Do(Request{Frame: e.FinishWithSocket(len(start)), Body: start, BodySocket: conn})
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, ex); !strings.HasSuffix(body, " "+string(start)+string(rest)) {
				t.Errorf("a body in the socket: %d bytes, want the %d of its start and rest", len(body), len(start)+len(rest))
			}
			ex.Close()
			next := make([]byte, 64)
			n, _ := conn.Read(next)
			if string(next[:n]) != "GET /next" {
				t.Errorf("the socket after its body holds %q, want the next request", next[:n])
			}
			client.Write([]byte("short"))
			client.Close()
			e.Reset()
			e.AddString("REQUEST_METHOD", "PUT")
			e.AddString("PATH_INFO", "/upload")
			e.AddString("CONTENT_LENGTH", fmt.Sprint(len(start)+100))
			ex, err = p.Do(Request{Frame: e.FinishWithSocket(len(start)), Body: start, BodySocket: conn})
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, ex)
			if ex.Head.Status != 500 || !strings.Contains(fmt.Sprint(headerMap(ex.Head)), "Connection:close") {
				t.Errorf("a body cut short in the socket: %d %v, want 500 with Connection: close", ex.Head.Status, headerMap(ex.Head))
			}
			ex.Close()

			// A big answer comes through the out ring.
			ex, err = p.Do(Request{Frame: request("GET", "/pattern", "100000,5"), Body: []byte("the body")})
			if err != nil {
				t.Fatal(err)
			}
			if !ex.outBody || string(ex.Head.Body) != string(patternOf(100000, 5)) {
				t.Errorf("a 100 kB answer: through the ring %v, %d bytes, as sent %v", ex.outBody, len(ex.Head.Body), string(ex.Head.Body) == string(patternOf(100000, 5)))
			}
			ex.Close()

			// wsgi.file_wrapper: a real file comes back as a descriptor
			// and offset, a BytesIO as body frames.
			for _, c := range []struct{ path, want string }{
				{"/file", "the file's bytes"},
				{"/bytesio", "not a real file"},
			} {
				ex, body := do(t, p, "GET", c.path, "")
				ex.Close()
				if body != c.want {
					t.Errorf("GET %s: %q, want %q", c.path, body, c.want)
				}
			}

			// Closing an endless response cancels it: the worker calls
			// close() and serves the next request.
			ex, err = p.Do(Request{Frame: request("GET", "/endless", "first"), Body: []byte("the body")})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := ex.Next(); err != nil {
					t.Fatal(err)
				}
			}
			ex.Close()
			ex, body = do(t, p, "GET", "/closed", "")
			ex.Close()
			if body != "first" {
				t.Errorf("close() calls after a cancel: %q, want first", body)
			}
			if st := p.Status(); st.Workers[0].PID != ex.PID {
				t.Errorf("the worker was replaced after a cancel: %+v", st.Workers)
			}
		})
	}
}

func headerMap(h wire.Head) []string {
	var out []string
	for _, x := range h.Headers {
		out = append(out, string(x.Name)+":"+string(x.Value))
	}
	return out
}

// TestStartFailure: a worker that cannot start fails Start with the reason.
func TestStartFailure(t *testing.T) {
	app := testApp("/nonexistent/python3", 2)
	err := NewPool(app, 1, journal.New(io.Discard, slog.LevelInfo)).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), `starting python "/nonexistent/python3"`) {
		t.Errorf("Start with a missing interpreter = %v", err)
	}
	app = testApp("/usr/bin/python3", 1)
	app.Module = "app:nothing"
	err = NewPool(app, 1, journal.New(io.Discard, slog.LevelInfo)).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "module 'app' has no attribute 'nothing'") {
		t.Errorf("Start with a missing callable = %v", err)
	}
}
