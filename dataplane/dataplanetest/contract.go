package dataplanetest

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
)

// Run runs the contract suite against the engine the harness builds: one
// subtest per behaviour, each with a fresh engine.
func Run(t *testing.T, h Harness) {
	if err := h.check(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"Name", testName},
		{"RelayFull", testRelayFull},
		{"RelayHalf", testRelayHalf},
		{"Echo", testEcho},
		{"JoinThree", testJoinThree},
		{"TapTakesItsPayloadTypeOnly", testTap},
		{"ForkInbound", testForkInbound},
		{"ForkOutbound", testForkOutbound},
		{"ForkBothDirections", testForkBoth},
		{"MuteUnmute", testMuteUnmute},
		{"ForkStartsInactive", testForkStartsInactive},
		{"RemoveFork", testRemoveFork},
		{"CloseEndpoint", testCloseEndpoint},
		{"CloseSource", testCloseSource},
		{"LatchLearnsFirstSource", testLatchLearn},
		{"LatchFollowsSource", testLatchFollows},
		{"SetRemote", testSetRemote},
		{"SetRemoteRelatches", testSetRemoteRelatch},
		{"BadInput", testBadInput},
		{"Errors", testErrors},
		{"Close", testClose},
	}
	if h.ForeignIP.IsValid() {
		tests = append(tests, []struct {
			name string
			fn   func(*testing.T, *env)
		}{
			{"GuardForeignSource", testGuardForeign},
			{"LatchAddressRefusesForeign", testLatchAddress},
		}...)
	} else {
		t.Log("dataplanetest: no Harness.ForeignIP: guard and latch policy cases not run")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := h.NewEngine(t)
			if e == nil {
				t.Fatal("Harness.NewEngine returned nil")
			}
			t.Cleanup(func() {
				if err := e.Close(); err != nil && !errors.Is(err, dataplane.ErrClosed) {
					t.Errorf("close engine: %v", err)
				}
			})
			tc.fn(t, &env{h: h, e: e, timeout: h.timeout()})
		})
	}
	runPolicies(t, h)
}

// runPolicies runs the cases of the latch policies other than the default,
// each with an engine built for its policy.
func runPolicies(t *testing.T, h Harness) {
	if h.NewPolicyEngine == nil {
		t.Log("dataplanetest: no Harness.NewPolicyEngine: latch policies nat and off not tested")
		return
	}
	cases := []struct {
		name    string
		policy  dataplane.LatchPolicy
		foreign bool
		fn      func(*testing.T, *env)
	}{
		{"LatchOffSignalledOnly", dataplane.LatchOff, false, testLatchOff},
		{"LatchNATPrivateSignalled", dataplane.LatchNAT, true, testLatchNATPrivate},
		{"LatchNATPublicSignalled", dataplane.LatchNAT, true, testLatchNATPublic},
	}
	for _, c := range cases {
		if c.foreign && !h.ForeignIP.IsValid() {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			e := h.NewPolicyEngine(t, c.policy)
			if e == nil {
				t.Fatal("Harness.NewPolicyEngine returned nil")
			}
			t.Cleanup(func() {
				if err := e.Close(); err != nil && !errors.Is(err, dataplane.ErrClosed) {
					t.Errorf("close engine: %v", err)
				}
			})
			c.fn(t, &env{h: h, e: e, timeout: h.timeout()})
		})
	}
}

// env is one subtest's engine and helpers.
type env struct {
	h       Harness
	e       dataplane.Engine
	timeout time.Duration
}

func (v *env) party(t *testing.T) *Party { t.Helper(); return NewParty(t, v.h) }

func (v *env) open(t *testing.T, remote netip.AddrPort, latch bool) dataplane.EndpointInfo {
	t.Helper()
	info, err := v.e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: v.h.LocalIP, Remote: remote, Latch: latch})
	if err != nil {
		t.Fatalf("open endpoint: %v", err)
	}
	if info.ID == 0 || info.Local.Port()%2 != 0 || info.Local.Addr().Unmap() != v.h.LocalIP.Unmap() {
		t.Fatalf("open endpoint returned %+v: want a non-zero ID and an even port on %s", info, v.h.LocalIP)
	}
	return info
}

func rtcpOf(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()+1)
}

func local(info dataplane.EndpointInfo) netip.AddrPort {
	return netip.AddrPortFrom(info.Local.Addr().Unmap(), info.Local.Port())
}

func (v *env) must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (v *env) epStats(t *testing.T, id dataplane.EndpointID) dataplane.EndpointStats {
	t.Helper()
	s, err := v.e.EndpointStats(id)
	v.must(t, "endpoint stats", err)
	return s
}

func (v *env) forkStats(t *testing.T, id dataplane.EndpointID, d dataplane.Direction) dataplane.ForkStats {
	t.Helper()
	s, err := v.e.ForkStats(id, d)
	v.must(t, "fork stats", err)
	return s
}

