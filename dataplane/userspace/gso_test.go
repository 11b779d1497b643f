//go:build linux

package userspace

import (
	"testing"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
	"github.com/recfork/recfork/internal/testenv"
)

// TestGSOMergesAndFallsBack checks, with the only worker held, that equal
// datagrams to one destination share one GSO message, that a different size
// or destination starts a new one, and that the fallback for a refused GSO
// message sends the same datagrams one by one and turns GSO off.
func TestGSOMergesAndFallsBack(t *testing.T) {
	if !gsoSupported() {
		testenv.Unavailable(t, "kernel without UDP_SEGMENT: the engine never merges here")
	}
	e := newTestEngine(t, Config{Workers: 1})
	h := loHarness(lo4)
	rec, other := dataplanetest.NewParty(t, h), dataplanetest.NewParty(t, h)
	src, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
	if err != nil {
		t.Fatal(err)
	}
	w := e.workers[0]
	w.mu.Lock()
	defer w.mu.Unlock()
	fd := e.eps[src.ID].socks[rtpIdx].fd
	recPeer, otherPeer := newPeer(rec.Addr, false), newPeer(other.Addr, false)
	var acct counter

	same := dataplanetest.RTPRange(4, 0, 3)
	odd := dataplanetest.RTPPacket(4, 3)[:100]
	for _, p := range same {
		w.queue(fd, recPeer, p, &acct, true)
	}
	w.queue(fd, recPeer, odd, &acct, true)
	w.queue(fd, otherPeer, same[0], &acct, true)
	q := w.out(fd)
	if q.n != 3 || q.segs[0] != 3 || q.segs[1] != 1 || q.segs[2] != 1 || q.niov != 5 {
		t.Fatalf("queue holds %d messages with segments %v over %d datagrams; want 3 messages [3 1 1] over 5",
			q.n, q.segs[:q.n], q.niov)
	}
	w.flush()
	dataplanetest.Expect(t, rec.RTP, src.Local, append(append([][]byte{}, same...), odd), waitLimit)
	dataplanetest.Expect(t, other.RTP, src.Local, same[:1], waitLimit)
	if acct.packets.Load() != 5 {
		t.Fatalf("counted %d datagrams sent, want 5", acct.packets.Load())
	}

	// The fallback, as after a refusal.
	for _, p := range same {
		w.queue(fd, recPeer, p, &acct, true)
	}
	q = w.out(fd)
	w.sendSegments(q, 0)
	q.n, q.niov, w.nouts = 0, 0, 0
	dataplanetest.Expect(t, rec.RTP, src.Local, same, waitLimit)
	if w.gso {
		t.Fatal("GSO still on after a refusal")
	}
	if acct.packets.Load() != 8 {
		t.Fatalf("counted %d datagrams sent, want 8", acct.packets.Load())
	}
}
