package srtp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

var lo = netip.MustParseAddr("127.0.0.1")

func udp(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRelay sends clear copies over real sockets to a Relay and reads SRTP
// at the "SRS": every packet decrypts to the copy sent, none is plain RTP,
// and a datagram from another source is dropped and counted.
func TestRelay(t *testing.T) {
	c, err := NewCrypto(1, SuiteSHA1_80)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(lo, c)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fork, intruder, srs := udp(t), udp(t), udp(t)
	r.SetSource(fork.LocalAddr().(*net.UDPAddr).AddrPort())
	r.SetDestination(srs.LocalAddr().(*net.UDPAddr).AddrPort())
	dec, _ := NewContext(c)
	in := net.UDPAddrFromAddrPort(r.In())

	if _, err := intruder.WriteToUDP(rtpPacket(t, 9, 1, make([]byte, 160)), in); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for i := range 20 {
		payload := bytes.Repeat([]byte{byte(i + 1)}, 160)
		pkt := rtpPacket(t, 0xfeed, uint16(100+i), payload)
		if _, err := fork.WriteToUDP(pkt, in); err != nil {
			t.Fatal(err)
		}
		_ = srs.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := srs.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("packet %d never reached the srs: %v", i, err)
		}
		if from != r.Out() {
			t.Fatalf("srtp from %v, want %v", from, r.Out())
		}
		if bytes.Contains(buf[:n], payload[:32]) {
			t.Fatalf("packet %d left in clear", i)
		}
		got, err := dec.Decrypt(nil, buf[:n])
		if err != nil || !bytes.Equal(got, pkt) {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	st := r.Stats()
	if st.Packets != 20 || st.Errors != 1 {
		t.Fatalf("stats %+v, want 20 packets and the intruder's datagram as 1 error", st)
	}
}