// waitRx waits until the endpoint has accepted exactly rx packets and dropped
// exactly dropped, which proves the engine has handled everything sent to it.
func (v *env) waitRx(t *testing.T, id dataplane.EndpointID, rx, dropped uint64) {
	t.Helper()
	WaitFor(t, v.timeout, func() (bool, string) {
		s := v.epStats(t, id)
		return s.RxPackets == rx && s.Dropped == dropped,
			describe("endpoint %d rx=%d dropped=%d, want rx=%d dropped=%d", id, s.RxPackets, s.Dropped, rx, dropped)
	})
}

// waitEndpoint waits until the endpoint's counters equal want exactly.
func (v *env) waitEndpoint(t *testing.T, id dataplane.EndpointID, want dataplane.EndpointStats) {
	t.Helper()
	WaitFor(t, v.timeout, func() (bool, string) {
		s := v.epStats(t, id)
		// Counters only: where the remote is, is checked where it matters.
		s.Remote, s.Latched = want.Remote, want.Latched
		return s == want, describe("endpoint %d stats %+v, want %+v", id, s, want)
	})
}

// waitFork waits until the fork's counters equal want exactly.
func (v *env) waitFork(t *testing.T, id dataplane.EndpointID, d dataplane.Direction, want dataplane.ForkStats) {
	t.Helper()
	WaitFor(t, v.timeout, func() (bool, string) {
		s := v.forkStats(t, id, d)
		return s == want, describe("fork %d/%s stats %+v, want %+v", id, d, s, want)
	})
}

func testName(t *testing.T, v *env) {
	if n := v.e.Name(); n != "userspace" && n != "ebpf" {
		t.Fatalf("Name() = %q, want userspace or ebpf", n)
	}
	if s := v.e.Stats(); s.Engine != v.e.Name() {
		t.Fatalf("Stats().Engine = %q, want %q", s.Engine, v.e.Name())
	}
}

// pair opens two parties and their endpoints, joined with d.
type pair struct {
	pa, pb *Party
	a, b   dataplane.EndpointInfo
}

func (v *env) pair(t *testing.T, d dataplane.Duplex) pair {
	t.Helper()
	p := pair{pa: v.party(t), pb: v.party(t)}
	p.a = v.open(t, p.pa.Addr, false)
	p.b = v.open(t, p.pb.Addr, false)
	if p.a.Remote != p.pa.Addr || p.b.Remote != p.pb.Addr {
		t.Fatalf("endpoint remotes %s, %s; want %s, %s", p.a.Remote, p.b.Remote, p.pa.Addr, p.pb.Addr)
	}
	if d != 0 {
		v.must(t, "join", v.e.Join(p.a.ID, p.b.ID, d))
	}
	return p
}

func testRelayFull(t *testing.T, v *env) {
	p := v.pair(t, dataplane.Full)
	if s := v.e.Stats(); s.Endpoints != 2 || s.Joins != 1 {
		t.Fatalf("Stats() = %+v, want 2 endpoints and 1 join", s)
	}
	for _, dir := range []struct {
		name         string
		from, to     *Party
		fromEp, toEp dataplane.EndpointInfo
		ssrc         uint32
	}{
		{"a to b", p.pa, p.pb, p.a, p.b, 0x1111},
		{"b to a", p.pb, p.pa, p.b, p.a, 0x2222},
	} {
		t.Run(dir.name, func(t *testing.T) {
			rtp, rtcp := RTPRange(dir.ssrc, 100, 40), RTCPRange(dir.ssrc, 1, 5)
			Send(t, dir.from.RTP, local(dir.fromEp), rtp)
			Send(t, dir.from.RTCP, rtcpOf(dir.fromEp.Local), rtcp)
			Expect(t, dir.to.RTP, local(dir.toEp), rtp, v.timeout)
			Expect(t, dir.to.RTCP, rtcpOf(dir.toEp.Local), rtcp, v.timeout)
		})
	}
	aToB := totalBytes(RTPRange(0x1111, 100, 40), RTCPRange(0x1111, 1, 5))
	bToA := totalBytes(RTPRange(0x2222, 100, 40), RTCPRange(0x2222, 1, 5))
	v.waitEndpoint(t, p.a.ID, dataplane.EndpointStats{RxPackets: 45, RxBytes: aToB, TxPackets: 45, TxBytes: bToA, Relayed: 45})
	v.waitEndpoint(t, p.b.ID, dataplane.EndpointStats{RxPackets: 45, RxBytes: bToA, TxPackets: 45, TxBytes: aToB, Relayed: 45})
	if s := v.e.Stats(); s.Relayed != 90 || s.Dropped != 0 {
		t.Fatalf("Stats() = %+v, want relayed=90 dropped=0", s)
	}
}

