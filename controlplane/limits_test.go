package controlplane_test

import (
	"testing"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
)

// TestFitCalls: the call limit never promises more calls than the port range
// or the descriptor limit can hold (issue 13: fds ran out at ~1,666 calls).
func TestFitCalls(t *testing.T) {
	wide := dataplane.PortRange{Min: 20000, Max: 59999}
	for _, tc := range []struct {
		name   string
		lim    controlplane.Limits
		ports  dataplane.PortRange
		nofile uint64
		want   int
	}{
		{"defaults fit", controlplane.Limits{}, wide, 65536, 1000},
		{"port range", controlplane.Limits{}, dataplane.PortRange{Min: 30000, Max: 30999}, 65536, 166},
		{"fd limit 20000", controlplane.Limits{MaxCalls: 5000}, wide, 20000, (20000 - 256 - 512 - 64) / controlplane.FDsPerCall},
		{"fd limit 1024", controlplane.Limits{}, wide, 1024, (1024 - 256 - 512 - 64) / controlplane.FDsPerCall},
		{"off stays off", controlplane.Limits{MaxCalls: -1}, wide, 1024, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := controlplane.FitCalls(tc.lim, tc.ports, tc.nofile); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}
