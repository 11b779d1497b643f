//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/userspace"
	"github.com/recfork/recfork/internal/testenv"
)

// testRange keeps this package's endpoints off the ranges other packages'
// tests use (each test also runs in its own namespaces).
var testRange = dataplane.PortRange{Min: 43000, Max: 44999}

const waitLimit = 10 * time.Second

// family holds the addresses of one IP version for the test topologies.
type family struct {
	name string
	// net returns the address .host of subnet n ("10.n.0.host" or
	// "fd0n::host"), and prefix its length.
	addr   func(n, host int) netip.Addr
	prefix int
	udp    string
}

var families = []family{
	{"IPv4", func(n, h int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(n), 0, byte(h)}) }, 24, "udp4"},
	{"IPv6", func(n, h int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd0%d::%d", n, h)) }, 64, "udp6"},
}

func (f family) cidr(n, h int) string { return fmt.Sprintf("%s/%d", f.addr(n, h), f.prefix) }

// topology is the engine's namespace with a remote party and recorders
// reachable in one of three ways.
type topology struct {
	eng, remote, rec *testenv.Netns
	ifaces           []string // the engine's interfaces to attach to
	engIP            netip.Addr
	foreignIP        netip.Addr // another host beside the remote party
	remoteIP, recIP  netip.Addr
	remoteLink       string // the remote party's interface
	recLink          string // the engine's interface the copies leave by
	recRouter        *testenv.Netns
}

const (
	viaOther  = "copies via another interface"
	viaSame   = "copies via the same interface"
	viaRouter = "recorder behind a router"
)

func newTopology(t *testing.T, f family, shape string) *topology {
	t.Helper()
	tp := &topology{eng: testenv.NewNetns(t), remote: testenv.NewNetns(t)}
	v1 := testenv.NewVeth(t, tp.eng, tp.remote, f.cidr(1, 1), f.cidr(1, 2))
	tp.engIP, tp.remoteIP, tp.remoteLink = f.addr(1, 1), f.addr(1, 2), v1.BName
	tp.ifaces = []string{v1.AName}
	// A second host on the remote's link, for injected media.
	tp.foreignIP = f.addr(1, 3)
	tp.remote.MustIP(t, "addr", "add", f.cidr(1, 3), "dev", v1.BName, "nodad")
	switch shape {
	case viaSame:
		tp.rec, tp.recIP, tp.recLink = tp.remote, tp.remoteIP, v1.AName
	case viaOther:
		tp.rec = testenv.NewNetns(t)
		v2 := testenv.NewVeth(t, tp.eng, tp.rec, f.cidr(2, 1), f.cidr(2, 2))
		tp.recIP, tp.recLink = f.addr(2, 2), v2.AName
		tp.ifaces = append(tp.ifaces, v2.AName)
	case viaRouter:
		tp.rec, tp.recRouter = testenv.NewNetns(t), testenv.NewNetns(t)
		v2 := testenv.NewVeth(t, tp.eng, tp.recRouter, f.cidr(2, 1), f.cidr(2, 2))
		testenv.NewVeth(t, tp.recRouter, tp.rec, f.cidr(3, 1), f.cidr(3, 2))
		tp.recIP, tp.recLink = f.addr(3, 2), v2.AName
		tp.eng.MustIP(t, "route", "add", fmt.Sprintf("%s/%d", f.addr(3, 0), f.prefix), "via", f.addr(2, 2).String())
		tp.rec.MustIP(t, "route", "add", "default", "via", f.addr(3, 1).String())
		for _, key := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"} {
			if out, err := tp.recRouter.Exec("sysctl", "-qw", key).CombinedOutput(); err != nil {
				t.Fatalf("sysctl %s: %v: %s", key, err, out)
			}
		}
	default:
		t.Fatalf("unknown topology %q", shape)
	}
	return tp
}

// newEngine builds the userspace media engine and the eBPF engine inside ns.
func newEngine(t testing.TB, ns *testenv.Netns, ifaces []string) *Engine {
	t.Helper()
	return newEngineWith(t, ns, ifaces, userspace.Config{PortRange: testRange})
}

// newEngineWith is newEngine with the media engine's configuration.
func newEngineWith(t testing.TB, ns *testenv.Netns, ifaces []string, mcfg userspace.Config) *Engine {
	t.Helper()
	return newEngineCfg(t, ns, ifaces, mcfg, false)
}

