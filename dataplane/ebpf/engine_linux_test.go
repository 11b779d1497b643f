//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
	"github.com/recfork/recfork/dataplane/userspace"
	"github.com/recfork/recfork/internal/testenv"
)

// nsEngine runs OpenEndpoint in the engine's namespace, where the media
// sockets must be bound; every other call works from any thread because the
// engine's sockets and kernel objects already belong to that namespace.
type nsEngine struct {
	*Engine
	ns *testenv.Netns
}

func (w nsEngine) OpenEndpoint(cfg dataplane.EndpointConfig) (info dataplane.EndpointInfo, err error) {
	_ = w.ns.Do(func() error {
		info, err = w.Engine.OpenEndpoint(cfg)
		return nil
	})
	return info, err
}

// TestContract runs the data-plane contract suite against the eBPF engine:
// the engine in one namespace, the parties and recorders in another behind a
// veth pair, so every copy is made by the TCX programs.
func TestContract(t *testing.T) {
	for _, f := range families {
		for _, gso := range []bool{false, true} {
			name := f.name
			if gso {
				// As controlplane.NewEngine builds it: relays may leave
				// as UDP GSO batches. This variant keeps the relays in
				// userspace (Config.UserspaceRelay), so the suite
				// covers both relay paths under the kernel forks.
				name += "/GSO userspace relays"
			}
			t.Run(name, func(t *testing.T) {
				tp := newTopology(t, f, viaSame)
				listen := func(ip netip.Addr) func(*testing.T, int) (*net.UDPConn, error) {
					return func(t *testing.T, port int) (c *net.UDPConn, err error) {
						_ = tp.remote.Do(func() error {
							c, err = net.ListenUDP(f.udp, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
							return nil
						})
						return c, err
					}
				}
				newPolicyEngine := func(t *testing.T, p dataplane.LatchPolicy) dataplane.Engine {
					mcfg := userspace.Config{PortRange: testRange, GSORelays: gso, LatchPolicy: p}
					e := newEngineCfg(t, tp.eng, tp.ifaces, mcfg, gso)
					// Whatever the case left joined, before Close.
					t.Cleanup(func() { checkIndexes(t, e) })
					return nsEngine{e, tp.eng}
				}
				dataplanetest.Run(t, dataplanetest.Harness{
					NewEngine: func(t *testing.T) dataplane.Engine {
						return newPolicyEngine(t, dataplane.LatchAddress)
					},
					NewPolicyEngine: newPolicyEngine,
					LocalIP:         tp.engIP,
					PeerIP:          tp.remoteIP,
					ListenPeer:      listen(tp.remoteIP),
					ForeignIP:       tp.foreignIP,
					ListenForeign:   listen(tp.foreignIP),
				})
			})
		}
	}
}

// TestMuteUnderTraffic mutes and unmutes a fork while RTP flows and checks
// that no packet sent after SetForkMode(Inactive) returned is ever copied.
func TestMuteUnderTraffic(t *testing.T) {
	tp := newTopology(t, families[0], viaSame)
	e := newEngine(t, tp.eng, tp.ifaces)
	party := listenPair(t, tp.remote, tp.remoteIP)
	rec := listenPair(t, tp.rec, tp.recIP)
	_ = rec.rtp.SetReadBuffer(1 << 20)
	a := openEndpoint(t, tp.eng, e, tp.engIP, party.addr)
	src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
		t.Fatal(err)
	}

	// The recorder: every copy's counter (RTP timestamp field) in order.
	var (
		mu     sync.Mutex
		copies []uint32
		got    = make(chan struct{}, 1)
	)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		for {
			n, err := rec.rtp.Read(buf)
			if err != nil {
				return
			}
			if n >= 12 {
				mu.Lock()
				copies = append(copies, binary.BigEndian.Uint32(buf[4:]))
				mu.Unlock()
				select {
				case got <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { rec.rtp.Close(); <-readerDone })
	seen := func() int { mu.Lock(); defer mu.Unlock(); return len(copies) }

	// The sender: bursts of 16, each followed by a wait until the fork
	// program has accounted for every packet sent (copied or muted), so no
	// packet sits in a queue unseen when the sender pauses.
	var started atomic.Uint32
	pause := make(chan chan struct{})
	stop := make(chan struct{})
	senderErr := make(chan error, 1)
	go func() {
		pkt := rtpPayload(0, 40)
		var seq uint32
		for {
			for range 16 {
				seq++
				started.Store(seq)
				binary.BigEndian.PutUint32(pkt[4:], seq)
				if _, err := party.rtp.WriteToUDPAddrPort(pkt, a.Local); err != nil {
					senderErr <- err
					return
				}
			}
			deadline := time.Now().Add(waitLimit)
			for {
				s, err := e.ForkStats(a.ID, dataplane.Inbound)
				if err != nil {
					senderErr <- err
					return
				}
				if s.CopiedPackets+s.MutedPackets == uint64(seq) {
					break
				}
				if time.Now().After(deadline) {
					senderErr <- errors.New("fork counters never caught up with the sender")
					return
				}
				runtime.Gosched()
			}
			select {
			case resume := <-pause:
				<-resume
			case <-stop:
				senderErr <- nil
				return
			default:
			}
		}
	}()
	pauseSender := func() chan struct{} {
		resume := make(chan struct{})
		select {
		case pause <- resume:
		case err := <-senderErr:
			t.Fatalf("sender: %v", err)
		}
		return resume
	}
	waitCopies := func(n int) {
		deadline := time.After(waitLimit)
		for seen() < n {
			select {
			case <-got:
			case <-deadline:
				t.Fatalf("only %d copies arrived, want %d", seen(), n)
			}
		}
	}

	type window struct{ after, upTo uint32 }
	var muted []window
	for round := range 5 {
		waitCopies(seen() + 50)
		if err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Inactive); err != nil {
			t.Fatal(err)
		}
		w := window{after: started.Load()}
		// Traffic goes on while muted.
		for started.Load() < w.after+200 {
			select {
			case err := <-senderErr:
				t.Fatalf("sender: %v", err)
			default:
				runtime.Gosched()
			}
		}
		resume := pauseSender()
		w.upTo = started.Load()
		muted = append(muted, w)
		if err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Active); err != nil {
			t.Fatal(err)
		}
		close(resume)
		_ = round
	}
	waitCopies(seen() + 50)
	close(stop)
	if err := <-senderErr; err != nil {
		t.Fatalf("sender: %v", err)
	}
	// Fence: one more copy after everything, then judge every copy seen.
	fence := rtpPayload(1, 40)
	binary.BigEndian.PutUint32(fence[4:], 1<<31)
	send(t, party.rtp, a.Local, fence)
	deadline := time.After(waitLimit)
	for {
		mu.Lock()
		done := len(copies) > 0 && copies[len(copies)-1] == 1<<31
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-got:
		case <-deadline:
			t.Fatal("fence copy never arrived")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range copies {
		for _, w := range muted {
			if c > w.after && c <= w.upTo {
				t.Fatalf("packet %d was copied although sent after the mute returned (muted window %d-%d)", c, w.after+1, w.upTo)
			}
		}
	}
	s, err := e.ForkStats(a.ID, dataplane.Inbound)
	if err != nil {
		t.Fatal(err)
	}
	var inWindows uint64
	for _, w := range muted {
		inWindows += uint64(w.upTo - w.after)
	}
	if s.MutedPackets < inWindows {
		t.Fatalf("muted %d packets, want at least the %d sent while muted", s.MutedPackets, inWindows)
	}
	t.Logf("%d copies, %d muted over %d mute windows", len(copies), s.MutedPackets, len(muted))
}

// TestCloseLeavesNothing checks that Close detaches every program and frees
// every map and goroutine, and that the engine refuses work afterwards.
func TestCloseLeavesNothing(t *testing.T) {
	tp := newTopology(t, families[0], viaOther)
	goroutines := runtime.NumGoroutine()
	e := newEngine(t, tp.eng, tp.ifaces)
	rec := listenPair(t, tp.rec, tp.recIP)
	a := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
		t.Fatal(err)
	}
	var mapIDs []ebpf.MapID
	for _, m := range []*ebpf.Map{e.objs.Streams, e.objs.Counters, e.objs.Stats, e.barrier, e.barrierInner} {
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		mapIDs = append(mapIDs, id)
	}
	attached := func() int {
		n := 0
		tp.eng.MustDo(t, func() error {
			for _, name := range tp.ifaces {
				ifc, err := net.InterfaceByName(name)
				if err != nil {
					return err
				}
				for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
					r, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: at})
					if err != nil {
						return err
					}
					n += len(r.Programs)
				}
			}
			return nil
		})
		return n
	}
	if n := attached(); n != 2*len(tp.ifaces) {
		t.Fatalf("%d programs attached, want %d", n, 2*len(tp.ifaces))
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if n := attached(); n != 0 {
		t.Fatalf("%d programs still attached after Close", n)
	}
	if err := e.Close(); !errors.Is(err, dataplane.ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	for _, err := range []error{
		e.AddFork(a.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}),
		e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Inactive),
		e.RemoveFork(a.ID, dataplane.Inbound),
	} {
		if !errors.Is(err, dataplane.ErrClosed) {
			t.Fatalf("call after Close: %v, want ErrClosed", err)
		}
	}
	// The kernel frees maps once their last reference is gone, a little
	// after the file descriptors are closed.
	deadline := time.Now().Add(waitLimit)
	for _, id := range mapIDs {
		for {
			m, err := ebpf.NewMapFromID(id)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err == nil {
				m.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("map %d still exists after Close (%v)", id, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before the engine", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNextHopFollowsNeighbour changes the MAC address of the copies' next
// hop (the recorder on the same link, or the router in front of it) and
// checks that copies follow once the kernel's neighbour entry changes.
func TestNextHopFollowsNeighbour(t *testing.T) {
	for _, shape := range []string{viaOther, viaRouter} {
		t.Run(shape, func(t *testing.T) {
			f := families[0]
			tp := newTopology(t, f, shape)
			e := newEngine(t, tp.eng, tp.ifaces)
			party := listenPair(t, tp.remote, tp.remoteIP)
			rec := listenPair(t, tp.rec, tp.recIP)
			a := openEndpoint(t, tp.eng, e, tp.engIP, party.addr)
			src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
			if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
				t.Fatal(err)
			}
			first := rtpN(1, 1, 3)
			send(t, party.rtp, a.Local, first...)
			expect(t, rec.rtp, src.Local, first...)

			// The next hop's interface gets a new MAC; the platform
			// learns it the way a gratuitous ARP would teach it.
			hopNS, hopIP := tp.rec, tp.recIP
			if shape == viaRouter {
				hopNS, hopIP = tp.recRouter, f.addr(2, 2)
			}
			const newMAC = "02:00:00:00:77:77"
			hopNS.MustIP(t, "link", "set", "dev", devWithAddr(t, hopNS, hopIP), "address", newMAC)
			tp.eng.MustIP(t, "neigh", "replace", hopIP.String(), "lladdr", newMAC, "dev", tp.recLink, "nud", "reachable")

			// Copies to the old MAC are dropped by the next hop; keep
			// sending until one arrives (the engine updates the map
			// when the notification comes).
			deadline := time.Now().Add(waitLimit)
			buf := make([]byte, 2048)
			for seq := uint16(100); ; seq++ {
				if time.Now().After(deadline) {
					t.Fatal("no copy reached the recorder after the next hop's MAC changed")
				}
				send(t, party.rtp, a.Local, rtpPayload(seq, 10))
				_ = rec.rtp.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if n, _, err := rec.rtp.ReadFromUDPAddrPort(buf); err == nil && n > 0 {
					break
				}
			}
			e.mu.Lock()
			fk := e.forks[forkID{a.ID, dataplane.Inbound}]
			mac := net.HardwareAddr(fk.val.DstMac[:]).String()
			e.mu.Unlock()
			if mac != newMAC {
				t.Fatalf("stream entry has next-hop MAC %s, want %s", mac, newMAC)
			}
		})
	}
}

// TestRefreshAsksOncePerNextHop: the periodic re-resolution asks the kernel
// about each route and next hop once per pass, however many forks and
// relays share them, and leaves every one of them resolved.
func TestRefreshAsksOncePerNextHop(t *testing.T) {
	f := families[0]
	tp := newTopology(t, f, viaRouter)
	e := newEngine(t, tp.eng, tp.ifaces)
	rec := listenPair(t, tp.rec, tp.recIP)
	const calls = 12
	var ids []dataplane.EndpointID
	for range calls {
		pa, pb := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
		a := openEndpoint(t, tp.eng, e, tp.engIP, pa.addr)
		b := openEndpoint(t, tp.eng, e, tp.engIP, pb.addr)
		src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
		if err := e.Join(a.ID, b.ID, dataplane.Full); err != nil {
			t.Fatal(err)
		}
		if !e.RelayedInKernel(a.ID, b.ID) || !e.RelayedInKernel(b.ID, a.ID) {
			t.Fatal("join not relayed in the kernel: the pass would not cover relays")
		}
		if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
			t.Fatal(err)
		}
		if err := e.AddFork(b.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID, b.ID)
	}
	asked := func() uint32 {
		e.nl.mu.Lock()
		defer e.nl.mu.Unlock()
		return e.nl.seq
	}
	before := asked()
	e.reresolve()
	n := asked() - before
	// Two routes (to the recorder, to the remotes), each a route query
	// and at most three about its next hop; without the memo a pass
	// asks 3-4 times for each of the 24 forks and 24 relays.
	if n > 8 {
		t.Fatalf("a refresh pass over %d forks and %d relays sent %d netlink requests, want at most 8", 2*calls, 2*calls, n)
	}
	t.Logf("a refresh pass over %d forks and %d relays sent %d netlink requests", 2*calls, 2*calls, n)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		for _, dir := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
			if fk := e.forks[forkID{id, dir}]; fk != nil && fk.val.Flags&flagResolved == 0 {
				t.Fatalf("fork %d %s unresolved after the pass", id, dir)
			}
		}
	}
	for id, r := range e.relays {
		if r.val.Flags&flagResolved == 0 {
			t.Fatalf("relay %d -> %d unresolved after the pass", id.from, id.to)
		}
	}
}

