//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
)

// TestRelayInKernel: a full join of two endpoints on the media interface is
// relayed by the BPF programs (the stream table has both directions' relays and the
// kernel counts every packet), byte for byte, RTCP with its RTP; the forks
// of both directions a packet feeds copy it exactly once; a stranger's
// packets are neither relayed nor copied; after Unjoin nothing is relayed.
func TestRelayInKernel(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			tp := newTopology(t, f, viaSame)
			e := newEngine(t, tp.eng, tp.ifaces)
			pa, pb, stranger := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
			recIn, recOut := listenPair(t, tp.rec, tp.recIP), listenPair(t, tp.rec, tp.recIP)
			a := openEndpoint(t, tp.eng, e, tp.engIP, pa.addr)
			b := openEndpoint(t, tp.eng, e, tp.engIP, pb.addr)
			srcIn := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
			srcOut := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
			tp.eng.MustDo(t, func() error {
				if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: recIn.addr, Source: srcIn.ID}); err != nil {
					return err
				}
				if err := e.AddFork(b.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: recOut.addr, Source: srcOut.ID}); err != nil {
					return err
				}
				return e.Join(a.ID, b.ID, dataplane.Full)
			})
			if !e.RelayedInKernel(a.ID, b.ID) || !e.RelayedInKernel(b.ID, a.ID) {
				t.Fatalf("join not relayed in the kernel: a->b %v, b->a %v", e.RelayedInKernel(a.ID, b.ID), e.RelayedInKernel(b.ID, a.ID))
			}
			ks0, err := e.KernelStats()
			if err != nil {
				t.Fatal(err)
			}
			rtp, rtcp := rtpN(0xabc, 1, 20), dataplanetest.RTCPRange(0xabc, 1, 3)
			send(t, stranger.rtp, a.Local, rtpN(0xbad, 1, 4)...)
			send(t, pa.rtp, a.Local, rtp...)
			send(t, pa.rtcp, rtcpAddr(a.Local), rtcp...)
			expect(t, pb.rtp, b.Local, rtp...)
			expect(t, pb.rtcp, rtcpAddr(b.Local), rtcp...)
			expect(t, recIn.rtp, srcIn.Local, rtp...)
			expect(t, recIn.rtcp, rtcpAddr(srcIn.Local), rtcp...)
			expect(t, recOut.rtp, srcOut.Local, rtp...)
			expect(t, recOut.rtcp, rtcpAddr(srcOut.Local), rtcp...)
			n := sumLen(rtp, rtcp)
			waitFork(t, e, a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 23, CopiedBytes: n})
			waitFork(t, e, b.ID, dataplane.Outbound, dataplane.ForkStats{CopiedPackets: 23, CopiedBytes: n})
			waitEndpointStats(t, e, a.ID, func(s dataplane.EndpointStats) bool {
				return s.RxPackets == 23 && s.RxBytes == n && s.Relayed == 23 && s.TxPackets == 0
			})
			waitEndpointStats(t, e, b.ID, func(s dataplane.EndpointStats) bool {
				return s.TxPackets == 23 && s.TxBytes == n && s.RxPackets == 0
			})
			ks1, err := e.KernelStats()
			if err != nil {
				t.Fatal(err)
			}
			if d := ks1.Relayed - ks0.Relayed; d != 23 {
				t.Fatalf("kernel relayed %d packets, want 23 (the stranger's 4 must not be)", d)
			}
			if s := e.Stats(); s.Relayed != 23 {
				t.Fatalf("engine stats relayed %d, want 23", s.Relayed)
			}
			for _, c := range []*pair{pb, recIn, recOut} {
				dataplanetest.ExpectNothingQueued(t, c.rtp)
			}

			tp.eng.MustDo(t, func() error { return e.Unjoin(a.ID, b.ID) })
			if e.RelayedInKernel(a.ID, b.ID) || e.RelayedInKernel(b.ID, a.ID) {
				t.Fatal("relays left after Unjoin")
			}
			after := rtpN(0xabc, 100, 3)
			send(t, pa.rtp, a.Local, after...)
			expect(t, recIn.rtp, srcIn.Local, after...) // still forked, not relayed
			dataplanetest.ExpectNothingQueued(t, pb.rtp)
			// The removed relays' counts stay in the endpoints' figures.
			waitEndpointStats(t, e, a.ID, func(s dataplane.EndpointStats) bool {
				return s.RxPackets == 26 && s.Relayed == 23
			})
		})
	}
}

func waitEndpointStats(t *testing.T, e *Engine, id dataplane.EndpointID, ok func(dataplane.EndpointStats) bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		s, err := e.EndpointStats(id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %d stats %+v", id, s)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRelayCandidatesOfOneEndpoint checks that a join, unjoin or close looks
// at the joins and relays of the endpoints it touches only, however many
// other calls are joined: the work of a call's setup and teardown must not
// grow with the calls up. It counts directions, not time.
func TestRelayCandidatesOfOneEndpoint(t *testing.T) {
	e := &Engine{out: make(map[dataplane.EndpointID]map[dataplane.EndpointID]bool),
		relays: make(map[relayID]*relay), joinsOf: make(pairIndex), relaysOf: make(pairIndex),
		relayWhy: make(map[relayID]string), relayLogged: make(map[relayID]bool)}
	const calls = 500
	for i := range dataplane.EndpointID(calls) {
		a, b := 2*i+1, 2*i+2
		e.joinLocked(a, b, dataplane.Full)
		// One direction of each call is in the kernel.
		e.relays[relayID{a, b}] = &relay{}
		e.relaysOf.add(relayID{a, b})
	}
	// An echo join and a tap beside call 0's first leg.
	e.joinLocked(1, 1, dataplane.Full)
	e.joinLocked(1, 1001, dataplane.Half)
	want := map[relayID]struct{}{{1, 2}: {}, {2, 1}: {}, {1, 1}: {}, {1, 1001}: {}}
	if got := e.relayCandidatesLocked([]dataplane.EndpointID{1}); !maps.Equal(got, want) {
		t.Fatalf("candidates of endpoint 1: %v, want %v", got, want)
	}
	if got := len(e.relayCandidatesLocked(nil)); got != 2*calls+2 {
		t.Fatalf("%d candidates of all endpoints, want %d", got, 2*calls+2)
	}
	e.forgetLocked(1)
	if len(e.out[1]) != 0 || e.out[2][1] || len(e.joinsOf[1]) != 0 || len(e.joinsOf[1001]) != 0 {
		t.Fatalf("endpoint 1's joins left after forgetLocked: out %v, joinsOf %v", e.out[1], e.joinsOf[1])
	}
	// The kernel relay 1 -> 2 stays a candidate until a sync removes it.
	want = map[relayID]struct{}{{1, 2}: {}}
	if got := e.relayCandidatesLocked([]dataplane.EndpointID{1}); !maps.Equal(got, want) {
		t.Fatalf("candidates of endpoint 1 after forgetLocked: %v, want %v", got, want)
	}
	if n := len(e.joinsOf); n != 2*calls-2 {
		t.Fatalf("joinsOf indexes %d endpoints, want the other calls' %d", n, 2*calls-2)
	}
}
