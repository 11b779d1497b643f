//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"net/netip"
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
)

// TestUnjoinUnderTraffic: while one kernel-relayed, recorded pair carries a
// steady stream, another pair is joined and unjoined again and again (relay
// entries written and deleted, the programs waited for). The streaming
// pair's callee and recorder get every packet, in order, byte for byte.
func TestUnjoinUnderTraffic(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			tp := newTopology(t, f, viaSame)
			e := newEngine(t, tp.eng, tp.ifaces)
			pa, pb := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
			pc, pd := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
			rec := listenPair(t, tp.rec, tp.recIP)
			for _, p := range []*pair{pd, rec} {
				_ = p.rtp.SetReadBuffer(4 << 20)
			}
			a := openEndpoint(t, tp.eng, e, tp.engIP, pa.addr)
			b := openEndpoint(t, tp.eng, e, tp.engIP, pb.addr)
			c := openEndpoint(t, tp.eng, e, tp.engIP, pc.addr)
			d := openEndpoint(t, tp.eng, e, tp.engIP, pd.addr)
			src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
			tp.eng.MustDo(t, func() error {
				if err := e.AddFork(c.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
					return err
				}
				return e.Join(c.ID, d.ID, dataplane.Full)
			})
			if !e.RelayedInKernel(c.ID, d.ID) {
				t.Fatal("c->d is not relayed in the kernel")
			}

			const total, burst = 3000, 30
			stream := rtpN(0xc0de, 1, total)
			sent := make(chan error, 1)
			go func() {
				for i := 0; i < total; i += burst {
					for _, p := range stream[i : i+burst] {
						if _, err := pc.rtp.WriteToUDPAddrPort(p, c.Local); err != nil {
							sent <- err
							return
						}
					}
					time.Sleep(500 * time.Microsecond) // a paced stream, not a flood
				}
				sent <- nil
			}()
			churn := 0
			for done := false; !done; {
				select {
				case err := <-sent:
					if err != nil {
						t.Fatalf("stream: %v", err)
					}
					done = true
				default:
					tp.eng.MustDo(t, func() error { return e.Join(a.ID, b.ID, dataplane.Full) })
					tp.eng.MustDo(t, func() error { return e.Unjoin(a.ID, b.ID) })
					churn++
				}
			}
			expect(t, pd.rtp, d.Local, stream...)
			expect(t, rec.rtp, src.Local, stream...)
			waitFork(t, e, c.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: total, CopiedBytes: sumLen(stream)})
			if !e.RelayedInKernel(c.ID, d.ID) {
				t.Fatal("c->d left the kernel path")
			}
			if churn == 0 {
				t.Fatal("the other pair was never joined while the stream ran")
			}
			t.Logf("%d join/unjoin cycles of the other pair during %d packets", churn, total)
		})
	}
}
