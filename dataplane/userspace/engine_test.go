//go:build linux

package userspace

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
)

var (
	lo4 = netip.MustParseAddr("127.0.0.1")
	lo6 = netip.MustParseAddr("::1")
)

const waitLimit = 10 * time.Second

func loHarness(ip netip.Addr) dataplanetest.Harness {
	return dataplanetest.Harness{LocalIP: ip, PeerIP: ip}
}

func TestNewValidatesConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"one pair", Config{PortRange: dataplane.PortRange{Min: 41000, Max: 41001}}, true},
		{"no pair", Config{PortRange: dataplane.PortRange{Min: 41001, Max: 41002}}, false},
		{"inverted", Config{PortRange: dataplane.PortRange{Min: 42000, Max: 41000}}, false},
		{"negative workers", Config{Workers: -1}, false},
		{"huge batch", Config{Batch: 5000}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := New(c.cfg)
			if c.ok != (err == nil) {
				t.Fatalf("New(%+v) error %v, want ok=%v", c.cfg, err, c.ok)
			}
			if err == nil {
				e.Close()
			} else if !errors.Is(err, dataplane.ErrInvalid) {
				t.Fatalf("New error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestPortExhaustionAndReuse(t *testing.T) {
	for _, ip := range []netip.Addr{lo4, lo6} {
		t.Run(ip.String(), func(t *testing.T) {
			e := newTestEngine(t, Config{PortRange: dataplane.PortRange{Min: 41101, Max: 41106}}) // pairs 41102, 41104
			if s := e.Stats(); s.PortsFree != 2 {
				t.Fatalf("PortsFree = %d, want 2", s.PortsFree)
			}
			var ids []dataplane.EndpointID
			ports := map[uint16]bool{}
			for range 2 {
				info, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: ip})
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				ids = append(ids, info.ID)
				ports[info.Local.Port()] = true
			}
			if !ports[41102] || !ports[41104] {
				t.Fatalf("ports %v, want 41102 and 41104", ports)
			}
			_, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: ip})
			if !errors.Is(err, dataplane.ErrPortsExhausted) {
				t.Fatalf("third open: %v, want ErrPortsExhausted", err)
			}
			if s := e.Stats(); s.PortsFree != 0 || s.Endpoints != 2 {
				t.Fatalf("Stats() = %+v, want 0 free, 2 endpoints", s)
			}
			if err := e.CloseEndpoint(ids[0]); err != nil {
				t.Fatal(err)
			}
			info, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: ip})
			if err != nil {
				t.Fatalf("open after close: %v", err)
			}
			if !ports[info.Local.Port()] {
				t.Fatalf("reopened on %s, outside the range", info.Local)
			}
		})
	}
}

func TestPortHeldElsewhereIsSkipped(t *testing.T) {
	// Another process (here: a plain socket) holds the first pair's RTCP port.
	var c *net.UDPConn
	base := 0
	for p := 41200; p < 41400 && c == nil; p += 4 {
		c, _ = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		base = p
	}
	if c == nil {
		t.Fatal("no free port to hold in 41200-41400")
	}
	defer c.Close()
	e := newTestEngine(t, Config{PortRange: dataplane.PortRange{Min: uint16(base), Max: uint16(base + 3)}})
	info, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
	if err != nil {
		t.Fatal(err)
	}
	if info.Local.Port() != uint16(base+2) {
		t.Fatalf("opened on %s, want port %d", info.Local, base+2)
	}
	if _, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4}); !errors.Is(err, dataplane.ErrPortsExhausted) {
		t.Fatalf("second open: %v, want ErrPortsExhausted", err)
	}
}

