//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/internal/testenv"
)

// tcxNext is TCX_NEXT (-1) as BPF_PROG_TEST_RUN reports it.
const tcxNext = 0xffffffff

// skbContext is struct __sk_buff as BPF_PROG_TEST_RUN takes it: only a few
// fields may be set (mark, gso_size, ...), the rest must be zero.
type skbContext [48]uint32

const (
	ctxMark    = 8 / 4
	ctxGSOSize = 176 / 4
)

var (
	recMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x09}
	outMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	peerMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	ourMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x02}
)

// progEnv holds loaded programs, a veth pair inside a fresh namespace whose A
// end is the copies' egress interface, and a packet socket on the B end that
// sees every copy.
type progEnv struct {
	ns      *testenv.Netns
	objs    rtpforkObjects
	ifindex int
	capFD   int
	ncpu    int
	slots   uint32
}

func newProgEnv(t testing.TB) *progEnv {
	t.Helper()
	ns := testenv.NewNetns(t)
	veth := testenv.NewVeth(t, ns, ns, "", "")
	p := &progEnv{ns: ns, capFD: -1}
	ns.MustDo(t, func() error {
		if err := loadRtpforkObjects(&p.objs, nil); err != nil {
			return err
		}
		a, err := net.InterfaceByName(veth.AName)
		if err != nil {
			return err
		}
		b, err := net.InterfaceByName(veth.BName)
		if err != nil {
			return err
		}
		p.ifindex = a.Index
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		p.capFD = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: b.Index}); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(5 * time.Second))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	t.Cleanup(func() {
		if p.capFD >= 0 {
			unix.Close(p.capFD)
		}
		p.objs.Close()
	})
	p.ncpu = ebpf.MustPossibleCPU()
	return p
}

// addStream writes the fork part of a stream entry (keeping its relay part)
// and returns its counter slot.
func (p *progEnv) addStream(t testing.TB, local netip.AddrPort, dir dataplane.Direction, mode dataplane.Mode, rec, src netip.AddrPort) uint32 {
	t.Helper()
	slot := p.slots
	p.slots++
	k := keyOf(local, dir)
	var old rtpforkStreamValue
	_ = p.objs.Streams.Lookup(&k, &old)
	v := rtpforkStreamValue{Slot: slot, Ifindex: uint32(p.ifindex), Mode: uint8(mode), Family: k.Family, Flags: flagResolved | streamFlagFork,
		RecPort: rec.Port(), SrcPort: src.Port(), DstMac: recMAC, SrcMac: outMAC, Relay: old.Relay}
	copy(v.RecAddr[:], rec.Addr().AsSlice())
	copy(v.SrcAddr[:], src.Addr().AsSlice())
	if err := p.objs.Counters.Put(slot, make([]rtpforkForkCounters, p.ncpu)); err != nil {
		t.Fatal(err)
	}
	if err := p.objs.Streams.Put(&k, &v); err != nil {
		t.Fatal(err)
	}
	return slot
}

func (p *progEnv) run(t *testing.T, prog *ebpf.Program, frame []byte, ctx *skbContext) {
	t.Helper()
	out := make([]byte, len(frame)+512)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out}
	if ctx != nil {
		opts.Context = ctx
	}
	var ret uint32
	p.ns.MustDo(t, func() (err error) {
		// Test runs use the calling thread's namespace: clone_redirect
		// finds the veth by its ifindex there.
		ret, err = prog.Run(opts)
		return err
	})
	if ret != tcxNext {
		t.Fatalf("program returned %#x, want TCX_NEXT", ret)
	}
	if !bytes.Equal(opts.DataOut, frame) {
		t.Fatalf("original changed:\n got % x\nwant % x", opts.DataOut, frame)
	}
}

// nextCopy returns the next frame the programs sent to the recorder.
func (p *progEnv) nextCopy(t *testing.T) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(p.capFD, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("no copy captured: %v", err)
		}
		if n >= 12 && [6]byte(buf[6:12]) == outMAC {
			return append([]byte(nil), buf[:n]...)
		}
	}
}

func (p *progEnv) counters(t *testing.T, slot uint32) rtpforkForkCounters {
	t.Helper()
	var per []rtpforkForkCounters
	if err := p.objs.Counters.Lookup(slot, &per); err != nil {
		t.Fatal(err)
	}
	var c rtpforkForkCounters
	for _, x := range per {
		c.CopiedPackets += x.CopiedPackets
		c.CopiedBytes += x.CopiedBytes
		c.MutedPackets += x.MutedPackets
		c.MutedBytes += x.MutedBytes
		c.FailedPackets += x.FailedPackets
	}
	return c
}

