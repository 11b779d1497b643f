//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"testing"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
)

// TestKernelRelayBesideTap: an endpoint joined to its party and half-joined
// to a telephone-event tap (the daemon's DTMF tap) keeps its relay to the
// party in the kernel: the kernel relays its audio and RTCP, and hands the
// event packets to Media, which relays them to the party and the tap, each
// once. Without the tap's payload type the same second join costs the
// kernel relay (negative control).
func TestKernelRelayBesideTap(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			tp := newTopology(t, f, viaSame)
			e := newEngine(t, tp.eng, tp.ifaces)
			pa, pb, pt := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
			a := openEndpoint(t, tp.eng, e, tp.engIP, pa.addr)
			b := openEndpoint(t, tp.eng, e, tp.engIP, pb.addr)
			var tap, plain dataplane.EndpointInfo
			tp.eng.MustDo(t, func() (err error) {
				if tap, err = e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: tp.engIP, Remote: pt.addr, TapPayloadType: 101}); err != nil {
					return err
				}
				if plain, err = e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: tp.engIP, Remote: pt.addr}); err != nil {
					return err
				}
				if err := e.Join(a.ID, b.ID, dataplane.Full); err != nil {
					return err
				}
				return e.Join(a.ID, tap.ID, dataplane.Half)
			})
			if !e.RelayedInKernel(a.ID, b.ID) || !e.RelayedInKernel(b.ID, a.ID) || e.RelayedInKernel(a.ID, tap.ID) {
				t.Fatalf("kernel relays a->b %v, b->a %v, a->tap %v; want true, true, false",
					e.RelayedInKernel(a.ID, b.ID), e.RelayedInKernel(b.ID, a.ID), e.RelayedInKernel(a.ID, tap.ID))
			}
			ks0, err := e.KernelStats()
			if err != nil {
				t.Fatal(err)
			}
			audio, rtcp := rtpN(0x7ab, 1, 20), dataplanetest.RTCPRange(0x7ab, 1, 2)
			ev := rtpN(0x7ab, 21, 3)
			for _, p := range ev {
				p[1] = 101
			}
			send(t, pa.rtp, a.Local, audio...)
			expect(t, pb.rtp, b.Local, audio...)
			send(t, pa.rtp, a.Local, ev...)
			expect(t, pb.rtp, b.Local, ev...)
			expect(t, pt.rtp, tap.Local, ev...)
			send(t, pa.rtcp, rtcpAddr(a.Local), rtcp...)
			expect(t, pb.rtcp, rtcpAddr(b.Local), rtcp...)
			dataplanetest.ExpectNothingQueued(t, pt.rtp)
			dataplanetest.ExpectNothingQueued(t, pt.rtcp)
			ks1, err := e.KernelStats()
			if err != nil {
				t.Fatal(err)
			}
			if d := ks1.Relayed - ks0.Relayed; d != 22 {
				t.Fatalf("kernel relayed %d packets, want the 20 audio and 2 RTCP (the 3 events are Media's)", d)
			}
			waitEndpointStats(t, e, a.ID, func(s dataplane.EndpointStats) bool { return s.RxPackets == 25 && s.Relayed == 25 })

			// A second ordinary target takes the relay out of the kernel.
			tp.eng.MustDo(t, func() error { return e.Join(a.ID, plain.ID, dataplane.Half) })
			if e.RelayedInKernel(a.ID, b.ID) {
				t.Fatal("a relays to two parties and still has a kernel relay")
			}
		})
	}
}