// devWithAddr names the interface of ns that holds ip.
func devWithAddr(t *testing.T, ns *testenv.Netns, ip netip.Addr) string {
	t.Helper()
	var name string
	ns.MustDo(t, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			addrs, err := ifc.Addrs()
			if err != nil {
				return err
			}
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == ip {
					name = ifc.Name
				}
			}
		}
		if name == "" {
			return fmt.Errorf("no interface holds %s", ip)
		}
		return nil
	})
	return name
}

// TestNewErrors covers configuration errors that need no privileges.
func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, dataplane.ErrInvalid) {
		t.Fatalf("New without Media: %v, want ErrInvalid", err)
	}
}

// TestAddForkIPVersionMismatch: a copy is the original rewritten in place,
// so an IPv4 stream cannot be copied to an IPv6 recorder.
func TestAddForkIPVersionMismatch(t *testing.T) {
	tp := newTopology(t, families[0], viaSame)
	e := newEngine(t, tp.eng, tp.ifaces)
	a := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: netip.MustParseAddrPort("[fd09::9]:30000"), Source: src.ID})
	if !errors.Is(err, dataplane.ErrNotSupported) {
		t.Fatalf("AddFork to an IPv6 recorder from IPv4: %v, want ErrNotSupported", err)
	}
	if s := e.Stats(); s.Forks != 0 {
		t.Fatalf("%d forks after a refused AddFork", s.Forks)
	}
}

