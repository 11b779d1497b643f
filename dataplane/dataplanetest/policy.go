package dataplanetest

import (
	"net/netip"
	"testing"

	"github.com/recfork/recfork/dataplane"
)

// The guard and the latch policies (issue "hostile input": whoever sends RTP
// first must not take a call's media). A foreign party is a host other than
// the signalled one: its address is Harness.ForeignIP.

func (v *env) foreignParty(t *testing.T) *Party {
	t.Helper()
	return NewParty(t, v.h.foreign())
}

// remoteIs checks where the endpoint's media goes and how it was learnt.
func (v *env) remoteIs(t *testing.T, id dataplane.EndpointID, want netip.AddrPort, latched bool) {
	t.Helper()
	WaitFor(t, v.timeout, func() (bool, string) {
		s := v.epStats(t, id)
		return s.Remote == want && s.Latched == latched,
			describe("endpoint %d remote %s latched=%v, want %s latched=%v", id, s.Remote, s.Latched, want, latched)
	})
}

// testGuardForeign: a joined, recorded endpoint with a signalled remote
// drops every RTP and RTCP packet from another host, counted, and neither
// relays nor copies it; its real remote's media flows untouched around it.
func testGuardForeign(t *testing.T, v *env) {
	p := v.pair(t, dataplane.Full)
	rec, src := v.recorder(t)
	v.must(t, "add fork", v.e.AddFork(p.a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}))
	v.must(t, "add fork", v.e.AddFork(p.b.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}))
	f := v.foreignParty(t)

	inject := RTPRange(0x66, 100, 6)
	Send(t, f.RTP, local(p.a), inject)
	Send(t, f.RTCP, rtcpOf(p.a.Local), RTCPRange(0x66, 1, 2))
	Send(t, f.RTP, local(p.b), RTPRange(0x67, 100, 3))
	v.waitRx(t, p.a.ID, 0, 8)
	v.waitRx(t, p.b.ID, 0, 3)

	rtp := RTPRange(0x61, 1, 10)
	Send(t, p.pa.RTP, local(p.a), rtp)
	Expect(t, p.pb.RTP, local(p.b), rtp, v.timeout)
	Expect(t, rec.RTP, local(src), rtp, v.timeout)
	// Injected again after the real remote spoke: still nothing.
	Send(t, f.RTP, local(p.a), RTPRange(0x66, 106, 4))
	v.waitRx(t, p.a.ID, 10, 12)
	ExpectNothingQueued(t, p.pb.RTP)
	ExpectNothingQueued(t, rec.RTP)
	ExpectNothingQueued(t, f.RTP)
	n := totalBytes(rtp)
	v.waitEndpoint(t, p.a.ID, dataplane.EndpointStats{RxPackets: 10, RxBytes: n, Relayed: 10, Dropped: 12})
	v.waitEndpoint(t, p.b.ID, dataplane.EndpointStats{TxPackets: 10, TxBytes: n, Dropped: 3})
	v.waitFork(t, p.a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 10, CopiedBytes: n})
	v.waitFork(t, p.b.ID, dataplane.Inbound, dataplane.ForkStats{})
	v.remoteIs(t, p.a.ID, p.pa.Addr, false)
}

// testLatchAddress: under the default policy a latching endpoint refuses a
// first packet from another address, and latches to a source at the
// signalled address from another port (a NAT that keeps the address).
func testLatchAddress(t *testing.T, v *env) {
	pa, pc := v.party(t), v.party(t)
	f := v.foreignParty(t)
	a := v.open(t, pa.Addr, true)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))

	Send(t, f.RTP, local(a), RTPRange(0x71, 0, 3))
	v.waitRx(t, a.ID, 0, 3)
	v.remoteIs(t, a.ID, pa.Addr, false)

	echo := RTPRange(0x72, 0, 4)
	Send(t, pc.RTP, local(a), echo)
	Expect(t, pc.RTP, local(a), echo, v.timeout)
	v.remoteIs(t, a.ID, pc.Addr, true)

	Send(t, f.RTP, local(a), RTPRange(0x71, 3, 2))
	Send(t, pa.RTP, local(a), RTPRange(0x73, 0, 2))
	v.waitRx(t, a.ID, 4, 7)
	ExpectNothingQueued(t, f.RTP)
	ExpectNothingQueued(t, pa.RTP)
	ExpectNothingQueued(t, pc.RTP)
}

// testLatchOff: with latching off, a Latch endpoint accepts its signalled
// remote only, even from its own address on another port.
func testLatchOff(t *testing.T, v *env) {
	pa, pc := v.party(t), v.party(t)
	a := v.open(t, pa.Addr, true)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))
	Send(t, pc.RTP, local(a), RTPRange(0x81, 0, 3))
	v.waitRx(t, a.ID, 0, 3)
	echo := RTPRange(0x82, 0, 5)
	Send(t, pa.RTP, local(a), echo)
	Expect(t, pa.RTP, local(a), echo, v.timeout)
	v.waitRx(t, a.ID, 5, 3)
	ExpectNothingQueued(t, pc.RTP)
	v.remoteIs(t, a.ID, pa.Addr, false)
}

// testLatchNATPrivate: under the NAT policy an endpoint whose signalled
// address is private latches to the first source, whatever its address;
// from then on that source only is accepted.
func testLatchNATPrivate(t *testing.T, v *env) {
	pa := v.party(t)
	if !dataplane.Unroutable(pa.Addr.Addr()) {
		t.Fatalf("harness PeerIP %s is routable: the NAT case needs a private signalled address", pa.Addr.Addr())
	}
	f := v.foreignParty(t)
	a := v.open(t, pa.Addr, true)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))
	echo := RTPRange(0x91, 0, 4)
	Send(t, f.RTP, local(a), echo)
	Expect(t, f.RTP, local(a), echo, v.timeout)
	v.remoteIs(t, a.ID, f.Addr, true)
	Send(t, pa.RTP, local(a), RTPRange(0x92, 0, 2))
	v.waitRx(t, a.ID, 4, 2)
	ExpectNothingQueued(t, pa.RTP)
}

// testLatchNATPublic: under the NAT policy an endpoint whose signalled
// address is public latches only at that address, as the default does.
func testLatchNATPublic(t *testing.T, v *env) {
	public := netip.MustParseAddrPort("192.0.2.10:40000") // TEST-NET-1, routable by Unroutable's rules
	if !v.h.PeerIP.Unmap().Is4() {
		public = netip.MustParseAddrPort("[2001:db8::10]:40000")
	}
	f := v.foreignParty(t)
	a := v.open(t, public, true)
	Send(t, f.RTP, local(a), RTPRange(0xa1, 0, 3))
	v.waitRx(t, a.ID, 0, 3)
	v.remoteIs(t, a.ID, public, false)
}
