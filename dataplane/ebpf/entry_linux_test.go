//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/userspace"
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

// TestTableSizes checks the tables' capacities for a number of endpoints:
// the Media's port range bounds them, and the 16-bit port space does when
// Media says nothing.
func TestTableSizes(t *testing.T) {
	for _, c := range []struct {
		endpoints int
		want      tableSizes
	}{
		{5000, tableSizes{streams: 10000, latches: 10000, slots: 20000}},
		{1, tableSizes{streams: 2, latches: 2, slots: 4}},
		{0, tableSizes{streams: 2, latches: 2, slots: 4}},
		{1 << 20, tableSizes{streams: 65536, latches: 65536, slots: 131072}},
	} {
		if got := sizesFor(c.endpoints); got != c.want {
			t.Errorf("sizesFor(%d) = %+v, want %+v", c.endpoints, got, c.want)
		}
	}
	media, err := userspace.New(userspace.Config{PortRange: dataplane.PortRange{Min: 30001, Max: 30010}})
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	if n := mediaEndpoints(media); n != 4 {
		t.Errorf("a range of 30001-30010 holds %d endpoints, want 4 (30002-30009)", n)
	}
	if n := mediaEndpoints(nil); n != defaultEndpoints {
		t.Errorf("a media without a port range holds %d endpoints, want %d", n, defaultEndpoints)
	}
	spec, err := loadRtpfork()
	if err != nil {
		t.Fatal(err)
	}
	d := sizesFor(defaultEndpoints)
	for name, want := range map[string]uint32{"streams": d.streams, "latches": d.latches, "counters": d.slots, "relay_stats": d.slots} {
		if got := spec.Maps[name].MaxEntries; got != want {
			t.Errorf("rtpfork.c gives %s %d entries, the engine's default is %d", name, got, want)
		}
	}
	s := sizesFor(7)
	if err := s.size(spec); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"streams": 14, "latches": 14, "counters": 28, "relay_stats": 28} {
		if got := spec.Maps[name].MaxEntries; got != want {
			t.Errorf("%s sized to %d entries, want %d", name, got, want)
		}
	}
}
