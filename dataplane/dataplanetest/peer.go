package dataplanetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// Party is a remote media party (or a recorder): an RTP socket on an even or
// odd port P and its RTCP socket on P+1, both bound on the harness's PeerIP.
type Party struct {
	RTP, RTCP *net.UDPConn
	// Addr is the RTP address; RTCP is Addr.Port()+1.
	Addr netip.AddrPort
}

// RTCPAddr is the party's RTCP address.
func (p *Party) RTCPAddr() netip.AddrPort {
	return netip.AddrPortFrom(p.Addr.Addr(), p.Addr.Port()+1)
}

// NewParty opens a Party through h.ListenPeer, retrying until it finds a free
// P/P+1 pair, and closes both sockets when the test ends.
func NewParty(t *testing.T, h Harness) *Party {
	t.Helper()
	var lastErr error
	for range 200 {
		rtp, err := h.listen(t, 0)
		if err != nil {
			t.Fatalf("listen peer: %v", err)
		}
		ap := addrPort(rtp.LocalAddr())
		if ap.Port() == 65535 {
			rtp.Close()
			continue
		}
		rtcp, err := h.listen(t, int(ap.Port())+1)
		if err != nil {
			lastErr = err
			rtp.Close()
			continue
		}
		for _, c := range []*net.UDPConn{rtp, rtcp} {
			// Bursts of a few hundred small datagrams must never overflow.
			_ = c.SetReadBuffer(1 << 20)
		}
		p := &Party{RTP: rtp, RTCP: rtcp, Addr: netip.AddrPortFrom(h.PeerIP, ap.Port())}
		t.Cleanup(func() { rtp.Close(); rtcp.Close() })
		return p
	}
	t.Fatalf("no free peer port pair on %s: %v", h.PeerIP, lastErr)
	return nil
}

func addrPort(a net.Addr) netip.AddrPort {
	ap := a.(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// RTPPacket builds a valid RTP packet (RFC 3550 §5.1, PT 0, 160-byte payload)
// whose bytes are unique to ssrc and seq.
func RTPPacket(ssrc uint32, seq uint16) []byte {
	b := make([]byte, 12+160)
	b[0] = 0x80
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := 12; i < len(b); i++ {
		b[i] = byte(uint32(seq)*7 + ssrc + uint32(i))
	}
	return b
}

// RTCPPacket builds a valid RTCP sender report without report blocks
// (RFC 3550 §6.4.1, 28 bytes) whose packet count field is n.
func RTCPPacket(ssrc uint32, n uint32) []byte {
	b := make([]byte, 28)
	b[0] = 0x80
	b[1] = 200
	binary.BigEndian.PutUint16(b[2:], 28/4-1)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	binary.BigEndian.PutUint32(b[8:], 0x83aa7e80+n) // NTP seconds, arbitrary
	binary.BigEndian.PutUint32(b[16:], n*160)
	binary.BigEndian.PutUint32(b[20:], n)
	binary.BigEndian.PutUint32(b[24:], n*160)
	return b
}

// RTPRange builds count RTP packets with sequence numbers first, first+1, ...
func RTPRange(ssrc uint32, first uint16, count int) [][]byte {
	out := make([][]byte, count)
	for i := range out {
		out[i] = RTPPacket(ssrc, first+uint16(i))
	}
	return out
}

// RTCPRange builds count RTCP packets numbered first, first+1, ...
func RTCPRange(ssrc uint32, first uint32, count int) [][]byte {
	out := make([][]byte, count)
	for i := range out {
		out[i] = RTCPPacket(ssrc, first+uint32(i))
	}
	return out
}

// Send writes every packet from conn to dst, in order.
func Send(t *testing.T, conn *net.UDPConn, dst netip.AddrPort, pkts [][]byte) {
	t.Helper()
	for _, p := range pkts {
		if _, err := conn.WriteToUDPAddrPort(p, dst); err != nil {
			t.Fatalf("send to %s: %v", dst, err)
		}
	}
}

// Datagram is one received datagram.
type Datagram struct {
	Data []byte
	From netip.AddrPort
}

// Recv reads exactly n datagrams from conn, failing the test if they do not
// all arrive within timeout.
func Recv(t *testing.T, conn *net.UDPConn, n int, timeout time.Duration) []Datagram {
	t.Helper()
	out := make([]Datagram, 0, n)
	deadline := time.Now().Add(timeout)
	if err := conn.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	for len(out) < n {
		m, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("on %s: received %d of %d datagrams: %v", conn.LocalAddr(), len(out), n, err)
		}
		out = append(out, Datagram{Data: bytes.Clone(buf[:m]), From: netip.AddrPortFrom(from.Addr().Unmap(), from.Port())})
	}
	return out
}

// Expect reads len(want) datagrams from conn and fails unless they are
// byte-identical to want, in order, and all come from from.
func Expect(t *testing.T, conn *net.UDPConn, from netip.AddrPort, want [][]byte, timeout time.Duration) {
	t.Helper()
	got := Recv(t, conn, len(want), timeout)
	for i, d := range got {
		if d.From != from {
			t.Fatalf("on %s datagram %d came from %s, want %s", conn.LocalAddr(), i, d.From, from)
		}
		if !bytes.Equal(d.Data, want[i]) {
			t.Fatalf("on %s datagram %d differs from what was sent:\n got %x\nwant %x", conn.LocalAddr(), i, d.Data, want[i])
		}
	}
}

// ExpectNothingQueued fails if conn holds a datagram right now. It proves
// absence only after a fence: call it once a later datagram on the same path
// has been received, or once the engine's counters show the packets handled.
func ExpectNothingQueued(t *testing.T, conn *net.UDPConn) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	m, from, err := conn.ReadFromUDPAddrPort(buf)
	if err == nil {
		t.Fatalf("on %s unexpected datagram from %s: %x", conn.LocalAddr(), from, buf[:m])
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("on %s: %v", conn.LocalAddr(), err)
	}
}

// WaitFor polls cond until it reports true, failing the test with cond's
// last description when timeout passes. Use it for counters, which have no
// event to wait on.
func WaitFor(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Microsecond
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, desc)
		}
		time.Sleep(delay)
		delay = min(2*delay, 20*time.Millisecond)
	}
}

func totalBytes(pkts ...[][]byte) uint64 {
	var n uint64
	for _, ps := range pkts {
		for _, p := range ps {
			n += uint64(len(p))
		}
	}
	return n
}

func concat(pkts ...[][]byte) [][]byte {
	var out [][]byte
	for _, ps := range pkts {
		out = append(out, ps...)
	}
	return out
}

func describe(format string, args ...any) string { return fmt.Sprintf(format, args...) }