// newEngineCfg is newEngineWith, optionally with every join relayed by the
// media engine (Config.UserspaceRelay).
func newEngineCfg(t testing.TB, ns *testenv.Netns, ifaces []string, mcfg userspace.Config, userspaceRelay bool) *Engine {
	t.Helper()
	var e *Engine
	ns.MustDo(t, func() error {
		media, err := userspace.New(mcfg)
		if err != nil {
			return err
		}
		e, err = New(Config{Media: media, Interfaces: ifaces, Logger: slog.New(slog.DiscardHandler), UserspaceRelay: userspaceRelay})
		if err != nil {
			media.Close()
		}
		return err
	})
	t.Cleanup(func() { e.Close() })
	return e
}

func openEndpoint(t testing.TB, ns *testenv.Netns, e *Engine, ip netip.Addr, remote netip.AddrPort) dataplane.EndpointInfo {
	t.Helper()
	var info dataplane.EndpointInfo
	ns.MustDo(t, func() (err error) {
		info, err = e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: ip, Remote: remote})
		return err
	})
	return info
}

// pair is an RTP socket and its RTCP socket (port+1) in one namespace.
type pair struct {
	rtp, rtcp *net.UDPConn
	addr      netip.AddrPort
}

func listenPair(t testing.TB, ns *testenv.Netns, ip netip.Addr) *pair {
	t.Helper()
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	for range 100 {
		var p pair
		err := ns.Do(func() (err error) {
			if p.rtp, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))); err != nil {
				return err
			}
			port := p.rtp.LocalAddr().(*net.UDPAddr).AddrPort().Port()
			p.addr = netip.AddrPortFrom(ip, port)
			if p.rtcp, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port+1))); err != nil {
				p.rtp.Close()
			}
			return err
		})
		if err == nil {
			t.Cleanup(func() { p.rtp.Close(); p.rtcp.Close() })
			return &p
		}
	}
	t.Fatalf("no free port pair on %s", ip)
	return nil
}

func rtcpAddr(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), a.Port()+1) }

func send(t testing.TB, c *net.UDPConn, to netip.AddrPort, pkts ...[]byte) {
	t.Helper()
	for _, p := range pkts {
		if _, err := c.WriteToUDPAddrPort(p, to); err != nil {
			t.Fatalf("send to %s: %v", to, err)
		}
	}
}

// expect reads len(want) datagrams from c and checks their source and bytes.
func expect(t testing.TB, c *net.UDPConn, from netip.AddrPort, want ...[]byte) {
	t.Helper()
	buf := make([]byte, 2048)
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d at %s: %v", i+1, len(want), c.LocalAddr(), err)
		}
		if netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) != from || !bytes.Equal(buf[:n], w) {
			t.Fatalf("datagram %d at %s: from %s % x, want from %s % x", i+1, c.LocalAddr(), src, buf[:n], from, w)
		}
	}
}

// csumErrors reads the UDP InCsumErrors counter of a namespace.
func csumErrors(t testing.TB, ns *testenv.Netns, v6 bool) uint64 {
	t.Helper()
	file, field := "/proc/net/snmp", "InCsumErrors"
	if v6 {
		file, field = "/proc/net/snmp6", "Udp6InCsumErrors"
	}
	out, err := ns.Exec("cat", file).Output()
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if v6 {
		for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == field {
				n, _ := strconv.ParseUint(f[1], 10, 64)
				return n
			}
		}
		t.Fatalf("%s: no %s", file, field)
	}
	var names []string
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i := range names {
			if names[i] == field && i < len(f) {
				n, _ := strconv.ParseUint(f[i], 10, 64)
				return n
			}
		}
	}
	t.Fatalf("%s: no Udp %s", file, field)
	return 0
}

// setTxChecksum switches a device's transmit checksum offload
// (ETHTOOL_STXCSUM), so the stack computes UDP checksums before the fork
// programs see the packet, and the receiver verifies every copy.
func setTxChecksum(t testing.TB, ns *testenv.Netns, dev string, on bool) {
	t.Helper()
	ns.MustDo(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		val := struct{ cmd, data uint32 }{0x17, 0} // ETHTOOL_STXCSUM
		if on {
			val.data = 1
		}
		var ifr struct {
			name [unix.IFNAMSIZ]byte
			data uintptr
			_    [16]byte
		}
		copy(ifr.name[:], dev)
		ifr.data = uintptr(unsafe.Pointer(&val))
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
			return fmt.Errorf("ethtool tx %v on %s: %w", on, dev, errno)
		}
		return nil
	})
}

func rtpN(ssrc uint32, first uint16, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b := rtpPayload(first+uint16(i), 40)
		binary.BigEndian.PutUint32(b[8:], ssrc)
		out[i] = b
	}
	return out
}

func rtcpN(ssrc uint32, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b := rtcpPayload()
		binary.BigEndian.PutUint32(b[4:], ssrc+uint32(i))
		out[i] = b
	}
	return out
}

func sumLen(pkts ...[][]byte) uint64 {
	var n uint64
	for _, ps := range pkts {
		for _, p := range ps {
			n += uint64(len(p))
		}
	}
	return n
}

