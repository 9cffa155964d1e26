package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// maxExposure is the most `systemd-analyze security` may rate a rendered
// service: nginx's Debian unit rates 9.6, uWSGI's app template 8.4.
const maxExposure = 2.0

// TestExposure rates the packaged template and the services `berth units`
// renders with systemd's own judge, systemd-analyze security, offline on
// the unit files (the ratings it gives loaded units are the same).
func TestExposure(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("TestExposure needs systemd-analyze (Debian's systemd)")
	}
	cfg, err := Load("testdata/valid.hcl")
	if err != nil {
		t.Fatal(err)
	}
	rendered := func(opt UnitOptions) string {
		opt.Name, opt.Berth, opt.Config = "shop", "/usr/bin/berth", "/etc/berth/shop.hcl"
		files, err := cfg.Units(opt)
		if err != nil {
			t.Fatal(err)
		}
		return files[len(files)-1].Content
	}
	for _, tc := range []struct {
		name, unit, content string
	}{
		{"template deb", "berth@.service", Template("/usr/bin/berth", PackageSocketGroups["deb"])[1].Content},
		{"template rpm", "berth@.service", Template("/usr/bin/berth", PackageSocketGroups["rpm"])[1].Content},
		{"berth units", "shop.service", rendered(UnitOptions{})},
		{"berth units --user", "shop.service", rendered(UnitOptions{User: "shop", Group: "shop"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := exposure(t, tc.unit, tc.content)
			t.Logf("%s: exposure %.1f", tc.name, got)
			if got > maxExposure {
				t.Errorf("%s: systemd-analyze security rates %s %.1f, want at most %.1f", tc.name, tc.unit, got, maxExposure)
			}
		})
	}
}

var overall = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure is systemd-analyze's overall exposure rating of a unit file.
func exposure(t *testing.T, name, content string) float64 {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// The exit status is the rating against --threshold; the number is
	// what counts.
	out, _ := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", path).CombinedOutput()
	m := overall.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security %s: no overall rating in\n%s", name, out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
