package units

import "time"

// AdminSocketName is the admin listener's socket name: under systemd, the
// FileDescriptorName= of a socket unit whose socket berth takes for the
// admin block instead of binding its address. No listener may take the
// name. Not "admin": that is a likely name for an app's own listener (a
// back office served apart), which the site's users may reach.
const AdminSocketName = "berth-admin"

// DrainDelay is how long a stop keeps serving with readiness failing
// before it stops accepting: the admin block's drain_delay, or 0 without
// an admin block (nothing polls readiness then).
func (c *Config) DrainDelay() time.Duration {
	if c.Admin == nil {
		return 0
	}
	return c.Admin.DrainDelay
}

// Access record formats (the log block's access_format).
const (
	AccessFields   = "fields"
	AccessCombined = "combined"
)

// MetricsOn reports whether berth counts its per-request series: yes
// unless the admin block says metrics = false. Without an admin block
// they are still counted, for `berth status`.
func (c *Config) MetricsOn() bool {
	return c.Admin == nil || c.Admin.Metrics
}
