//go:build linux

package userspace

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
)

// FuzzEngineDatagram sends arbitrary datagrams through a real endpoint (echo
// and a fork) and checks that each one is either dropped, or echoed and copied
// byte for byte, and that the counters say which.
func FuzzEngineDatagram(f *testing.F) {
	f.Add(dataplanetest.RTPPacket(1, 1), false)
	f.Add(dataplanetest.RTCPPacket(1, 1), true)
	f.Add(dataplanetest.RTCPPacket(1, 2), false) // RTCP multiplexed on the RTP port (RFC 5761)
	for _, b := range dataplanetest.BadDatagrams() {
		f.Add(b, false)
		f.Add(b, true)
	}
	e, err := New(Config{PortRange: testRange, Workers: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { e.Close() })
	pa, rec := newFuzzParty(f), newFuzzParty(f)
	a, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: pa.Addr})
	if err != nil {
		f.Fatal(err)
	}
	src, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
	if err != nil {
		f.Fatal(err)
	}
	if err := e.Join(a.ID, a.ID, dataplane.Full); err != nil {
		f.Fatal(err)
	}
	if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.Addr, Source: src.ID}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, rtcpPort bool) {
		checkDatagram(t, e, pa, rec, a, src, b, rtcpPort)
	})
}

// checkDatagram sends b to a (echo-joined, forked to rec from src) and checks
// its fate.
func checkDatagram(t *testing.T, e *Engine, pa, rec *dataplanetest.Party, a, src dataplane.EndpointInfo, b []byte, rtcpPort bool) {
	if len(b) > maxDatagram {
		b = b[:maxDatagram]
	}
	before, err := e.EndpointStats(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	conn, dst, recConn, from := pa.RTP, a.Local, rec.RTP, src.Local
	if rtcpPort {
		conn, dst, recConn, from = pa.RTCP, rtcpOf(a.Local), rec.RTCP, rtcpOf(src.Local)
	}
	dataplanetest.Send(t, conn, dst, [][]byte{b})
	var after dataplane.EndpointStats
	dataplanetest.WaitFor(t, waitLimit, func() (bool, string) {
		after, _ = e.EndpointStats(a.ID)
		return after.RxPackets+after.Dropped == before.RxPackets+before.Dropped+1, "the datagram to be handled"
	})
	k := classify(b)
	want := k == kindRTCP || (k == kindRTP && !rtcpPort)
	if got := after.RxPackets == before.RxPackets+1; got != want {
		t.Fatalf("datagram %x on the %s port: accepted=%v, classified %s", b, map[bool]string{false: "RTP", true: "RTCP"}[rtcpPort], got, k)
	}
	if want {
		echo := dataplanetest.Recv(t, conn, 1, waitLimit)[0]
		copied := dataplanetest.Recv(t, recConn, 1, waitLimit)[0]
		if !bytes.Equal(echo.Data, b) || !bytes.Equal(copied.Data, b) || echo.From != dst || copied.From != from {
			t.Fatalf("datagram %x: echo %x from %s, copy %x from %s", b, echo.Data, echo.From, copied.Data, copied.From)
		}
	}
}

// newFuzzParty is dataplanetest.NewParty for a *testing.F on loopback.
func newFuzzParty(f *testing.F) *dataplanetest.Party {
	for range 100 {
		rtp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			f.Fatal(err)
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		rtcp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
		if err != nil {
			rtp.Close()
			continue
		}
		f.Cleanup(func() { rtp.Close(); rtcp.Close() })
		return &dataplanetest.Party{RTP: rtp, RTCP: rtcp, Addr: netip.AddrPortFrom(lo4, uint16(port))}
	}
	f.Fatal("no free loopback port pair")
	return nil
}

func rtcpOf(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr(), ap.Port()+1) }
