package units

import (
	"strings"
	"testing"
)

// TestLimits: an app's limits block is decoded into Limits, and each bad
// value is an error at its own line naming what is wrong.
func TestLimits(t *testing.T) {
	const head = "listener \"http\" {\n  address = \"127.0.0.1:8000\"\n}\napp \"shop\" {\n  module = \"shop:app\"\n  workers = 2\n"
	// The block starts on line 7; its attributes on line 8.
	for _, tc := range []struct {
		name, body string
		want       Limits
		err        string // "" for none; else the summary and x.hcl:LINE
	}{
		{"none", "", Limits{}, ""},
		{"all", "limits {\n memory = \"512MiB\"\n memory_high = \"400MiB\"\n cpu_weight = 50\n tasks = 128\n}\n",
			Limits{Memory: 512 << 20, MemoryHigh: 400 << 20, CPUWeight: 50, Tasks: 128, At: "x.hcl:7"}, ""},
		{"memory only", "limits {\n memory = \"64MiB\"\n}\n", Limits{Memory: 64 << 20, At: "x.hcl:7"}, ""},
		{"bytes as a number", "limits {\n memory = 67108864\n}\n", Limits{Memory: 64 << 20, At: "x.hcl:7"}, ""},
		{"empty block", "limits {\n}\n", Limits{At: "x.hcl:7"}, ""},
		{"cpu_weight 0", "limits {\n cpu_weight = 0\n}\n", Limits{}, "Value out of range|x.hcl:8|from 1 to 10000"},
		{"cpu_weight too high", "limits {\n cpu_weight = 10001\n}\n", Limits{}, "Value out of range|x.hcl:8|from 1 to 10000"},
		{"cpu_weight a string", "limits {\n cpu_weight = \"high\"\n}\n", Limits{}, "Unsuitable value type|x.hcl:8"},
		{"memory not a size", "limits {\n memory = \"lots\"\n}\n", Limits{}, "Invalid size|x.hcl:8|\"lots\" is not a size"},
		{"memory too small", "limits {\n memory = \"1MiB\"\n}\n", Limits{}, "Value out of range|x.hcl:8"},
		{"memory_high above memory", "limits {\n memory = \"64MiB\"\n memory_high = \"128MiB\"\n}\n", Limits{}, "memory_high above memory|x.hcl:9"},
		{"tasks 0", "limits {\n tasks = 0\n}\n", Limits{}, "Value out of range|x.hcl:8"},
		{"tasks below the workers' threads", "limits {\n tasks = 5\n}\n", Limits{}, "tasks too low|x.hcl:8|need 6"},
		{"unknown attribute", "limits {\n memory_max = \"64MiB\"\n}\n", Limits{}, "Unsupported argument|x.hcl:8"},
		{"two blocks", "limits {\n}\nlimits {\n}\n", Limits{}, "Duplicate limits block|x.hcl:9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("x.hcl", []byte(head+tc.body+"}\n"))
			if tc.err != "" {
				if err == nil {
					t.Fatalf("no error, want %q", tc.err)
				}
				for _, part := range strings.Split(tc.err, "|") {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q lacks %q", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Apps[0].Limits; got != tc.want {
				t.Errorf("limits %+v, want %+v", got, tc.want)
			}
			if note := cfg.LimitsNote(); (note != "") != tc.want.Set() {
				t.Errorf("LimitsNote %q with limits %+v", note, tc.want)
			}
		})
	}
}