func testRelayHalf(t *testing.T, v *env) {
	p := v.pair(t, 0)
	v.must(t, "join half", v.e.Join(p.a.ID, p.b.ID, dataplane.Half))
	// What a receives goes out of b to b's remote.
	fwd := RTPRange(0xa, 1, 30)
	Send(t, p.pa.RTP, local(p.a), fwd)
	Expect(t, p.pb.RTP, local(p.b), fwd, v.timeout)
	// What b receives goes nowhere.
	back := RTPRange(0xb, 1, 30)
	Send(t, p.pb.RTP, local(p.b), back)
	v.waitRx(t, p.b.ID, 30, 0)
	if s := v.epStats(t, p.b.ID); s.Relayed != 0 {
		t.Fatalf("half join relayed %d packets backwards", s.Relayed)
	}
	// Fence: make the join full; the first packet a's remote hears must be
	// one sent after that, never one of the half-duplex ones.
	v.must(t, "unjoin", v.e.Unjoin(p.b.ID, p.a.ID))
	v.must(t, "join full", v.e.Join(p.a.ID, p.b.ID, dataplane.Full))
	later := RTPRange(0xb, 1000, 5)
	Send(t, p.pb.RTP, local(p.b), later)
	Expect(t, p.pa.RTP, local(p.a), later, v.timeout)
	v.waitEndpoint(t, p.a.ID, dataplane.EndpointStats{RxPackets: 30, RxBytes: totalBytes(fwd), TxPackets: 5, TxBytes: totalBytes(later), Relayed: 30})
}

func testEcho(t *testing.T, v *env) {
	pa := v.party(t)
	a := v.open(t, pa.Addr, false)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))
	rtp, rtcp := RTPRange(0xe, 7, 25), RTCPRange(0xe, 1, 3)
	Send(t, pa.RTP, local(a), rtp)
	Send(t, pa.RTCP, rtcpOf(a.Local), rtcp)
	Expect(t, pa.RTP, local(a), rtp, v.timeout)
	Expect(t, pa.RTCP, rtcpOf(a.Local), rtcp, v.timeout)
	n := totalBytes(rtp, rtcp)
	v.waitEndpoint(t, a.ID, dataplane.EndpointStats{RxPackets: 28, RxBytes: n, TxPackets: 28, TxBytes: n, Relayed: 28})
	if s := v.e.Stats(); s.Joins != 1 {
		t.Fatalf("Stats().Joins = %d after a self-join, want 1", s.Joins)
	}
}

func testJoinThree(t *testing.T, v *env) {
	// A hub joined to two legs: what the hub's remote says reaches both legs;
	// what a leg says reaches only the hub, never the other leg.
	p := v.pair(t, dataplane.Full)
	pc := v.party(t)
	c := v.open(t, pc.Addr, false)
	v.must(t, "join a and c", v.e.Join(c.ID, p.a.ID, dataplane.Full))
	if s := v.e.Stats(); s.Joins != 2 {
		t.Fatalf("Stats().Joins = %d, want 2", s.Joins)
	}
	hub := RTPRange(0x31, 0, 20)
	Send(t, p.pa.RTP, local(p.a), hub)
	Expect(t, p.pb.RTP, local(p.b), hub, v.timeout)
	Expect(t, pc.RTP, local(c), hub, v.timeout)
	leg := RTPRange(0x32, 0, 10)
	Send(t, p.pb.RTP, local(p.b), leg)
	Expect(t, p.pa.RTP, local(p.a), leg, v.timeout)
	// Fence for c: after a's next packet arrives there, nothing else may be
	// queued (b's packets would have come first).
	more := RTPRange(0x31, 20, 2)
	Send(t, p.pa.RTP, local(p.a), more)
	Expect(t, pc.RTP, local(c), more, v.timeout)
	ExpectNothingQueued(t, pc.RTP)
	v.waitEndpoint(t, p.a.ID, dataplane.EndpointStats{RxPackets: 22, RxBytes: totalBytes(hub, more), TxPackets: 10, TxBytes: totalBytes(leg), Relayed: 22})
	// Unjoining one leg leaves the other.
	v.must(t, "unjoin a and c", v.e.Unjoin(p.a.ID, c.ID))
	last := RTPRange(0x31, 22, 3)
	Send(t, p.pa.RTP, local(p.a), last)
	Expect(t, p.pb.RTP, local(p.b), concat(more, last), v.timeout)
	v.waitRx(t, p.a.ID, 25, 0)
	if s := v.epStats(t, c.ID); s.TxPackets != 22 {
		t.Fatalf("c sent %d packets to its remote, want 22", s.TxPackets)
	}
}

// recorder opens a recorder party and the source endpoint its copies leave from.
func (v *env) recorder(t *testing.T) (*Party, dataplane.EndpointInfo) {
	t.Helper()
	rec := v.party(t)
	return rec, v.open(t, netip.AddrPort{}, false)
}