// waitFork polls a fork's counters (kept in the kernel, so there is no event
// to wait on) until they equal want or the deadline passes.
func waitFork(t testing.TB, e *Engine, ep dataplane.EndpointID, d dataplane.Direction, want dataplane.ForkStats) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got, err := e.ForkStats(ep, d)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fork %d %s: %+v, want %+v", ep, d, got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestForkNetns runs both directions of a call through the engine with real
// sockets and checks every copy's bytes, source and checksum.
func TestForkNetns(t *testing.T) {
	for _, f := range families {
		for _, shape := range []string{viaOther, viaSame, viaRouter} {
			for _, txOff := range []bool{false, true} {
				if txOff && shape != viaOther {
					continue
				}
				name := f.name + "/" + shape
				if txOff {
					name += "/software checksums"
				}
				t.Run(name, func(t *testing.T) { testFork(t, f, shape, txOff) })
			}
		}
	}
}

func testFork(t *testing.T, f family, shape string, txOff bool) {
	tp := newTopology(t, f, shape)
	if txOff {
		// The party's packets then arrive CHECKSUM_NONE, with the
		// checksum its stack computed: the program computes the
		// rewrites' checksums itself, and the recorder's and the
		// party's kernels verify them.
		setTxChecksum(t, tp.remote, tp.remoteLink, false)
		for _, dev := range tp.ifaces {
			setTxChecksum(t, tp.eng, dev, false)
		}
	}
	e := newEngine(t, tp.eng, tp.ifaces)
	party := listenPair(t, tp.remote, tp.remoteIP)
	recIn, recOut := listenPair(t, tp.rec, tp.recIP), listenPair(t, tp.rec, tp.recIP)
	a := openEndpoint(t, tp.eng, e, tp.engIP, party.addr)
	srcIn := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	srcOut := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	if err := e.Join(a.ID, a.ID, dataplane.Full); err != nil {
		t.Fatal(err)
	}
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: recIn.addr, Source: srcIn.ID}); err != nil {
		t.Fatal(err)
	}
	if err := e.AddFork(a.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: recOut.addr, Source: srcOut.ID}); err != nil {
		t.Fatal(err)
	}
	csumBefore := csumErrors(t, tp.rec, f.addr(1, 1).Is6())

	rtp, rtcp := rtpN(0x1111, 100, 50), rtcpN(0x1111, 5)
	send(t, party.rtp, a.Local, rtp...)
	send(t, party.rtcp, rtcpAddr(a.Local), rtcp...)
	// The original reaches the engine unchanged and is echoed back.
	expect(t, party.rtp, a.Local, rtp...)
	expect(t, party.rtcp, rtcpAddr(a.Local), rtcp...)
	// Each direction's copies leave from its source endpoint's ports.
	expect(t, recIn.rtp, srcIn.Local, rtp...)
	expect(t, recIn.rtcp, rtcpAddr(srcIn.Local), rtcp...)
	expect(t, recOut.rtp, srcOut.Local, rtp...)
	expect(t, recOut.rtcp, rtcpAddr(srcOut.Local), rtcp...)

	want := dataplane.ForkStats{CopiedPackets: 55, CopiedBytes: sumLen(rtp, rtcp)}
	waitFork(t, e, a.ID, dataplane.Inbound, want)
	waitFork(t, e, a.ID, dataplane.Outbound, want)
	if got := csumErrors(t, tp.rec, f.addr(1, 1).Is6()); got != csumBefore {
		t.Fatalf("recorder namespace counted %d UDP checksum errors", got-csumBefore)
	}
	if s, err := e.EndpointStats(a.ID); err != nil || s.RxPackets != 55 || s.TxPackets != 55 {
		t.Fatalf("endpoint stats %+v, %v: want 55 received and 55 sent", s, err)
	}
	if s := e.Stats(); s.Engine != "ebpf" || s.Forks != 2 || s.CopiedPackets != 110 {
		t.Fatalf("engine stats %+v", s)
	}
	ks, err := e.KernelStats()
	if err != nil {
		t.Fatal(err)
	}
	// Where the copies leave by an attached interface, its egress program
	// saw each of them and passed it on without forking it again.
	if shape != viaRouter && ks.Looped < 110 {
		t.Fatalf("egress saw %d marked copies, want at least 110", ks.Looped)
	}
	// With its transmit offload on, the party's sockets hand their veth
	// CHECKSUM_PARTIAL skbs, which arrive so; the echo is relayed in the
	// kernel, so each packet is rewritten three times at ingress (inbound
	// copy, outbound copy, the relay), each leaving the UDP checksum to the
	// helpers. With it off, the program computes all of them.
	helpers := uint64(3 * 55)
	if txOff {
		helpers = 0
	}
	if ks.CsumHelpers != helpers {
		t.Fatalf("%d rewrites left the UDP checksum to the helpers, want %d", ks.CsumHelpers, helpers)
	}
}