// TestUnresolvedRecorder: a recorder nobody answers for yet is installed
// after ResolveTimeout, its packets count as failed, and copying starts by
// itself once the recorder appears; Close ends a pending AddFork at once.
func TestUnresolvedRecorder(t *testing.T) {
	tp := newTopology(t, families[0], viaOther)
	var e *Engine
	tp.eng.MustDo(t, func() error {
		media, err := userspace.New(userspace.Config{PortRange: testRange})
		if err != nil {
			return err
		}
		e, err = New(Config{Media: media, Interfaces: tp.ifaces, Logger: slog.New(slog.DiscardHandler), ResolveTimeout: 200 * time.Millisecond})
		return err
	})
	t.Cleanup(func() { e.Close() })
	party := listenPair(t, tp.remote, tp.remoteIP)
	a := openEndpoint(t, tp.eng, e, tp.engIP, party.addr)
	src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	ghost := netip.MustParseAddr("10.2.0.77")
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: netip.AddrPortFrom(ghost, 30000), Source: src.ID}); err != nil {
		t.Fatal(err)
	}
	send(t, party.rtp, a.Local, rtpN(1, 1, 5)...)
	deadline := time.Now().Add(waitLimit)
	for {
		ks, err := e.KernelStats()
		if err != nil {
			t.Fatal(err)
		}
		if ks.Failed == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d packets counted as failed, want 5", ks.Failed)
		}
		time.Sleep(time.Millisecond)
	}

	// The recorder comes up; the engine keeps probing and follows.
	tp.rec.MustIP(t, "addr", "add", ghost.String()+"/24", "dev", recDevice(t, tp.rec), "nodad")
	var rec *net.UDPConn
	tp.rec.MustDo(t, func() (err error) {
		rec, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ghost, 30000)))
		return err
	})
	defer rec.Close()
	buf := make([]byte, 2048)
	for seq := uint16(10); ; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("no copy reached the recorder after it appeared")
		}
		send(t, party.rtp, a.Local, rtpPayload(seq, 10))
		_ = rec.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, _, err := rec.ReadFromUDPAddrPort(buf); err == nil && n > 0 {
			break
		}
	}

	// An AddFork waiting for a next hop ends with ErrClosed when the
	// engine closes.
	other := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	errc := make(chan error, 1)
	go func() {
		errc <- e.AddFork(other.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: netip.MustParseAddrPort("10.2.0.88:30000"), Source: src.ID})
	}()
	e.mu.Lock()
	changed := e.changed
	e.mu.Unlock()
	select {
	case <-changed: // the pending AddFork's probe started
	case <-time.After(waitLimit):
		t.Fatal("no neighbour notification for the pending AddFork's probe")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, dataplane.ErrClosed) && err != nil {
		t.Fatalf("pending AddFork after Close: %v, want ErrClosed or success before it", err)
	}
}