func testForkInbound(t *testing.T, v *env) {
	p := v.pair(t, dataplane.Full)
	rec, src := v.recorder(t)
	v.must(t, "add fork", v.e.AddFork(p.a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}))
	if s := v.e.Stats(); s.Forks != 1 {
		t.Fatalf("Stats().Forks = %d, want 1", s.Forks)
	}
	rtp, rtcp := RTPRange(0x10, 500, 50), RTCPRange(0x10, 1, 4)
	Send(t, p.pa.RTP, local(p.a), rtp)
	Send(t, p.pa.RTCP, rtcpOf(p.a.Local), rtcp)
	Expect(t, rec.RTP, local(src), rtp, v.timeout)
	Expect(t, rec.RTCP, rtcpOf(src.Local), rtcp, v.timeout)
	// The relay is unaffected by the fork.
	Expect(t, p.pb.RTP, local(p.b), rtp, v.timeout)
	Expect(t, p.pb.RTCP, rtcpOf(p.b.Local), rtcp, v.timeout)

	// The other direction through a is not copied: send some, then more
	// inbound; the recorder's next datagrams must be the inbound ones.
	other := RTPRange(0x20, 1, 20)
	Send(t, p.pb.RTP, local(p.b), other)
	Expect(t, p.pa.RTP, local(p.a), other, v.timeout)
	more := RTPRange(0x10, 550, 5)
	Send(t, p.pa.RTP, local(p.a), more)
	Expect(t, rec.RTP, local(src), more, v.timeout)
	ExpectNothingQueued(t, rec.RTP)

	v.waitFork(t, p.a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 59, CopiedBytes: totalBytes(rtp, rtcp, more)})
	if s := v.e.Stats(); s.CopiedPackets != 59 || s.MutedPackets != 0 {
		t.Fatalf("Stats() = %+v, want copied=59 muted=0", s)
	}
	if _, err := v.e.ForkStats(p.a.ID, dataplane.Outbound); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("ForkStats of a direction without a fork: %v, want ErrNotFound", err)
	}
}

func testForkOutbound(t *testing.T, v *env) {
	p := v.pair(t, dataplane.Full)
	rec, src := v.recorder(t)
	v.must(t, "add fork", v.e.AddFork(p.a.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID, Mode: dataplane.Active}))
	// Outbound of a is what the engine sends to a's remote: relayed from b.
	rtp, rtcp := RTPRange(0x30, 9, 50), RTCPRange(0x30, 1, 4)
	Send(t, p.pb.RTP, local(p.b), rtp)
	Send(t, p.pb.RTCP, rtcpOf(p.b.Local), rtcp)
	Expect(t, p.pa.RTP, local(p.a), rtp, v.timeout)
	Expect(t, p.pa.RTCP, rtcpOf(p.a.Local), rtcp, v.timeout)
	Expect(t, rec.RTP, local(src), rtp, v.timeout)
	Expect(t, rec.RTCP, rtcpOf(src.Local), rtcp, v.timeout)

	// Inbound of a is not copied (fence: more outbound afterwards).
	in := RTPRange(0x40, 1, 20)
	Send(t, p.pa.RTP, local(p.a), in)
	Expect(t, p.pb.RTP, local(p.b), in, v.timeout)
	more := RTPRange(0x30, 59, 5)
	Send(t, p.pb.RTP, local(p.b), more)
	Expect(t, rec.RTP, local(src), more, v.timeout)
	ExpectNothingQueued(t, rec.RTP)
	v.waitFork(t, p.a.ID, dataplane.Outbound, dataplane.ForkStats{CopiedPackets: 59, CopiedBytes: totalBytes(rtp, rtcp, more)})
}

func testForkBoth(t *testing.T, v *env) {
	// The SIPREC shape: one recording stream per direction, each leaving from
	// its own source endpoint to its own recorder port pair; echo as the far end.
	pa := v.party(t)
	a := v.open(t, pa.Addr, false)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))
	recIn, srcIn := v.recorder(t)
	recOut, srcOut := v.recorder(t)
	v.must(t, "fork inbound", v.e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: recIn.Addr, Source: srcIn.ID}))
	v.must(t, "fork outbound", v.e.AddFork(a.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: recOut.Addr, Source: srcOut.ID}))
	rtp, rtcp := RTPRange(0x50, 1, 40), RTCPRange(0x50, 1, 3)
	Send(t, pa.RTP, local(a), rtp)
	Send(t, pa.RTCP, rtcpOf(a.Local), rtcp)
	Expect(t, pa.RTP, local(a), rtp, v.timeout)
	for _, r := range []struct {
		rec *Party
		src dataplane.EndpointInfo
	}{{recIn, srcIn}, {recOut, srcOut}} {
		Expect(t, r.rec.RTP, local(r.src), rtp, v.timeout)
		Expect(t, r.rec.RTCP, rtcpOf(r.src.Local), rtcp, v.timeout)
	}
	want := dataplane.ForkStats{CopiedPackets: 43, CopiedBytes: totalBytes(rtp, rtcp)}
	v.waitFork(t, a.ID, dataplane.Inbound, want)
	v.waitFork(t, a.ID, dataplane.Outbound, want)
	if s := v.e.Stats(); s.Forks != 2 || s.CopiedPackets != 86 {
		t.Fatalf("Stats() = %+v, want 2 forks and 86 copies", s)
	}
}

