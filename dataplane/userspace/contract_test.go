//go:build linux

package userspace

import (
	"net/netip"
	"testing"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
)

// testRange keeps this package's tests off the default range other packages'
// tests may use at the same time.
var testRange = dataplane.PortRange{Min: 41000, Max: 42999}

func newTestEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.PortRange == (dataplane.PortRange{}) {
		cfg.PortRange = testRange
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestContract(t *testing.T) {
	for _, tc := range []struct {
		name string
		ip   netip.Addr
		cfg  Config
	}{
		{"IPv4", netip.MustParseAddr("127.0.0.1"), Config{}},
		{"IPv4/GSORelays", netip.MustParseAddr("127.0.0.1"), Config{GSORelays: true}},
		{"IPv4/NoGSO", netip.MustParseAddr("127.0.0.1"), Config{DisableGSO: true}},
		{"IPv6", netip.MustParseAddr("::1"), Config{}},
		{"IPv6/GSORelays", netip.MustParseAddr("::1"), Config{GSORelays: true}},
		// Batches smaller than the suite's bursts, so partial batches and
		// early flushes are exercised.
		{"IPv4/SmallBatch", netip.MustParseAddr("127.0.0.1"), Config{Batch: 7, Workers: 3}},
		{"IPv6/SmallBatchGSORelays", netip.MustParseAddr("::1"), Config{Batch: 5, Workers: 1, GSORelays: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := dataplanetest.Harness{
				NewEngine: func(t *testing.T) dataplane.Engine { return newTestEngine(t, tc.cfg) },
				NewPolicyEngine: func(t *testing.T, p dataplane.LatchPolicy) dataplane.Engine {
					cfg := tc.cfg
					cfg.LatchPolicy = p
					return newTestEngine(t, cfg)
				},
				LocalIP: tc.ip,
				PeerIP:  tc.ip,
			}
			if tc.ip.Is4() {
				// All of 127/8 is on lo: 127.0.0.2 is another host to the
				// engine without any set-up. IPv6 has only ::1 there; the
				// eBPF engine's contract runs the foreign cases over IPv6.
				h.ForeignIP = netip.MustParseAddr("127.0.0.2")
			}
			dataplanetest.Run(t, h)
		})
	}
}