func recDevice(t *testing.T, ns *testenv.Netns) string {
	t.Helper()
	var name string
	ns.MustDo(t, func() error {
		ifs, err := net.Interfaces()
		for _, ifc := range ifs {
			if len(ifc.HardwareAddr) == 6 {
				name = ifc.Name
			}
		}
		return err
	})
	return name
}

// TestForeignSourceNotCopied: an endpoint with a signalled remote and no
// latching accepts only that remote, and its inbound copies follow the same
// rule, also after SetRemote: the kernel guard drops the stranger's packets.
func TestForeignSourceNotCopied(t *testing.T) {
	tp := newTopology(t, families[0], viaSame)
	e := newEngine(t, tp.eng, tp.ifaces)
	pa, pc := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
	rec := listenPair(t, tp.rec, tp.recIP)
	a := openEndpoint(t, tp.eng, e, tp.engIP, pa.addr)
	src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name           string
		good, stranger *pair
	}{{"signalled remote", pa, pc}, {"after SetRemote", pc, pa}} {
		if step.good == pc {
			if err := e.SetRemote(a.ID, pc.addr); err != nil {
				t.Fatal(err)
			}
		}
		before, err := e.KernelStats()
		if err != nil {
			t.Fatal(err)
		}
		send(t, step.stranger.rtp, a.Local, rtpN(0xbad, 1, 5)...)
		good := rtpN(0x600d, 1, 5)
		send(t, step.good.rtp, a.Local, good...)
		// The recorder's next datagrams are the accepted ones: none of
		// the stranger's was copied.
		expect(t, rec.rtp, src.Local, good...)
		deadline := time.Now().Add(waitLimit)
		for {
			after, err := e.KernelStats()
			if err != nil {
				t.Fatal(err)
			}
			d := after.Guard - before.Guard
			if d == 5 {
				break
			}
			if d > 5 || time.Now().After(deadline) {
				t.Fatalf("%s: %d packets dropped by the guard, want 5", step.name, d)
			}
			time.Sleep(time.Millisecond)
		}
		dataplanetest.ExpectNothingQueued(t, rec.rtp)
	}
}