func testMuteUnmute(t *testing.T, v *env) {
	p := v.pair(t, dataplane.Full)
	rec, src := v.recorder(t)
	v.must(t, "add fork", v.e.AddFork(p.a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}))
	const n = 40
	b1, b2, b3 := RTPRange(0x60, 0, n), RTPRange(0x60, n, n), RTPRange(0x60, 2*n, n)
	Send(t, p.pa.RTP, local(p.a), b1)
	Expect(t, rec.RTP, local(src), b1, v.timeout)

	v.must(t, "mute", v.e.SetForkMode(p.a.ID, dataplane.Inbound, dataplane.Inactive))
	Send(t, p.pa.RTP, local(p.a), b2)
	// Muting a fork never touches the relay.
	Expect(t, p.pb.RTP, local(p.b), concat(b1, b2), v.timeout)
	v.waitFork(t, p.a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: n, CopiedBytes: totalBytes(b1), MutedPackets: n, MutedBytes: totalBytes(b2)})
	// Muting twice is harmless.
	v.must(t, "mute again", v.e.SetForkMode(p.a.ID, dataplane.Inbound, dataplane.Inactive))

	v.must(t, "unmute", v.e.SetForkMode(p.a.ID, dataplane.Inbound, dataplane.Active))
	Send(t, p.pa.RTP, local(p.a), b3)
	// The copies of b3 follow b1 directly: not one copy of b2 left.
	Expect(t, rec.RTP, local(src), b3, v.timeout)
	Expect(t, p.pb.RTP, local(p.b), b3, v.timeout)
	ExpectNothingQueued(t, rec.RTP)
	v.waitFork(t, p.a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 2 * n, CopiedBytes: totalBytes(b1, b3), MutedPackets: n, MutedBytes: totalBytes(b2)})
	if s := v.e.Stats(); s.CopiedPackets != 2*n || s.MutedPackets != n {
		t.Fatalf("Stats() = %+v, want copied=%d muted=%d", s, 2*n, n)
	}
}

func testForkStartsInactive(t *testing.T, v *env) {
	pa := v.party(t)
	a := v.open(t, pa.Addr, false)
	rec, src := v.recorder(t)
	v.must(t, "add fork", v.e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID, Mode: dataplane.Inactive}))
	muted := RTPRange(0x70, 0, 10)
	Send(t, pa.RTP, local(a), muted)
	v.waitRx(t, a.ID, 10, 0)
	v.must(t, "unmute", v.e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Active))
	live := RTPRange(0x70, 10, 10)
	Send(t, pa.RTP, local(a), live)
	Expect(t, rec.RTP, local(src), live, v.timeout)
	v.waitFork(t, a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 10, CopiedBytes: totalBytes(live), MutedPackets: 10, MutedBytes: totalBytes(muted)})
}

func testRemoveFork(t *testing.T, v *env) {
	pa := v.party(t)
	a := v.open(t, pa.Addr, false)
	rec, src := v.recorder(t)
	cfg := dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}
	v.must(t, "add fork", v.e.AddFork(a.ID, dataplane.Inbound, cfg))
	if err := v.e.AddFork(a.ID, dataplane.Inbound, cfg); !errors.Is(err, dataplane.ErrExists) {
		t.Fatalf("second AddFork: %v, want ErrExists", err)
	}
	b1, b2, b3 := RTPRange(0x80, 0, 10), RTPRange(0x80, 10, 10), RTPRange(0x80, 20, 10)
	Send(t, pa.RTP, local(a), b1)
	Expect(t, rec.RTP, local(src), b1, v.timeout)
	v.must(t, "remove fork", v.e.RemoveFork(a.ID, dataplane.Inbound))
	if s := v.e.Stats(); s.Forks != 0 {
		t.Fatalf("Stats().Forks = %d after RemoveFork, want 0", s.Forks)
	}
	if _, err := v.e.ForkStats(a.ID, dataplane.Inbound); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("ForkStats after RemoveFork: %v, want ErrNotFound", err)
	}
	if err := v.e.RemoveFork(a.ID, dataplane.Inbound); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("second RemoveFork: %v, want ErrNotFound", err)
	}
	Send(t, pa.RTP, local(a), b2)
	v.waitRx(t, a.ID, 20, 0)
	// A new fork starts from zero and copies only what arrives after it.
	v.must(t, "re-add fork", v.e.AddFork(a.ID, dataplane.Inbound, cfg))
	Send(t, pa.RTP, local(a), b3)
	Expect(t, rec.RTP, local(src), b3, v.timeout)
	ExpectNothingQueued(t, rec.RTP)
	v.waitFork(t, a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 10, CopiedBytes: totalBytes(b3)})
}