func (p *progEnv) stats(t *testing.T) [statMax]uint64 {
	t.Helper()
	var r [statMax]uint64
	for i := range r {
		var per []uint64
		if err := p.objs.Stats.Lookup(uint32(i), &per); err != nil {
			t.Fatal(err)
		}
		for _, v := range per {
			r[i] += v
		}
	}
	return r
}

// Stat indexes, in sync with enum stat_reason in bpf/rtpfork.h.
const (
	statMiss = iota
	statNotIP
	statNotUDP
	statShort
	statFragment
	statIPOptions
	statGSO
	statLooped
	statNotRTP
	statVLAN
	statForeign
	statGSOEgress
	statRelayed
)

func TestProgramRun(t *testing.T) {
	p := newProgEnv(t)
	ap := netip.MustParseAddrPort
	var (
		remote4   = ap("192.0.2.7:40000")
		local4    = ap("10.0.0.1:20000")
		muted4    = ap("10.0.0.1:20002")
		out4      = ap("10.0.0.1:20004")
		rec4      = ap("10.9.0.9:30001") // odd on purpose: RTCP goes to 30002
		srcLocal4 = ap("10.0.0.1:20010")
		remote6   = ap("[2001:db8::7]:40000")
		local6    = ap("[fd00::1]:20000")
		rec6      = ap("[fd09::9]:30000")
		src6      = ap("[fd00::1]:20010")
	)
	slotIn4 := p.addStream(t, local4, dataplane.Inbound, dataplane.Active, rec4, srcLocal4)
	slotMuted := p.addStream(t, muted4, dataplane.Inbound, dataplane.Inactive, rec4, srcLocal4)
	slotOut4 := p.addStream(t, out4, dataplane.Outbound, dataplane.Active, rec4, srcLocal4)
	slotIn6 := p.addStream(t, local6, dataplane.Inbound, dataplane.Active, rec6, src6)
	// A stream whose endpoint accepts remote4 only (signalled, no latch).
	filtered4 := ap("10.0.0.1:20008")
	slotFiltered := p.addStream(t, filtered4, dataplane.Inbound, dataplane.Active, rec4, srcLocal4)
	{
		k := keyOf(filtered4, dataplane.Inbound)
		var v rtpforkStreamValue
		if err := p.objs.Streams.Lookup(&k, &v); err != nil {
			t.Fatal(err)
		}
		(&endpoint{remote: remote4}).applyRemote(&v)
		if err := p.objs.Streams.Put(&k, &v); err != nil {
			t.Fatal(err)
		}
	}

	rtcpOf := func(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), a.Port()+1) }
	in := func(src, dst netip.AddrPort, payload []byte) frameSpec {
		return frameSpec{srcMAC: peerMAC, dstMAC: ourMAC, src: src, dst: dst, payload: payload}
	}
	rtp := rtpPayload(7, 160)
	stun := append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)
	with := func(f frameSpec, mod func(*frameSpec)) frameSpec { mod(&f); return f }

	cases := []struct {
		name   string
		egress bool
		frame  frameSpec
		ctx    *skbContext
		// copyTo is the expected copy's source and destination; zero
		// means no copy.
		copySrc, copyDst netip.AddrPort
		slot             uint32
		copied, muted    uint64
		stat             int // -1: none
	}{
		{name: "active IPv4 RTP", frame: in(remote4, local4, rtp), copySrc: srcLocal4, copyDst: rec4, slot: slotIn4, copied: 1, stat: -1},
		{name: "active IPv4 RTCP", frame: in(rtcpOf(remote4), rtcpOf(local4), rtcpPayload()), copySrc: rtcpOf(srcLocal4), copyDst: rtcpOf(rec4), slot: slotIn4, copied: 1, stat: -1},
		{name: "active IPv4 without UDP checksum", frame: with(in(remote4, local4, rtp), func(f *frameSpec) { f.zeroCsum = true }), copySrc: srcLocal4, copyDst: rec4, slot: slotIn4, copied: 1, stat: -1},
		{name: "active IPv6 RTP", frame: in(remote6, local6, rtp), copySrc: src6, copyDst: rec6, slot: slotIn6, copied: 1, stat: -1},
		{name: "active IPv6 RTCP", frame: in(rtcpOf(remote6), rtcpOf(local6), rtcpPayload()), copySrc: rtcpOf(src6), copyDst: rtcpOf(rec6), slot: slotIn6, copied: 1, stat: -1},
		{name: "outbound on egress", egress: true, frame: frameSpec{srcMAC: ourMAC, dstMAC: peerMAC, src: out4, dst: remote4, payload: rtp}, copySrc: srcLocal4, copyDst: rec4, slot: slotOut4, copied: 1, stat: -1},
		{name: "outbound stream not matched on ingress", frame: in(remote4, out4, rtp), slot: slotOut4, stat: statMiss},
		{name: "inbound stream not matched on egress", egress: true, frame: frameSpec{srcMAC: ourMAC, dstMAC: peerMAC, src: local4, dst: remote4, payload: rtp}, slot: slotIn4, stat: statMiss},
		{name: "inactive", frame: in(remote4, muted4, rtp), slot: slotMuted, muted: 1, stat: -1},
		{name: "from the accepted remote", frame: in(remote4, filtered4, rtp), copySrc: srcLocal4, copyDst: rec4, slot: slotFiltered, copied: 1, stat: -1},
		{name: "RTCP from the accepted remote", frame: in(rtcpOf(remote4), rtcpOf(filtered4), rtcpPayload()), copySrc: rtcpOf(srcLocal4), copyDst: rtcpOf(rec4), slot: slotFiltered, copied: 1, stat: -1},
		{name: "from another host", frame: in(ap("192.0.2.8:40000"), filtered4, rtp), slot: slotFiltered, stat: statForeign},
		{name: "from another port", frame: in(ap("192.0.2.7:40002"), filtered4, rtp), slot: slotFiltered, stat: statForeign},
		{name: "RTCP from the RTP port", frame: in(remote4, rtcpOf(filtered4), rtcpPayload()), slot: slotFiltered, stat: statForeign},
		{name: "inactive RTCP", frame: in(rtcpOf(remote4), rtcpOf(muted4), rtcpPayload()), slot: slotMuted, muted: 1, stat: -1},
		{name: "miss", frame: in(remote4, ap("10.0.0.1:20006"), rtp), slot: slotIn4, stat: statMiss},
		{name: "miss on odd port", frame: in(remote4, ap("10.0.0.1:20007"), rtp), slot: slotIn4, stat: statMiss},
		{name: "RTP on the RTCP port", frame: in(rtcpOf(remote4), rtcpOf(local4), rtp), slot: slotIn4, stat: statNotRTP},
		{name: "STUN", frame: in(remote4, local4, stun), slot: slotIn4, stat: statNotRTP},
		{name: "fragment", frame: with(in(remote4, local4, rtp), func(f *frameSpec) { f.fragOff = 0x2000 }), slot: slotIn4, stat: statFragment},
		{name: "later fragment", frame: with(in(remote4, local4, rtp), func(f *frameSpec) { f.fragOff = 0x0010 }), slot: slotIn4, stat: statFragment},
		{name: "IP options", frame: with(in(remote4, local4, rtp), func(f *frameSpec) { f.ihl = 6 }), slot: slotIn4, stat: statIPOptions},
		{name: "TCP", frame: with(in(remote4, local4, rtp), func(f *frameSpec) { f.proto = 6 }), slot: slotIn4, stat: statNotUDP},
		{name: "IPv6 extension header", frame: with(in(remote6, local6, rtp), func(f *frameSpec) { f.proto = 60 /* destination options */ }), slot: slotIn6, stat: statNotUDP},
		{name: "truncated UDP header", frame: with(in(remote4, local4, nil), func(f *frameSpec) { f.truncate = 4 }), slot: slotIn4, stat: statShort},
		{name: "truncated payload", frame: with(in(remote4, local4, rtp), func(f *frameSpec) { f.truncate = 20 }), slot: slotIn4, stat: statShort},
		{name: "GSO", frame: in(remote4, local4, rtp), ctx: func() *skbContext { var c skbContext; c[ctxGSOSize] = 1400; return &c }(), slot: slotIn4, stat: statGSO},
		{name: "own copy", frame: in(remote4, local4, rtp), ctx: func() *skbContext { var c skbContext; c[ctxMark] = 0x52464b31; return &c }(), slot: slotIn4, stat: statLooped},
	}
	fence := in(remote4, local4, rtpPayload(999, 20))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prog := p.objs.RtpforkIngress
			if tc.egress {
				prog = p.objs.RtpforkEgress
			}
			before, beforeStats := p.counters(t, tc.slot), p.stats(t)
			frame := buildFrame(tc.frame)
			p.run(t, prog, frame, tc.ctx)
			after, afterStats := p.counters(t, tc.slot), p.stats(t)

			if tc.copyDst.IsValid() {
				want := tc.frame
				want.srcMAC, want.dstMAC, want.src, want.dst = outMAC, recMAC, tc.copySrc, tc.copyDst
				got := p.nextCopy(t)
				if wantB := buildFrame(want); !bytes.Equal(got, wantB) {
					t.Fatalf("copy differs:\n got % x\nwant % x", got, wantB)
				}
				if _, err := parseFrame(got); err != nil {
					t.Fatalf("copy: %v", err)
				}
			}
			payload := uint64(len(tc.frame.payload))
			if d := after.CopiedPackets - before.CopiedPackets; d != tc.copied {
				t.Errorf("copied packets +%d, want +%d", d, tc.copied)
			}
			if d := after.CopiedBytes - before.CopiedBytes; d != tc.copied*payload {
				t.Errorf("copied bytes +%d, want +%d", d, tc.copied*payload)
			}
			if d := after.MutedPackets - before.MutedPackets; d != tc.muted {
				t.Errorf("muted packets +%d, want +%d", d, tc.muted)
			}
			if d := after.MutedBytes - before.MutedBytes; d != tc.muted*payload {
				t.Errorf("muted bytes +%d, want +%d", d, tc.muted*payload)
			}
			for i := range afterStats {
				want := uint64(0)
				if i == tc.stat {
					want = 1
				}
				if d := afterStats[i] - beforeStats[i]; d != want {
					t.Errorf("stat %d +%d, want +%d", i, d, want)
				}
			}
			// Fence: the next copy on the wire must be the fence's, so
			// the case sent no copy beyond the one checked above.
			p.run(t, p.objs.RtpforkIngress, buildFrame(fence), nil)
			got, err := parseFrame(p.nextCopy(t))
			if err != nil {
				t.Fatalf("fence copy: %v", err)
			}
			if seq := binary.BigEndian.Uint16(got.payload[2:]); seq != 999 || got.dst != rec4 {
				t.Fatalf("after the case the recorder got seq %d to %s, want the fence (999 to %s)", seq, got.dst, rec4)
			}
		})
	}
}