func TestOpenEndpointRejectsForeignAddress(t *testing.T) {
	e := newTestEngine(t, Config{})
	// 192.0.2.1 (RFC 5737 TEST-NET-1) is never a local address: bind fails
	// with EADDRNOTAVAIL, which is not exhaustion. No packet is sent.
	_, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: netip.MustParseAddr("192.0.2.1")})
	if err == nil || errors.Is(err, dataplane.ErrPortsExhausted) {
		t.Fatalf("open on a foreign address: %v", err)
	}
	if s := e.Stats(); s.PortsFree != testRange.Pairs() {
		t.Fatalf("PortsFree = %d after a failed open, want %d", s.PortsFree, testRange.Pairs())
	}
	_, err = e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: netip.MustParseAddrPort("[::1]:5000")})
	if !errors.Is(err, dataplane.ErrInvalid) {
		t.Fatalf("IPv6 remote on an IPv4 endpoint: %v, want ErrInvalid", err)
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	e, err := New(Config{PortRange: testRange, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Counted by name: goroutines an earlier test left may still be ending,
	// so the total alone says nothing about the workers.
	dataplanetest.WaitFor(t, waitLimit, func() (bool, string) {
		n := workerGoroutines()
		return n == 3, fmt.Sprintf("3 worker goroutines with 3 workers (now %d)", n)
	})
	h := loHarness(lo4)
	pa := dataplanetest.NewParty(t, h)
	var locals []netip.AddrPort
	var ids []dataplane.EndpointID
	for range 5 {
		info, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pa.Addr})
		if err != nil {
			t.Fatal(err)
		}
		locals = append(locals, info.Local)
		ids = append(ids, info.ID)
	}
	if err := e.Join(ids[0], ids[1], dataplane.Full); err != nil {
		t.Fatal(err)
	}
	if err := e.AddFork(ids[0], dataplane.Inbound, dataplane.ForkConfig{Recorder: pa.Addr, Source: ids[2]}); err != nil {
		t.Fatal(err)
	}
	dataplanetest.Send(t, pa.RTP, locals[0], dataplanetest.RTPRange(1, 0, 10))
	dataplanetest.Recv(t, pa.RTP, 20, waitLimit) // relay from ids[1] and copy from ids[2]
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Every port is free again: plain sockets can bind them.
	for _, l := range locals {
		for _, port := range []uint16{l.Port(), l.Port() + 1} {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo4, port)))
			if err != nil {
				t.Fatalf("port %d still held after Close: %v", port, err)
			}
			c.Close()
		}
	}
	dataplanetest.WaitFor(t, waitLimit, func() (bool, string) {
		n := runtime.NumGoroutine()
		return n <= before && workerGoroutines() == 0, describeGoroutines(n, before)
	})
}

// workerGoroutines counts the goroutines running a worker's loop.
func workerGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "userspace.(*worker).run(")
}

func describeGoroutines(n, want int) string {
	return fmt.Sprintf("goroutines to return to %d (now %d)", want, n)
}

func TestOversizedDatagramDropped(t *testing.T) {
	e := newTestEngine(t, Config{})
	h := loHarness(lo4)
	pa := dataplanetest.NewParty(t, h)
	a, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pa.Addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Join(a.ID, a.ID, dataplane.Full); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, maxDatagram+100)
	copy(big, dataplanetest.RTPPacket(5, 5))
	dataplanetest.Send(t, pa.RTP, a.Local, [][]byte{big})
	ok := dataplanetest.RTPRange(5, 6, 2)
	dataplanetest.Send(t, pa.RTP, a.Local, ok)
	dataplanetest.Expect(t, pa.RTP, a.Local, ok, waitLimit)
	s, err := e.EndpointStats(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dropped != 1 || s.RxPackets != 2 {
		t.Fatalf("stats %+v, want 1 dropped and 2 received", s)
	}
}

// TestSetForkModeWaitsForInFlightBatch holds a worker between deciding a
// batch (with its copies queued under Active) and sending it, mutes the fork,
// and checks that SetForkMode returns only after that batch has been sent.
func TestSetForkModeWaitsForInFlightBatch(t *testing.T) {
	e := newTestEngine(t, Config{Workers: 1})
	h := loHarness(lo4)
	pa, rec := dataplanetest.NewParty(t, h), dataplanetest.NewParty(t, h)
	a, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pa.Addr})
	if err != nil {
		t.Fatal(err)
	}
	src, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unhold := func() { releaseOnce.Do(func() { close(release) }) }
	defer unhold() // a failing test must not leave the worker held
	var flushed, returned atomic.Bool
	var hookOnce atomic.Bool
	e.lockWorkers()
	e.workers[0].beforeFlush = func() {
		if hookOnce.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
	}
	e.unlockWorkers()

	pkt := dataplanetest.RTPRange(9, 0, 1)
	dataplanetest.Send(t, pa.RTP, a.Local, pkt)
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the worker never decided the batch")
	}
	done := make(chan error, 1)
	go func() {
		err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Inactive)
		returned.Store(true)
		done <- err
	}()
	// Once the mode is stored, SetForkMode is at its barrier; it must stay
	// there while the batch is held. Give a wrong implementation the chance
	// to return early.
	f := e.eps[a.ID].forks[0]
	dataplanetest.WaitFor(t, waitLimit, func() (bool, string) {
		return f.mode.Load() == uint32(dataplane.Inactive), "the mode to be stored"
	})
	select {
	case err := <-done:
		t.Fatalf("SetForkMode returned (%v) while a batch with an Active copy was unsent", err)
	case <-time.After(20 * time.Millisecond):
	}
	flushed.Store(true)
	unhold()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !returned.Load() || !flushed.Load() {
		t.Fatal("SetForkMode did not return after the flush")
	}
	// The held copy was made under Active and left before SetForkMode returned.
	dataplanetest.Expect(t, rec.RTP, src.Local, pkt, waitLimit)
	dataplanetest.Send(t, pa.RTP, a.Local, dataplanetest.RTPRange(9, 1, 5))
	dataplanetest.WaitFor(t, waitLimit, func() (bool, string) {
		s, _ := e.ForkStats(a.ID, dataplane.Inbound)
		return s.MutedPackets == 5 && s.CopiedPackets == 1, "1 copied and 5 muted"
	})
	dataplanetest.ExpectNothingQueued(t, rec.RTP)
}

