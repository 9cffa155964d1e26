package main

import (
	"context"
	"fmt"
	"io"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// unitState is what systemd says of the unit berth runs in.
type unitState struct {
	Unit          string `json:"unit"`
	ActiveState   string `json:"active_state"`
	SubState      string `json:"sub_state"`
	MainPID       uint32 `json:"main_pid"`
	NRestarts     uint32 `json:"n_restarts"`
	MemoryCurrent uint64 `json:"memory_current_bytes"`
	StatusText    string `json:"status_text"`
}

// systemdState asks systemd over D-Bus about unit. An error means no
// D-Bus or no such unit; berth status then shows its own figures only.
func systemdState(unit string) (*unitState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd over D-Bus: %w", err)
	}
	defer conn.Close()
	u, err := conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return nil, fmt.Errorf("reading unit %s: %w", unit, err)
	}
	s, err := conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return nil, fmt.Errorf("reading service %s: %w", unit, err)
	}
	st := &unitState{Unit: unit}
	st.ActiveState, _ = u["ActiveState"].(string)
	st.SubState, _ = u["SubState"].(string)
	st.MainPID, _ = s["MainPID"].(uint32)
	st.NRestarts, _ = s["NRestarts"].(uint32)
	st.MemoryCurrent, _ = s["MemoryCurrent"].(uint64)
	st.StatusText, _ = s["StatusText"].(string)
	return st, nil
}

func printUnitState(w io.Writer, st *unitState) {
	mem := "n/a"
	if st.MemoryCurrent != 0 && st.MemoryCurrent != ^uint64(0) {
		mem = fmt.Sprintf("%.1f MiB", float64(st.MemoryCurrent)/(1<<20))
	}
	fmt.Fprintf(w, "systemd: %s %s (%s), main pid %d, %d restart(s), memory %s\n", st.Unit, st.ActiveState, st.SubState, st.MainPID, st.NRestarts, mem)
	if st.StatusText != "" {
		fmt.Fprintf(w, "systemd status: %s\n", st.StatusText)
	}
}