// TestProgramRunUnresolved: an active fork whose next hop is unknown copies
// nothing and counts the packet as failed.
func TestProgramRunUnresolved(t *testing.T) {
	p := newProgEnv(t)
	local := netip.MustParseAddrPort("10.0.0.1:20000")
	slot := p.addStream(t, local, dataplane.Inbound, dataplane.Active, netip.MustParseAddrPort("10.9.0.9:30000"), netip.MustParseAddrPort("10.0.0.1:20010"))
	k := keyOf(local, dataplane.Inbound)
	var v rtpforkStreamValue
	if err := p.objs.Streams.Lookup(&k, &v); err != nil {
		t.Fatal(err)
	}
	v.Flags &^= flagResolved
	if err := p.objs.Streams.Put(&k, &v); err != nil {
		t.Fatal(err)
	}
	p.run(t, p.objs.RtpforkIngress, buildFrame(frameSpec{srcMAC: peerMAC, dstMAC: ourMAC,
		src: netip.MustParseAddrPort("192.0.2.7:40000"), dst: local, payload: rtpPayload(1, 20)}), nil)
	if c := p.counters(t, slot); c.FailedPackets != 1 || c.CopiedPackets != 0 {
		t.Fatalf("counters %+v, want one failed and no copy", c)
	}
}

