package server

import (
	"os"
	"path"
	"strings"
)

// ownUnit is the systemd service berth runs in, from its cgroup, or "".
// `berth status` asks systemd about it over D-Bus.
func ownUnit() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		// cgroup v2 "0::/system.slice/x.service", v1 "1:name=systemd:/...".
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || (parts[0] != "0" && parts[1] != "name=systemd") {
			continue
		}
		for dir := parts[2]; dir != "/" && dir != "."; dir = path.Dir(dir) {
			if base := path.Base(dir); strings.HasSuffix(base, ".service") {
				return base
			}
		}
	}
	return ""
}
