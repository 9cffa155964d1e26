package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/berthd/berth/internal/e2e"
)

// TestSystemdStatic runs a site with two static directories under the
// units `berth units` renders, hardening and all, in a real systemd: one
// in /srv (readable under ProtectSystem=strict as it is) and one in
// /var/tmp, which PrivateTmp= hides unless the unit binds it back in.
func TestSystemdStatic(t *testing.T) {
	t.Parallel()
	c := e2e.BootContainer(t)
	port := e2e.FreePort(t)
	c.Write("/srv/berth-static/static/site.css", "srv css\n")
	c.Write("/var/tmp/berth-static/files/tmp.txt", "tmp txt\n")
	c.Write("/etc/berth/st.hcl", fmt.Sprintf(`
listener "http" {
  address = "127.0.0.1:%d"
}
app "shop" {
  module  = "app:app"
  python  = "/usr/bin/python3"
  chdir   = "/srv/berth-test"
  workers = 1
  env     = { PYTHONDONTWRITEBYTECODE = "1" }
  static "/static" {
    dir = "/srv/berth-static/static"
  }
  static "/files" {
    dir = "/var/tmp/berth-static/files"
  }
}
`, port))
	c.Must("/usr/local/bin/berth", "units", "--name", "st", "--berth", "/usr/local/bin/berth", "--dir", "/etc/systemd/system", "/etc/berth/st.hcl")
	if unit := readFile(c.Root + "/etc/systemd/system/st.service"); !strings.Contains(unit, "BindReadOnlyPaths=/var/tmp/berth-static/files\n") {
		t.Errorf("st.service does not bind the directory in /var/tmp:\n%s", unit)
	}
	c.Must("systemctl", "daemon-reload")
	c.Must("systemctl", "enable", "--now", "st.socket")
	s := &e2e.Site{C: c, Name: "st", Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	for path, want := range map[string]string{"/static/site.css": "srv css\n", "/files/tmp.txt": "tmp txt\n"} {
		code, body, err := s.Get(path)
		if err != nil || code != 200 || body != want {
			out, _ := c.Exec("journalctl", "-u", "st.service", "--no-pager", "-n", "30")
			t.Errorf("GET %s under systemd = %d %q %v, want 200 %q\n%s", path, code, body, err, want, out)
		}
	}
	if p := c.Prop("st.service", "ProtectSystem"); p != "strict" {
		t.Errorf("st.service ProtectSystem = %q, want strict", p)
	}
}