func testCloseEndpoint(t *testing.T, v *env) {
	free := v.e.Stats().PortsFree
	p := v.pair(t, dataplane.Full)
	rec, src := v.recorder(t)
	for _, d := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
		v.must(t, "add fork", v.e.AddFork(p.a.ID, d, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}))
	}
	if s := v.e.Stats(); s.Endpoints != 3 || s.Joins != 1 || s.Forks != 2 || s.PortsFree != free-3 {
		t.Fatalf("Stats() = %+v, want 3 endpoints, 1 join, 2 forks, %d ports free", s, free-3)
	}
	v.must(t, "close endpoint", v.e.CloseEndpoint(p.a.ID))
	if s := v.e.Stats(); s.Endpoints != 2 || s.Joins != 0 || s.Forks != 0 || s.PortsFree != free-2 {
		t.Fatalf("Stats() after CloseEndpoint = %+v, want 2 endpoints, no joins, no forks, %d ports free", s, free-2)
	}
	if err := v.e.CloseEndpoint(p.a.ID); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("second CloseEndpoint: %v, want ErrNotFound", err)
	}
	if _, err := v.e.EndpointStats(p.a.ID); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("EndpointStats of a closed endpoint: %v, want ErrNotFound", err)
	}
	if _, err := v.e.ForkStats(p.a.ID, dataplane.Inbound); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("ForkStats of a closed endpoint: %v, want ErrNotFound", err)
	}
	if err := v.e.Unjoin(p.a.ID, p.b.ID); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("Unjoin with a closed endpoint: %v, want ErrNotFound", err)
	}
	// b no longer relays anywhere.
	Send(t, p.pb.RTP, local(p.b), RTPRange(0x90, 0, 10))
	v.waitRx(t, p.b.ID, 10, 0)
	if s := v.epStats(t, p.b.ID); s.Relayed != 0 {
		t.Fatalf("b relayed %d packets to a closed endpoint", s.Relayed)
	}
	// b can be joined again, to itself.
	v.must(t, "self join", v.e.Join(p.b.ID, p.b.ID, dataplane.Full))
	echo := RTPRange(0x90, 10, 3)
	Send(t, p.pb.RTP, local(p.b), echo)
	Expect(t, p.pb.RTP, local(p.b), echo, v.timeout)
}

// testCloseSource closes the endpoint a fork's copies leave from: the fork
// goes with it, its endpoint's relay goes on, and nothing more reaches the
// recorder.
func testCloseSource(t *testing.T, v *env) {
	p := v.pair(t, dataplane.Full)
	rec, src := v.recorder(t)
	for _, d := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
		v.must(t, "add fork", v.e.AddFork(p.a.ID, d, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}))
	}
	in, out := RTPRange(0x30, 1, 5), RTPRange(0x31, 1, 5)
	Send(t, p.pa.RTP, local(p.a), in)
	Expect(t, rec.RTP, local(src), in, v.timeout)
	Expect(t, p.pb.RTP, local(p.b), in, v.timeout)
	// What b receives leaves through a: a's outbound copy.
	Send(t, p.pb.RTP, local(p.b), out)
	Expect(t, rec.RTP, local(src), out, v.timeout)
	Expect(t, p.pa.RTP, local(p.a), out, v.timeout)

	v.must(t, "close source", v.e.CloseEndpoint(src.ID))
	if s := v.e.Stats(); s.Endpoints != 2 || s.Forks != 0 || s.Joins != 1 {
		t.Fatalf("Stats() after closing the source = %+v, want 2 endpoints, 1 join, no forks", s)
	}
	for _, d := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
		if _, err := v.e.ForkStats(p.a.ID, d); !errors.Is(err, dataplane.ErrNotFound) {
			t.Fatalf("ForkStats(%s) after closing the source: %v, want ErrNotFound", d, err)
		}
	}
	in, out = RTPRange(0x30, 6, 10), RTPRange(0x31, 6, 10)
	Send(t, p.pa.RTP, local(p.a), in)
	Send(t, p.pb.RTP, local(p.b), out)
	Expect(t, p.pb.RTP, local(p.b), in, v.timeout)
	Expect(t, p.pa.RTP, local(p.a), out, v.timeout)
	ExpectNothingQueued(t, rec.RTP)
}