// TestChecksumNegativeControl proves that the recorder's kernel verifies
// UDP checksums in these topologies: a frame with a stale checksum is
// dropped and counted, so the copies accepted above had correct ones.
func TestChecksumNegativeControl(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			tp := newTopology(t, f, viaOther)
			rec := listenPair(t, tp.rec, tp.recIP)
			var recMAC, ourMAC [6]byte
			var ifindex int
			tp.eng.MustDo(t, func() error {
				ifc, err := net.InterfaceByName(tp.recLink)
				if err != nil {
					return err
				}
				ifindex, ourMAC = ifc.Index, [6]byte(ifc.HardwareAddr)
				return nil
			})
			tp.rec.MustDo(t, func() error {
				ifs, err := net.Interfaces()
				if err != nil {
					return err
				}
				for _, ifc := range ifs {
					if len(ifc.HardwareAddr) == 6 {
						recMAC = [6]byte(ifc.HardwareAddr)
					}
				}
				return nil
			})
			src := netip.AddrPortFrom(f.addr(2, 1), 5000)
			good := buildFrame(frameSpec{srcMAC: ourMAC, dstMAC: recMAC, src: src, dst: rec.addr, payload: []byte("good")})
			bad := buildFrame(frameSpec{srcMAC: ourMAC, dstMAC: recMAC, src: src, dst: rec.addr, payload: []byte("bad!")})
			bad[len(bad)-1] ^= 0xff // payload changed after the checksum: stale
			before := csumErrors(t, tp.rec, f.addr(1, 1).Is6())
			tp.eng.MustDo(t, func() error {
				fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
				copy(sa.Addr[:], recMAC[:])
				for _, fr := range [][]byte{bad, good} {
					if err := unix.Sendto(fd, fr, 0, sa); err != nil {
						return err
					}
				}
				return nil
			})
			// The good frame, sent after the bad one, is the first to arrive.
			expect(t, rec.rtp, src, []byte("good"))
			if got := csumErrors(t, tp.rec, f.addr(1, 1).Is6()); got != before+1 {
				t.Fatalf("InCsumErrors rose by %d, want 1", got-before)
			}
		})
	}
}

// TestForkOutboundGSO: with the userspace engine sending relayed datagrams
// as UDP GSO batches, the egress program copies every datagram of a batch.
func TestForkOutboundGSO(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			tp := newTopology(t, f, viaSame)
			var e *Engine
			tp.eng.MustDo(t, func() error {
				cfg := userspace.Config{PortRange: testRange, Workers: 1, Batch: 64, GSORelays: true}
				media, err := userspace.New(cfg)
				if err != nil {
					return err
				}
				// The kernel would relay the join itself: keep the
				// relays, and their GSO batches, in userspace.
				e, err = New(Config{Media: media, Interfaces: tp.ifaces, Logger: slog.New(slog.DiscardHandler), UserspaceRelay: true})
				return err
			})
			t.Cleanup(func() { e.Close() })
			pa, pb := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
			rec := listenPair(t, tp.rec, tp.recIP)
			_ = rec.rtp.SetReadBuffer(1 << 20)
			_ = pa.rtp.SetReadBuffer(1 << 20)
			a := openEndpoint(t, tp.eng, e, tp.engIP, pa.addr)
			b := openEndpoint(t, tp.eng, e, tp.engIP, pb.addr)
			src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
			if err := e.Join(a.ID, b.ID, dataplane.Full); err != nil {
				t.Fatal(err)
			}
			if err := e.AddFork(a.ID, dataplane.Outbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
				t.Fatal(err)
			}
			// Equal-size bursts, so the relay to a's remote merges them.
			var all [][]byte
			for round := range 20 {
				burst := rtpN(0x6a, uint16(round*50), 50)
				send(t, pb.rtp, b.Local, burst...)
				expect(t, pa.rtp, a.Local, burst...)
				all = append(all, burst...)
			}
			expect(t, rec.rtp, src.Local, all...)
			waitFork(t, e, a.ID, dataplane.Outbound, dataplane.ForkStats{CopiedPackets: uint64(len(all)), CopiedBytes: sumLen(all)})
			ks, err := e.KernelStats()
			if err != nil {
				t.Fatal(err)
			}
			if ks.GSOEgress == 0 {
				t.Fatalf("no GSO batch reached the egress program (%+v): the test did not exercise GSO", ks)
			}
			t.Logf("%d GSO batches carried %d datagrams", ks.GSOEgress, len(all))
		})
	}
}