// TestLoopbackForkInUserspace: loopback traffic never crosses the media
// interfaces, so a fork of a loopback endpoint is made by Media; it still
// copies, mutes and counts like any fork, and only once.
func TestLoopbackForkInUserspace(t *testing.T) {
	tp := newTopology(t, families[0], viaSame)
	e := newEngine(t, tp.eng, tp.ifaces)
	lo := netip.MustParseAddr("127.0.0.1")
	party, rec := listenPair(t, tp.eng, lo), listenPair(t, tp.eng, lo)
	a := openEndpoint(t, tp.eng, e, lo, party.addr)
	src := openEndpoint(t, tp.eng, e, lo, netip.AddrPort{})
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
		t.Fatal(err)
	}
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); !errors.Is(err, dataplane.ErrExists) {
		t.Fatalf("second AddFork: %v, want ErrExists", err)
	}
	first := rtpN(0x10, 1, 10)
	send(t, party.rtp, a.Local, first...)
	expect(t, rec.rtp, src.Local, first...)
	if err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Inactive); err != nil {
		t.Fatal(err)
	}
	send(t, party.rtp, a.Local, rtpN(0x10, 11, 5)...)
	// Unmute only once Media has taken the muted packets in.
	waitFork(t, e, a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 10, CopiedBytes: sumLen(first), MutedPackets: 5, MutedBytes: sumLen(rtpN(0x10, 11, 5))})
	if err := e.SetForkMode(a.ID, dataplane.Inbound, dataplane.Active); err != nil {
		t.Fatal(err)
	}
	last := rtpN(0x10, 16, 3)
	send(t, party.rtp, a.Local, last...)
	expect(t, rec.rtp, src.Local, last...) // directly after the first: nothing muted leaked
	waitFork(t, e, a.ID, dataplane.Inbound, dataplane.ForkStats{CopiedPackets: 13, CopiedBytes: sumLen(first, last), MutedPackets: 5, MutedBytes: sumLen(rtpN(0x10, 11, 5))})
	if s := e.Stats(); s.Forks != 1 || s.CopiedPackets != 13 || s.MutedPackets != 5 {
		t.Fatalf("engine stats %+v", s)
	}
	if err := e.RemoveFork(a.ID, dataplane.Inbound); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ForkStats(a.ID, dataplane.Inbound); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("ForkStats after RemoveFork: %v", err)
	}
	if s := e.Stats(); s.Forks != 0 {
		t.Fatalf("%d forks after RemoveFork", s.Forks)
	}
}