// TestConcurrentControlAndTraffic runs control operations against a stream of
// packets, for the race detector and for crashes; counters must add up.
func TestConcurrentControlAndTraffic(t *testing.T) {
	e := newTestEngine(t, Config{Workers: 2, Batch: 8})
	h := loHarness(lo4)
	pa, pb, rec := dataplanetest.NewParty(t, h), dataplanetest.NewParty(t, h), dataplanetest.NewParty(t, h)
	a, _ := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pa.Addr})
	b, _ := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pb.Addr})
	src, _ := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
	if err := e.Join(a.ID, b.ID, dataplane.Full); err != nil {
		t.Fatal(err)
	}
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	sent := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				sent <- n
				return
			default:
			}
			if _, err := pa.RTP.WriteToUDPAddrPort(dataplanetest.RTPPacket(1, uint16(n)), a.Local); err == nil {
				n++
			}
			if n%32 == 0 {
				runtime.Gosched()
			}
		}
	}()
	dataplanetest.WaitFor(t, waitLimit, func() (bool, string) {
		s, _ := e.EndpointStats(a.ID)
		return s.RxPackets >= 100, "traffic to flow"
	})
	for i := range 200 {
		mode := dataplane.Active
		if i%2 == 0 {
			mode = dataplane.Inactive
		}
		if err := e.SetForkMode(a.ID, dataplane.Inbound, mode); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			if err := e.Unjoin(a.ID, b.ID); err != nil {
				t.Fatal(err)
			}
			if err := e.Join(b.ID, a.ID, dataplane.Full); err != nil {
				t.Fatal(err)
			}
			c, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.CloseEndpoint(c.ID); err != nil {
				t.Fatal(err)
			}
		}
		_ = e.Stats()
	}
	close(stop)
	total := <-sent
	if total == 0 {
		t.Fatal("sent nothing")
	}
	// Every packet that was received was either copied or muted, exactly once.
	dataplanetest.WaitFor(t, waitLimit, func() (bool, string) {
		es, _ := e.EndpointStats(a.ID)
		fs, _ := e.ForkStats(a.ID, dataplane.Inbound)
		return es.RxPackets+es.Dropped > 0 && fs.CopiedPackets+fs.MutedPackets+e.SendErrors() == es.RxPackets,
			"copied+muted to equal received"
	})
}

// TestManyEndpointsNoGoroutines checks that endpoints cost descriptors, not
// goroutines, and that closing them returns every port.
func TestManyEndpointsNoGoroutines(t *testing.T) {
	e := newTestEngine(t, Config{Workers: 2})
	base := runtime.NumGoroutine()
	free := e.Stats().PortsFree
	var ids []dataplane.EndpointID
	for range 300 {
		info, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Fatalf("%d goroutines with 300 endpoints, %d before", n, base)
	}
	for i := 0; i+1 < len(ids); i += 2 {
		if err := e.Join(ids[i], ids[i+1], dataplane.Full); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if err := e.CloseEndpoint(id); err != nil {
			t.Fatal(err)
		}
	}
	if s := e.Stats(); s.PortsFree != free || s.Endpoints != 0 || s.Joins != 0 {
		t.Fatalf("Stats() = %+v after closing all, want %d ports free and nothing held", s, free)
	}
}

// TestCloseUnderTraffic closes the engine while a peer floods it.
func TestCloseUnderTraffic(t *testing.T) {
	before := runtime.NumGoroutine()
	e, err := New(Config{PortRange: testRange, Workers: 2, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	h := loHarness(lo4)
	pa, rec := dataplanetest.NewParty(t, h), dataplanetest.NewParty(t, h)
	a, _ := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pa.Addr})
	src, _ := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
	if err := e.Join(a.ID, a.ID, dataplane.Full); err != nil {
		t.Fatal(err)
	}
	if err := e.AddFork(a.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}); err != nil {
		t.Fatal(err)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		pkt := dataplanetest.RTPPacket(1, 1)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = pa.RTP.WriteToUDPAddrPort(pkt, a.Local) // refused once closed
		}
	}()
	dataplanetest.Recv(t, rec.RTP, 100, waitLimit)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-stopped
	if s := e.Stats(); s.Endpoints != 0 || s.Forks != 0 || s.CopiedPackets < 100 {
		t.Fatalf("Stats() after Close = %+v", s)
	}
	dataplanetest.WaitFor(t, waitLimit, func() (bool, string) {
		n := runtime.NumGoroutine()
		return n <= before, describeGoroutines(n, before)
	})
}