func testLatchLearn(t *testing.T, v *env) {
	// No remote known: the first source is learnt, then others are dropped.
	pa, pc := v.party(t), v.party(t)
	a := v.open(t, netip.AddrPort{}, false)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))
	first := RTPRange(0xa0, 0, 5)
	Send(t, pa.RTP, local(a), first)
	Expect(t, pa.RTP, local(a), first, v.timeout)
	Send(t, pc.RTP, local(a), RTPRange(0xc0, 0, 3))
	v.waitRx(t, a.ID, 5, 3)
	more := RTPRange(0xa0, 5, 2)
	Send(t, pa.RTP, local(a), more)
	Expect(t, pa.RTP, local(a), more, v.timeout)
	ExpectNothingQueued(t, pc.RTP)
	// RTCP from the learnt party's RTCP port is accepted and echoed there.
	rtcp := RTCPRange(0xa0, 1, 2)
	Send(t, pa.RTCP, rtcpOf(a.Local), rtcp)
	Expect(t, pa.RTCP, rtcpOf(a.Local), rtcp, v.timeout)
	v.waitRx(t, a.ID, 9, 3)
}

func testLatchFollows(t *testing.T, v *env) {
	// Latch with a remote from SDP: the actual source (behind NAT) wins.
	pa, pc := v.party(t), v.party(t)
	a := v.open(t, pc.Addr, true)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))
	first := RTPRange(0xa1, 0, 5)
	Send(t, pa.RTP, local(a), first)
	Expect(t, pa.RTP, local(a), first, v.timeout)
	// After latching, even the signalled address is an unexpected source.
	Send(t, pc.RTP, local(a), RTPRange(0xc1, 0, 4))
	v.waitRx(t, a.ID, 5, 4)
	more := RTPRange(0xa1, 5, 2)
	Send(t, pa.RTP, local(a), more)
	Expect(t, pa.RTP, local(a), more, v.timeout)
	ExpectNothingQueued(t, pc.RTP)
}

func testSetRemote(t *testing.T, v *env) {
	pa, pc := v.party(t), v.party(t)
	a := v.open(t, pa.Addr, false)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))
	// Without Latch, a signalled remote is the only accepted source.
	Send(t, pc.RTP, local(a), RTPRange(0xc2, 0, 3))
	v.waitRx(t, a.ID, 0, 3)
	v.must(t, "set remote", v.e.SetRemote(a.ID, pc.Addr))
	b := RTPRange(0xc2, 3, 4)
	Send(t, pc.RTP, local(a), b)
	Expect(t, pc.RTP, local(a), b, v.timeout)
	Send(t, pa.RTP, local(a), RTPRange(0xa2, 0, 2))
	v.waitRx(t, a.ID, 4, 5)
	ExpectNothingQueued(t, pa.RTP)
	if err := v.e.SetRemote(a.ID+1000, pc.Addr); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("SetRemote of an unknown endpoint: %v, want ErrNotFound", err)
	}
}

func testSetRemoteRelatch(t *testing.T, v *env) {
	// SetRemote resets latching: a latched endpoint learns its source
	// again, and what is sent to it (here its own echo) goes to the new
	// source, never to the one it had latched before.
	pa, pc := v.party(t), v.party(t)
	a := v.open(t, pa.Addr, true)
	v.must(t, "self join", v.e.Join(a.ID, a.ID, dataplane.Full))
	first := RTPRange(0xa3, 0, 3)
	Send(t, pa.RTP, local(a), first)
	Expect(t, pa.RTP, local(a), first, v.timeout)
	v.waitRx(t, a.ID, 3, 0)
	v.must(t, "set remote", v.e.SetRemote(a.ID, pc.Addr))
	again := RTPRange(0xc3, 0, 3)
	Send(t, pc.RTP, local(a), again)
	Expect(t, pc.RTP, local(a), again, v.timeout)
	ExpectNothingQueued(t, pa.RTP)
	// Latched to pc now: the old source is refused.
	Send(t, pa.RTP, local(a), RTPRange(0xa3, 3, 2))
	v.waitRx(t, a.ID, 6, 2)
	ExpectNothingQueued(t, pa.RTP)
	ExpectNothingQueued(t, pc.RTP)
}