// TestMapEntriesReturnToZero adds and removes many forks from several
// goroutines (RemoveFork, CloseEndpoint, SetForkMode at the same time) and
// checks that the kernel's stream table ends empty and slots are reused.
func TestMapEntriesReturnToZero(t *testing.T) {
	tp := newTopology(t, families[0], viaSame)
	e := newEngine(t, tp.eng, tp.ifaces)
	rec := listenPair(t, tp.rec, tp.recIP)
	src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	entries := func() int {
		n := 0
		var k rtpforkStreamKey
		var v rtpforkStreamValue
		for it := e.objs.Streams.Iterate(); it.Next(&k, &v); {
			n++
		}
		return n
	}
	const workers, perWorker = 4, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				var info dataplane.EndpointInfo
				if err := tp.eng.Do(func() (err error) {
					info, err = e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: tp.engIP})
					return err
				}); err != nil {
					errc <- err
					return
				}
				for _, d := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
					if err := e.AddFork(info.ID, d, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
						errc <- err
						return
					}
				}
				if err := e.SetForkMode(info.ID, dataplane.Inbound, dataplane.Inactive); err != nil {
					errc <- err
					return
				}
				var err error
				if (w+i)%2 == 0 {
					err = errors.Join(e.RemoveFork(info.ID, dataplane.Inbound), e.RemoveFork(info.ID, dataplane.Outbound), e.CloseEndpoint(info.ID))
				} else {
					err = e.CloseEndpoint(info.ID)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if n := entries(); n != 0 {
		t.Fatalf("%d stream entries left", n)
	}
	e.mu.Lock()
	forks, slots := len(e.forks), e.nextSlot
	e.mu.Unlock()
	// Each worker holds at most two forks and two being settled.
	if forks != 0 || slots > 4*workers {
		t.Fatalf("%d forks left, %d slots ever used by %d workers", forks, slots, workers)
	}
	if s := e.Stats(); s.Forks != 0 || s.Endpoints != 1 {
		t.Fatalf("stats %+v, want no forks and the source endpoint only", s)
	}
	checkIndexes(t, e)
}