// addRelay writes the relay part of local's inbound stream entry (keeping
// its fork part): what comes in to local leaves from otherLocal towards
// otherRemote via the veth's A end.
func (p *progEnv) addRelay(t testing.TB, local, otherLocal, otherRemote netip.AddrPort, flags uint8) uint32 {
	t.Helper()
	slot := p.slots
	p.slots++
	k := keyOf(local, dataplane.Inbound)
	v := rtpforkRelayValue{Slot: slot, Ifindex: uint32(p.ifindex), Family: k.Family, Flags: flags | relayFlagOn,
		SrcPort: otherLocal.Port(), DstPort: otherRemote.Port(), DstMac: relayMAC, SrcMac: ourMAC}
	copy(v.SrcAddr[:], otherLocal.Addr().AsSlice())
	copy(v.DstAddr[:], otherRemote.Addr().AsSlice())
	if err := p.objs.RelayStats.Put(slot, make([]rtpforkRelayCounters, p.ncpu)); err != nil {
		t.Fatal(err)
	}
	p.putRelay(t, k, v)
	return slot
}

// putRelay sets the relay part of k's stream entry, creating the entry
// (without a fork) if there is none.
func (p *progEnv) putRelay(t testing.TB, k rtpforkStreamKey, r rtpforkRelayValue) {
	t.Helper()
	var v rtpforkStreamValue
	_ = p.objs.Streams.Lookup(&k, &v)
	v.Relay = r
	if err := p.objs.Streams.Put(&k, &v); err != nil {
		t.Fatal(err)
	}
}

