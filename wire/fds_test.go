package wire

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

// TestWorkerFDs: worker.py opens its files where berth puts them
// (WorkerFDLayout), for any number of threads. worker_fds is Python's
// own reckoning, so it is run, not read.
func TestWorkerFDs(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 to run worker.py's worker_fds")
	}
	file := filepath.Join(t.TempDir(), "worker.py")
	if err := os.WriteFile(file, []byte(WorkerSource), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("worker", sys.argv[1])
w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
out = {}
for n in range(1, 9):
    lanes, log, marks, flush, out_fd = w.worker_fds(n)
    out[n] = {"Lanes": lanes, "Log": log, "Marks": marks, "Flush": flush, "Out": out_fd}
print(json.dumps(out))`
	b, err := exec.Command(python, "-c", script, file).Output()
	if err != nil {
		t.Fatalf("running worker_fds: %v", err)
	}
	var got map[int]WorkerFDs
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("worker_fds printed %s: %v", b, err)
	}
	for threads := 1; threads <= 8; threads++ {
		if want := WorkerFDLayout(threads); !reflect.DeepEqual(got[threads], want) {
			t.Errorf("%d threads: worker.py opens %+v, berth gives %+v", threads, got[threads], want)
		}
	}
}

// TestWorkerFDLayout: no two files share a number, and none is stdin,
// stdout or stderr.
func TestWorkerFDLayout(t *testing.T) {
	for threads := 1; threads <= 8; threads++ {
		l := WorkerFDLayout(threads)
		seen := map[int]bool{}
		for _, fd := range append(append([]int(nil), l.Lanes...), l.Log, l.Marks, l.Flush, l.Out) {
			if fd < 3 || seen[fd] {
				t.Errorf("%d threads: fd %d twice or below 3: %+v", threads, fd, l)
			}
			seen[fd] = true
		}
		if len(l.Lanes) != threads {
			t.Errorf("%d threads: %d lanes", threads, len(l.Lanes))
		}
	}
}