// BadDatagrams are datagrams that are not RTP or RTCP; every engine counts
// them as dropped and never relays or copies them.
func BadDatagrams() [][]byte {
	short := RTPPacket(1, 1)[:11]
	v1 := RTPPacket(1, 2)
	v1[0] = 0x40 // version 1
	csrc := RTPPacket(1, 3)[:20]
	csrc[0] = 0x8f // claims 15 CSRCs
	ext := RTPPacket(1, 4)[:16]
	ext[0] = 0x90 // extension header cut short
	rtcpLen := RTCPPacket(1, 1)
	rtcpLen[3] = 40 // length beyond the datagram
	return [][]byte{
		{},
		{0x80},
		[]byte("hello, this is not RTP"),
		short, v1, csrc, ext,
		{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, // STUN binding request
		{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},                     // DTLS record
		rtcpLen,
	}
}

func testBadInput(t *testing.T, v *env) {
	p := v.pair(t, dataplane.Full)
	rec, src := v.recorder(t)
	v.must(t, "add fork", v.e.AddFork(p.a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}))
	bad := BadDatagrams()
	Send(t, p.pa.RTP, local(p.a), bad)
	// RTP is not RTCP: an RTP packet on the RTCP port is dropped too.
	Send(t, p.pa.RTCP, rtcpOf(p.a.Local), append(BadDatagrams(), RTPPacket(9, 9)))
	dropped := uint64(2*len(bad) + 1)
	v.waitRx(t, p.a.ID, 0, dropped)
	good := RTPRange(0xd0, 0, 5)
	Send(t, p.pa.RTP, local(p.a), good)
	Expect(t, rec.RTP, local(src), good, v.timeout)
	Expect(t, p.pb.RTP, local(p.b), good, v.timeout)
	ExpectNothingQueued(t, rec.RTP)
	ExpectNothingQueued(t, rec.RTCP)
	ExpectNothingQueued(t, p.pb.RTCP)
	v.waitEndpoint(t, p.a.ID, dataplane.EndpointStats{RxPackets: 5, RxBytes: totalBytes(good), Relayed: 5, Dropped: dropped})
	v.waitFork(t, p.a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 5, CopiedBytes: totalBytes(good)})
	if s := v.e.Stats(); s.Dropped != dropped {
		t.Fatalf("Stats().Dropped = %d, want %d", s.Dropped, dropped)
	}
}

func testErrors(t *testing.T, v *env) {
	pa := v.party(t)
	a := v.open(t, pa.Addr, false)
	rec, src := v.recorder(t)
	const missing = dataplane.EndpointID(1 << 40)
	fc := dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"open without local IP", func() error {
			_, err := v.e.OpenEndpoint(dataplane.EndpointConfig{})
			return err
		}(), dataplane.ErrInvalid},
		{"set remote unknown", v.e.SetRemote(missing, pa.Addr), dataplane.ErrNotFound},
		{"close unknown", v.e.CloseEndpoint(missing), dataplane.ErrNotFound},
		{"join unknown", v.e.Join(a.ID, missing, dataplane.Full), dataplane.ErrNotFound},
		{"join bad duplex", v.e.Join(a.ID, src.ID, dataplane.Duplex(9)), dataplane.ErrInvalid},
		{"unjoin not joined", v.e.Unjoin(a.ID, src.ID), dataplane.ErrNotFound},
		{"fork unknown endpoint", v.e.AddFork(missing, dataplane.Inbound, fc), dataplane.ErrNotFound},
		{"fork unknown source", v.e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: missing}), dataplane.ErrNotFound},
		{"fork bad direction", v.e.AddFork(a.ID, dataplane.Direction(0), fc), dataplane.ErrInvalid},
		{"fork bad mode", v.e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID, Mode: dataplane.Mode(7)}), dataplane.ErrInvalid},
		{"fork without recorder", v.e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Source: src.ID}), dataplane.ErrInvalid},
		{"mode of missing fork", v.e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Inactive), dataplane.ErrNotFound},
		{"remove missing fork", v.e.RemoveFork(a.ID, dataplane.Outbound), dataplane.ErrNotFound},
		{"stats unknown", func() error { _, err := v.e.EndpointStats(missing); return err }(), dataplane.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !errors.Is(c.err, c.want) {
				t.Fatalf("got %v, want %v", c.err, c.want)
			}
		})
	}
	v.must(t, "join", v.e.Join(a.ID, src.ID, dataplane.Full))
	if err := v.e.Join(src.ID, a.ID, dataplane.Half); !errors.Is(err, dataplane.ErrExists) {
		t.Fatalf("joining a joined pair: %v, want ErrExists", err)
	}
	v.must(t, "add fork", v.e.AddFork(a.ID, dataplane.Inbound, fc))
	if err := v.e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Mode(0)); !errors.Is(err, dataplane.ErrInvalid) {
		t.Fatalf("SetForkMode(0): %v, want ErrInvalid", err)
	}
}

func testClose(t *testing.T, v *env) {
	p := v.pair(t, dataplane.Full)
	rec, src := v.recorder(t)
	v.must(t, "add fork", v.e.AddFork(p.a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}))
	all := v.e.Stats().PortsFree + 3
	v.must(t, "close", v.e.Close())
	s := v.e.Stats()
	if s.Endpoints != 0 || s.Joins != 0 || s.Forks != 0 || s.PortsFree != all {
		t.Fatalf("Stats() after Close = %+v, want nothing held and %d ports free", s, all)
	}
	if _, err := v.e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: v.h.LocalIP}); !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("OpenEndpoint after Close: %v, want ErrClosed", err)
	}
	if err := v.e.Join(p.a.ID, p.b.ID, dataplane.Full); !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("Join after Close: %v, want ErrClosed", err)
	}
	if err := v.e.Close(); err != nil && !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}