// relayFrom makes the relay of local accept remote only.
func (p *progEnv) relayFrom(t testing.TB, local, remote netip.AddrPort) {
	t.Helper()
	k := keyOf(local, dataplane.Inbound)
	var sv rtpforkStreamValue
	if err := p.objs.Streams.Lookup(&k, &sv); err != nil {
		t.Fatal(err)
	}
	v := sv.Relay
	v.Flags |= 2 // RELAY_F_REMOTE
	copy(v.RemAddr[:], remote.Addr().AsSlice())
	v.RemPort = remote.Port()
	p.putRelay(t, k, v)
}

func (p *progEnv) relayCounters(t *testing.T, slot uint32) rtpforkRelayCounters {
	t.Helper()
	var per []rtpforkRelayCounters
	if err := p.objs.RelayStats.Lookup(slot, &per); err != nil {
		t.Fatal(err)
	}
	var c rtpforkRelayCounters
	for _, x := range per {
		c.RelayedPackets += x.RelayedPackets
		c.RelayedBytes += x.RelayedBytes
		c.FailedPackets += x.FailedPackets
	}
	return c
}

// relayMAC is the next hop towards the other leg's remote.
var relayMAC = [6]byte{0x02, 0, 0, 0, 0, 0x0b}

// tcxRedirect is TCX_REDIRECT (TC_ACT_REDIRECT), what bpf_redirect returns.
const tcxRedirect = 7

