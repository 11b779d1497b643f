//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/recfork/recfork/dataplane"
)

// defaultEndpoints sizes the kernel's tables when Media does not say how many
// endpoints it can hold: every RTP/RTCP pair of the 16-bit port space.
const defaultEndpoints = 32768

// porter is implemented by a Media that takes its endpoints' port pairs from
// one range (the userspace engine does): it never holds more endpoints than
// the range has pairs.
type porter interface {
	PortRange() dataplane.PortRange
}

// tableSizes are the capacities of the kernel's tables for a number of
// endpoints. The hash tables' bucket arrays and the per-CPU counter arrays
// are allocated whole when the programs load, so tables sized for the port
// range in use, rather than for every port, cost less memory (the counters
// take slots times the CPU count) and keep the buckets a packet's lookups
// touch on fewer pages.
type tableSizes struct {
	// streams: an inbound and an outbound entry per endpoint.
	streams uint32
	// latches: the RTP and the RTCP socket's guard entry per endpoint.
	latches uint32
	// slots index the fork and relay counter arrays: two forks and one
	// relay per endpoint, and room for as many again whose counters are
	// being settled after a removal (see settle).
	slots uint32
}

func sizesFor(endpoints int) tableSizes {
	n := uint32(max(1, min(endpoints, defaultEndpoints)))
	return tableSizes{streams: 2 * n, latches: 2 * n, slots: 4 * n}
}

// mediaEndpoints is how many endpoints Media can hold at once.
func mediaEndpoints(media dataplane.Engine) int {
	if p, ok := media.(porter); ok {
		if n := p.PortRange().Pairs(); n > 0 {
			return n
		}
	}
	return defaultEndpoints
}

// size sets the tables' capacities in the programs' collection spec.
func (s tableSizes) size(spec *ebpf.CollectionSpec) error {
	for name, n := range map[string]uint32{"streams": s.streams, "latches": s.latches, "counters": s.slots, "relay_stats": s.slots} {
		m, ok := spec.Maps[name]
		if !ok {
			return fmt.Errorf("size tables: no map %q in the programs", name)
		}
		m.MaxEntries = n
	}
	return nil
}
