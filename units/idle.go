package units

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// MinIdleExit is the shortest idle_exit: below a second a site would
// exit between the requests of one page.
const MinIdleExit = time.Second

// idleExit decodes the top-level idle_exit: a site that has served no
// request and held no client connection for this long exits cleanly, and
// systemd starts it again on the next connection to its socket (which
// the kernel queues meanwhile), so an idle site costs no memory.
func (d *decoder) idleExit(attr *hcl.Attribute) time.Duration {
	if attr == nil {
		return 0
	}
	v := d.duration(attr.Expr, 0)
	if v != 0 && v < MinIdleExit {
		d.errorf(&attr.Range, "idle_exit too short", "idle_exit is at least %s (leave it out for never); got %s.", MinIdleExit, v)
	}
	return v
}

// IdleExitNote is what `berth check` says of idle_exit: it only works
// where systemd owns the sockets, which a configuration cannot show.
func (c *Config) IdleExitNote() string {
	if c.IdleExit == 0 {
		return ""
	}
	return "idle_exit = \"" + c.IdleExit.String() + "\" applies only when systemd passes every listener's socket (the units `berth units` renders): berth started otherwise keeps running, since nothing would start it again"
}