// TestProgramRelay runs the ingress program on packets of joined endpoints:
// a relayed packet comes out of the test run rewritten to the other leg
// (byte for byte, checksums recomputed from scratch by buildFrame) with
// TCX_REDIRECT, and the forks of both directions it feeds, this leg's
// inbound and the other leg's outbound, each send exactly one copy. A test
// run does not perform the redirect, so the only frames on the wire are the
// copies.
func TestProgramRelay(t *testing.T) {
	p := newProgEnv(t)
	ap := netip.MustParseAddrPort
	var (
		remoteA4 = ap("192.0.2.7:40000")
		localA4  = ap("10.0.0.1:20000")
		localB4  = ap("10.0.0.1:20020")
		remoteB4 = ap("192.0.2.9:42000")
		echo4    = ap("10.0.0.1:20040") // joined to itself
		unres4   = ap("10.0.0.1:20060") // relay without a next hop
		rec4     = ap("10.9.0.9:30000")
		srcIn4   = ap("10.0.0.1:30010")
		srcOut4  = ap("10.0.0.1:30020")
		remoteA6 = ap("[2001:db8::7]:40000")
		localA6  = ap("[fd00::1]:20000")
		localB6  = ap("[fd00::1]:20020")
		remoteB6 = ap("[2001:db8::9]:42000")
		rec6     = ap("[fd09::9]:30000")
		srcIn6   = ap("[fd00::1]:30010")
		srcOut6  = ap("[fd00::1]:30020")
	)
	slotInA4 := p.addStream(t, localA4, dataplane.Inbound, dataplane.Active, rec4, srcIn4)
	slotOutB4 := p.addStream(t, localB4, dataplane.Outbound, dataplane.Active, rec4, srcOut4)
	relayA4 := p.addRelay(t, localA4, localB4, remoteB4, flagResolved)
	slotInE := p.addStream(t, echo4, dataplane.Inbound, dataplane.Active, rec4, srcIn4)
	slotOutE := p.addStream(t, echo4, dataplane.Outbound, dataplane.Inactive, rec4, srcOut4)
	relayE := p.addRelay(t, echo4, echo4, remoteA4, flagResolved)
	relayU := p.addRelay(t, unres4, localB4, remoteB4, 0)
	// A signalled remote without latching: the inbound fork and the relay
	// both accept remoteA4 only, as the engine writes them.
	p.relayFrom(t, localA4, remoteA4)
	{
		k := keyOf(localA4, dataplane.Inbound)
		var v rtpforkStreamValue
		if err := p.objs.Streams.Lookup(&k, &v); err != nil {
			t.Fatal(err)
		}
		(&endpoint{remote: remoteA4}).applyRemote(&v)
		if err := p.objs.Streams.Put(&k, &v); err != nil {
			t.Fatal(err)
		}
	}
	slotInA6 := p.addStream(t, localA6, dataplane.Inbound, dataplane.Active, rec6, srcIn6)
	slotOutB6 := p.addStream(t, localB6, dataplane.Outbound, dataplane.Active, rec6, srcOut6)
	relayA6 := p.addRelay(t, localA6, localB6, remoteB6, flagResolved)

	rtcpOf := func(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), a.Port()+1) }
	in := func(src, dst netip.AddrPort, payload []byte) frameSpec {
		return frameSpec{srcMAC: peerMAC, dstMAC: ourMAC, src: src, dst: dst, payload: payload}
	}
	rtp := rtpPayload(11, 160)
	stun := append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)
	type copyWant struct{ src, dst netip.AddrPort }
	cases := []struct {
		name          string
		frame         frameSpec
		relaySrc      netip.AddrPort // zero: passed on untouched
		relayDst      netip.AddrPort
		relay         uint32
		relayed       uint64
		failed        uint64
		copies        []copyWant // in the order the program makes them
		inSlot        uint32
		outSlot       uint32
		inCopied      uint64
		outCopied     uint64
		outMuted      uint64
		statRelayedOK uint64
		foreign       uint64
	}{
		{name: "IPv4 RTP", frame: in(remoteA4, localA4, rtp), relaySrc: localB4, relayDst: remoteB4, relay: relayA4, relayed: 1,
			copies: []copyWant{{srcIn4, rec4}, {srcOut4, rec4}}, inSlot: slotInA4, outSlot: slotOutB4, inCopied: 1, outCopied: 1, statRelayedOK: 1},
		{name: "IPv4 RTCP follows RTP", frame: in(rtcpOf(remoteA4), rtcpOf(localA4), rtcpPayload()), relaySrc: rtcpOf(localB4), relayDst: rtcpOf(remoteB4), relay: relayA4, relayed: 1,
			copies: []copyWant{{rtcpOf(srcIn4), rtcpOf(rec4)}, {rtcpOf(srcOut4), rtcpOf(rec4)}}, inSlot: slotInA4, outSlot: slotOutB4, inCopied: 1, outCopied: 1, statRelayedOK: 1},
		{name: "IPv6 RTP", frame: in(remoteA6, localA6, rtp), relaySrc: localB6, relayDst: remoteB6, relay: relayA6, relayed: 1,
			copies: []copyWant{{srcIn6, rec6}, {srcOut6, rec6}}, inSlot: slotInA6, outSlot: slotOutB6, inCopied: 1, outCopied: 1, statRelayedOK: 1},
		{name: "echo with a muted outbound fork", frame: in(remoteA4, echo4, rtp), relaySrc: echo4, relayDst: remoteA4, relay: relayE, relayed: 1,
			copies: []copyWant{{srcIn4, rec4}}, inSlot: slotInE, outSlot: slotOutE, inCopied: 1, outMuted: 1, statRelayedOK: 1},
		{name: "from another host goes to the socket", frame: in(ap("192.0.2.8:40000"), localA4, rtp), relay: relayA4, inSlot: slotInA4, outSlot: slotOutB4, foreign: 1},
		{name: "from another port goes to the socket", frame: in(ap("192.0.2.7:40002"), localA4, rtp), relay: relayA4, inSlot: slotInA4, outSlot: slotOutB4, foreign: 1},
		{name: "RTCP from the RTP port goes to the socket", frame: in(remoteA4, rtcpOf(localA4), rtcpPayload()), relay: relayA4, inSlot: slotInA4, outSlot: slotOutB4, foreign: 1},
		{name: "STUN goes to the socket", frame: in(remoteA4, localA4, stun), relay: relayA4, inSlot: slotInA4, outSlot: slotOutB4},
		{name: "unresolved next hop goes to the socket", frame: in(remoteA4, unres4, rtp), relay: relayU, failed: 1, inSlot: slotInA4, outSlot: slotOutB4},
	}
	fence := in(remoteA4, ap("10.0.0.1:20080"), rtpPayload(999, 20))
	p.addStream(t, fence.dst, dataplane.Inbound, dataplane.Active, rec4, srcIn4)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r0, in0, out0, st0 := p.relayCounters(t, tc.relay), p.counters(t, tc.inSlot), p.counters(t, tc.outSlot), p.stats(t)
			frame := buildFrame(tc.frame)
			out := make([]byte, len(frame)+512)
			opts := &ebpf.RunOptions{Data: frame, DataOut: out}
			var ret uint32
			p.ns.MustDo(t, func() (err error) {
				ret, err = p.objs.RtpforkIngress.Run(opts)
				return err
			})
			want, wantRet := frame, uint32(tcxNext)
			if tc.relayDst.IsValid() {
				w := tc.frame
				w.srcMAC, w.dstMAC, w.src, w.dst = ourMAC, relayMAC, tc.relaySrc, tc.relayDst
				want, wantRet = buildFrame(w), tcxRedirect
			}
			if ret != wantRet {
				t.Fatalf("program returned %#x, want %#x", ret, wantRet)
			}
			if !bytes.Equal(opts.DataOut, want) {
				t.Fatalf("packet after the program:\n got % x\nwant % x", opts.DataOut, want)
			}
			for i, c := range tc.copies {
				w := tc.frame
				w.srcMAC, w.dstMAC, w.src, w.dst = outMAC, recMAC, c.src, c.dst
				if got, wantB := p.nextCopy(t), buildFrame(w); !bytes.Equal(got, wantB) {
					t.Fatalf("copy %d differs:\n got % x\nwant % x", i, got, wantB)
				}
			}
			r1, in1, out1, st1 := p.relayCounters(t, tc.relay), p.counters(t, tc.inSlot), p.counters(t, tc.outSlot), p.stats(t)
			payload := uint64(len(tc.frame.payload))
			if d := r1.RelayedPackets - r0.RelayedPackets; d != tc.relayed {
				t.Errorf("relayed packets +%d, want +%d", d, tc.relayed)
			}
			if d := r1.RelayedBytes - r0.RelayedBytes; d != tc.relayed*payload {
				t.Errorf("relayed bytes +%d, want +%d", d, tc.relayed*payload)
			}
			if d := r1.FailedPackets - r0.FailedPackets; d != tc.failed {
				t.Errorf("relay failures +%d, want +%d", d, tc.failed)
			}
			if d := in1.CopiedPackets - in0.CopiedPackets; d != tc.inCopied {
				t.Errorf("inbound copies +%d, want +%d", d, tc.inCopied)
			}
			if d := out1.CopiedPackets - out0.CopiedPackets; d != tc.outCopied {
				t.Errorf("outbound copies +%d, want +%d", d, tc.outCopied)
			}
			if d := out1.MutedPackets - out0.MutedPackets; d != tc.outMuted {
				t.Errorf("outbound muted +%d, want +%d", d, tc.outMuted)
			}
			if d := st1[statForeign] - st0[statForeign]; d != tc.foreign {
				t.Errorf("foreign stat +%d, want +%d", d, tc.foreign)
			}
			if d := st1[statRelayed] - st0[statRelayed]; d != tc.statRelayedOK {
				t.Errorf("relayed stat +%d, want +%d", d, tc.statRelayedOK)
			}
			// Fence: the next frame on the wire is the fence's copy, so
			// the case made no copy beyond those checked.
			p.run(t, p.objs.RtpforkIngress, buildFrame(fence), nil)
			got, err := parseFrame(p.nextCopy(t))
			if err != nil {
				t.Fatalf("fence copy: %v", err)
			}
			if seq := binary.BigEndian.Uint16(got.payload[2:]); seq != 999 {
				t.Fatalf("after the case the recorder got seq %d, want the fence's 999", seq)
			}
		})
	}
}