// TestFullRangeInTheKernel fills a small port range: every endpoint the media
// engine can open, each forked both ways and joined, fits the kernel's tables
// sized from that range, and it fits again after all of it is removed, as
// the counter slots come back.
func TestFullRangeInTheKernel(t *testing.T) {
	tp := newTopology(t, families[0], viaSame)
	e := newEngineWith(t, tp.eng, tp.ifaces, userspace.Config{PortRange: dataplane.PortRange{Min: 30000, Max: 30007}})
	if want := sizesFor(4); e.sizes != want {
		t.Fatalf("tables sized %+v for a range of 4 pairs, want %+v", e.sizes, want)
	}
	for m, want := range map[*ebpf.Map]uint32{e.objs.Streams: 8, e.objs.Latches: 8, e.objs.Counters: 16, e.objs.RelayStats: 16} {
		if m.MaxEntries() != want {
			t.Errorf("%v holds %d entries, want %d", m, m.MaxEntries(), want)
		}
	}
	rec := listenPair(t, tp.rec, tp.recIP)
	var eps []dataplane.EndpointID
	for range 4 {
		party := listenPair(t, tp.remote, tp.remoteIP)
		eps = append(eps, openEndpoint(t, tp.eng, e, tp.engIP, party.addr).ID)
	}
	if err := tp.eng.Do(func() error {
		_, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: tp.engIP})
		return err
	}); !errors.Is(err, dataplane.ErrPortsExhausted) {
		t.Fatalf("fifth endpoint in a range of four pairs: %v, want ErrPortsExhausted", err)
	}
	count := func(m *ebpf.Map, v any) int {
		n := 0
		var k rtpforkStreamKey
		for it := m.Iterate(); it.Next(&k, v); {
			n++
		}
		return n
	}
	dirs := []dataplane.Direction{dataplane.Inbound, dataplane.Outbound}
	for round := range 3 {
		for i, ep := range eps {
			for _, d := range dirs {
				if err := e.AddFork(ep, d, dataplane.ForkConfig{Recorder: rec.addr, Source: eps[(i+2)%4]}); err != nil {
					t.Fatalf("round %d: fork %d %s: %v", round, ep, d, err)
				}
			}
		}
		for i := 0; i < len(eps); i += 2 {
			if err := e.Join(eps[i], eps[i+1], dataplane.Full); err != nil {
				t.Fatalf("round %d: join: %v", round, err)
			}
		}
		e.mu.Lock()
		for id, f := range e.forks {
			if f.media {
				t.Errorf("round %d: fork %v left to userspace: %s", round, id, f.why)
			}
		}
		relays, forks := len(e.relays), len(e.forks)
		e.mu.Unlock()
		if forks != 8 || relays != 4 {
			t.Fatalf("round %d: %d forks and %d kernel relays, want 8 and 4 (why: %v)", round, forks, relays, e.relayWhy)
		}
		checkIndexes(t, e)
		var sv rtpforkStreamValue
		var lv rtpforkLatchValue
		if n, l := count(e.objs.Streams, &sv), count(e.objs.Latches, &lv); n != 8 || l != 8 {
			t.Fatalf("round %d: %d stream and %d latch entries, want 8 and 8", round, n, l)
		}
		for i := 0; i < len(eps); i += 2 {
			if err := e.Unjoin(eps[i], eps[i+1]); err != nil {
				t.Fatalf("round %d: unjoin: %v", round, err)
			}
		}
		for _, ep := range eps {
			for _, d := range dirs {
				if err := e.RemoveFork(ep, d); err != nil {
					t.Fatalf("round %d: remove fork: %v", round, err)
				}
			}
		}
		if n := count(e.objs.Streams, &sv); n != 0 {
			t.Fatalf("round %d: %d stream entries left", round, n)
		}
		checkIndexes(t, e)
	}
}

