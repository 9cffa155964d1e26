package wire

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestBodyInput: worker.py's body_input reads each request-body route's
// body whole when given the flags berth's finishers put on the frame (so
// the two sides' choice of route agree), with the descriptor each route
// passes: none, a file, shared memory (the body at SharedBodyOffset), the
// client's socket (the body's start in the frame, the rest queued there).
func TestBodyInput(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 to run worker.py's body_input")
	}
	file := filepath.Join(t.TempDir(), "worker.py")
	if err := os.WriteFile(file, []byte(WorkerSource), 0o644); err != nil {
		t.Fatal(err)
	}
	flag := func(finish func(*RequestEncoder) []byte) uint8 {
		var e RequestEncoder
		e.Reset()
		return finish(&e)[5]
	}
	flags := map[string]uint8{
		"frame":  flag(func(e *RequestEncoder) []byte { return e.Finish(0) }),
		"file":   flag((*RequestEncoder).FinishWithFile),
		"shared": flag((*RequestEncoder).FinishWithShared),
		"socket": flag(func(e *RequestEncoder) []byte { return e.FinishWithSocket(0) }),
	}
	arg, _ := json.Marshal(flags)
	script := `import collections, importlib.util, io, json, os, socket, sys, tempfile
spec = importlib.util.spec_from_file_location("worker", sys.argv[1])
w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
flags = json.loads(sys.argv[2])
body = b"0123456789abcdef" * 4096
def file_with(data, at):
    f = tempfile.TemporaryFile()
    f.write(os.urandom(at) + data)
    fd = os.dup(f.fileno())
    f.close()
    return fd
a, b = socket.socketpair()
a.sendall(body[100:])
routes = {
    "frame": (body, []),
    "file": (b"", [file_with(body, 0)]),
    "shared": (b"", [file_with(body, int(sys.argv[3]))]),
    "socket": (body[:100], [os.dup(b.fileno())]),
}
out = {}
for name, (start, fds) in routes.items():
    inp, fault = w.body_input(flags[name], memoryview(start), str(len(body)), collections.deque(fds))
    out[name] = "fault %r" % fault if fault else ("whole" if inp.read() == body else "wrong")
print(json.dumps(out))`
	b, err := exec.Command(python, "-c", script, file, string(arg), strconv.Itoa(SharedBodyOffset)).Output()
	if err != nil {
		t.Fatalf("running body_input: %v", err)
	}
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("body_input printed %s: %v", b, err)
	}
	for name := range flags {
		if got[name] != "whole" {
			t.Errorf("the %s route (flags %#x): the app's input has the body %s", name, flags[name], got[name])
		}
	}
}
