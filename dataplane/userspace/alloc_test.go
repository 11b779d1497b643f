//go:build linux

package userspace

import (
	"runtime"
	"testing"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
)

// TestHotPathDoesNotAllocate serves batches by hand (the only worker is held)
// and counts heap allocations across recvmmsg, the relay and copy decisions
// and sendmmsg.
func TestHotPathDoesNotAllocate(t *testing.T) {
	for _, gso := range []bool{true, false} {
		t.Run(map[bool]string{true: "gso", false: "nogso"}[gso], func(t *testing.T) {
			e := newTestEngine(t, Config{Workers: 1, DisableGSO: !gso, GSORelays: gso})
			h := loHarness(lo4)
			pa, pb, rec := dataplanetest.NewParty(t, h), dataplanetest.NewParty(t, h), dataplanetest.NewParty(t, h)
			a, _ := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pa.Addr})
			b, _ := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pb.Addr})
			src, _ := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
			for _, err := range []error{
				e.Join(a.ID, b.ID, dataplane.Full),
				e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}),
				e.AddFork(b.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			w := e.workers[0]
			w.mu.Lock()
			defer w.mu.Unlock()
			s := e.eps[a.ID].socks[rtpIdx]
			pkts := dataplanetest.RTPRange(3, 0, 16)
			var ms runtime.MemStats
			var mallocs uint64
			dirty := 0 // measured rounds in which anything allocated
			served := uint64(0)
			for round := range 60 {
				dataplanetest.Send(t, pa.RTP, a.Local, pkts)
				runtime.ReadMemStats(&ms)
				before := ms.Mallocs
				want := served + uint64(len(pkts))
				for served < want {
					n := w.recv(s.fd)
					if n == 0 {
						continue // loopback delivery not finished yet
					}
					w.process(s, n)
					w.flush()
					served += uint64(n)
				}
				runtime.ReadMemStats(&ms)
				if round >= 10 { // after warm-up
					mallocs += ms.Mallocs - before
					if ms.Mallocs != before {
						dirty++
					}
				}
			}
			// Mallocs is process-wide: a stray allocation elsewhere (the
			// runtime, another test's goroutine winding down, the race
			// runtime) can land in a window. One allocation per packet or per
			// batch would dirty every round.
			if dirty > 5 {
				t.Fatalf("%d allocations while serving %d packets; %d of 50 rounds allocated", mallocs, 50*len(pkts), dirty)
			}
			if got := e.eps[a.ID].forks[0].copied.packets.Load(); got != served {
				t.Fatalf("copied %d of %d packets", got, served)
			}
		})
	}
}
