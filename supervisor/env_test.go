package supervisor

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/berthd/berth/units"
)

// TestWorkerEnv: a worker gets berth's malloc defaults unless berth's
// environment or the app's env set them; what the process sees is the
// last of each name.
func TestWorkerEnv(t *testing.T) {
	for _, tc := range []struct {
		name, outer, app, want string
	}{
		{"default", "", "", "8388608"},
		{"berth's environment", "1048576", "", "1048576"},
		{"the app's env", "1048576", "65536", "65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.outer != "" {
				t.Setenv("MALLOC_MMAP_THRESHOLD_", tc.outer)
			}
			app := units.App{}
			if tc.app != "" {
				app.Env = map[string]string{"MALLOC_MMAP_THRESHOLD_": tc.app}
			}
			cmd := exec.Command("sh", "-c", "echo $MALLOC_MMAP_THRESHOLD_ $MALLOC_TRIM_THRESHOLD_")
			cmd.Env = workerEnv(&app)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want+" 33554432" {
				t.Errorf("worker sees %q, want %q", got, tc.want+" 33554432")
			}
		})
	}
}
