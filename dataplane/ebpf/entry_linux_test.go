//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/recfork/recfork/dataplane"
)

// TestStreamEntryKeepsTheOtherPart checks that a fork and a relay sharing a
// stream entry are written and removed each without touching the other, and
// that the entry goes when neither is left.
func TestStreamEntryKeepsTheOtherPart(t *testing.T) {
	p := newProgEnv(t)
	e := &Engine{objs: p.objs, entries: make(map[rtpforkStreamKey]streamEntry)}
	k := keyOf(netip.MustParseAddrPort("10.0.0.1:20000"), dataplane.Inbound)
	read := func() rtpforkStreamValue {
		t.Helper()
		var v rtpforkStreamValue
		if err := p.objs.Streams.Lookup(&k, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	fork := rtpforkStreamValue{Slot: 3, Mode: uint8(dataplane.Active), Family: k.Family, Flags: flagResolved}
	must(e.putForkLocked(k, &fork))
	if v := read(); v.Slot != 3 || v.Flags != flagResolved|streamFlagFork || v.Relay != (rtpforkRelayValue{}) {
		t.Fatalf("fork alone: %+v", v)
	}
	relay := rtpforkRelayValue{Slot: 4, Family: k.Family, Flags: flagResolved, DstPort: 30000}
	must(e.putRelayLocked(k, &relay))
	v := read()
	if v.Slot != 3 || v.Flags&streamFlagFork == 0 || v.Relay.Slot != 4 || v.Relay.Flags != flagResolved|relayFlagOn || v.Relay.DstPort != 30000 {
		t.Fatalf("fork and relay: %+v", v)
	}
	// A mute rewrites the fork part; the relay part stays.
	muted := fork
	muted.Mode = uint8(dataplane.Inactive)
	must(e.putForkLocked(k, &muted))
	if v := read(); v.Mode != uint8(dataplane.Inactive) || v.Relay.Slot != 4 || v.Relay.Flags&relayFlagOn == 0 {
		t.Fatalf("muted: %+v", v)
	}
	// The engine keeps its own copies: the caller's values may change.
	muted.Slot, relay.Slot = 99, 99
	must(e.putRelayLocked(k, nil))
	if v := read(); v.Slot != 3 || v.Flags&streamFlagFork == 0 || v.Relay != (rtpforkRelayValue{}) {
		t.Fatalf("relay removed: %+v", v)
	}
	must(e.putRelayLocked(k, &relay))
	must(e.putForkLocked(k, nil))
	if v := read(); v.Flags&streamFlagFork != 0 || v.Relay.Slot != 99 || v.Relay.Flags&relayFlagOn == 0 {
		t.Fatalf("fork removed: %+v", v)
	}
	must(e.putRelayLocked(k, nil))
	var gone rtpforkStreamValue
	if err := p.objs.Streams.Lookup(&k, &gone); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("entry after both parts went: %v (%+v)", err, gone)
	}
	if len(e.entries) != 0 {
		t.Fatalf("engine still holds %d entries", len(e.entries))
	}
}

// TestTableSizes checks that the engine's slot allocator stops where the
// programs' counter arrays end.
func TestTableSizes(t *testing.T) {
	spec, err := loadRtpfork()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"counters", "relay_stats"} {
		if got := spec.Maps[name].MaxEntries; got != maxForks {
			t.Errorf("%s has %d entries, the engine allocates slots up to %d", name, got, maxForks)
		}
	}
}