// checkIndexes checks that joinsOf and relaysOf index exactly the joins and
// the kernel relays by both their endpoints, and sourced the forks by source.
func checkIndexes(t *testing.T, e *Engine) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	joins, relays := make(pairIndex), make(pairIndex)
	for from, tos := range e.out {
		for to := range tos {
			joins.add(relayID{from, to})
		}
	}
	for id := range e.relays {
		relays.add(id)
	}
	if !maps.EqualFunc(joins, e.joinsOf, maps.Equal) {
		t.Errorf("joinsOf %v, the joins give %v", e.joinsOf, joins)
	}
	if !maps.EqualFunc(relays, e.relaysOf, maps.Equal) {
		t.Errorf("relaysOf %v, the relays give %v", e.relaysOf, relays)
	}
	sourced := make(map[dataplane.EndpointID]map[forkID]struct{})
	for id, f := range e.forks {
		if sourced[f.source] == nil {
			sourced[f.source] = make(map[forkID]struct{})
		}
		sourced[f.source][id] = struct{}{}
	}
	if !maps.EqualFunc(sourced, e.sourced, maps.Equal) {
		t.Errorf("sourced %v, the forks give %v", e.sourced, sourced)
	}
}

// TestReattachAfterRecreate deletes the media interface under a running
// fork and creates it again with the same name: the engine attaches to the
// new device and copies resume.
func TestReattachAfterRecreate(t *testing.T) {
	eng, peer := testenv.NewNetns(t), testenv.NewNetns(t)
	aName, bName := testenv.UniqueName("ra"), testenv.UniqueName("rb")
	create := func() {
		t.Helper()
		if out, err := exec.Command("ip", "link", "add", aName, "netns", eng.Name, "type", "veth", "peer", "name", bName, "netns", peer.Name).CombinedOutput(); err != nil {
			t.Fatalf("create veth: %v: %s", err, out)
		}
		eng.MustIP(t, "addr", "add", "10.70.0.1/24", "dev", aName, "nodad")
		peer.MustIP(t, "addr", "add", "10.70.0.2/24", "dev", bName, "nodad")
		eng.MustIP(t, "link", "set", aName, "up")
		peer.MustIP(t, "link", "set", bName, "up")
	}
	create()
	engIP, peerIP := netip.MustParseAddr("10.70.0.1"), netip.MustParseAddr("10.70.0.2")
	e := newEngine(t, eng, []string{aName})
	party, rec := listenPair(t, peer, peerIP), listenPair(t, peer, peerIP)
	a := openEndpoint(t, eng, e, engIP, party.addr)
	src := openEndpoint(t, eng, e, engIP, netip.AddrPort{})
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
		t.Fatal(err)
	}
	first := rtpN(3, 1, 3)
	send(t, party.rtp, a.Local, first...)
	expect(t, rec.rtp, src.Local, first...)

	eng.MustIP(t, "link", "del", aName)
	create()
	deadline := time.Now().Add(waitLimit)
	buf := make([]byte, 2048)
	for seq := uint16(100); ; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("no copy after the interface was created again")
		}
		send(t, party.rtp, a.Local, rtpPayload(seq, 10))
		_ = rec.rtp.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, _, err := rec.rtp.ReadFromUDPAddrPort(buf); err == nil && n > 0 {
			break
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	var n int
	eng.MustDo(t, func() error {
		ifc, err := net.InterfaceByName(aName)
		if err != nil {
			return err
		}
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			r, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: at})
			if err != nil {
				return err
			}
			n += len(r.Programs)
		}
		return nil
	})
	if n != 0 {
		t.Fatalf("%d programs left on the re-created interface after Close", n)
	}
}
