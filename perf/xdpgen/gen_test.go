package xdpgen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

func TestPacketChecksums(t *testing.T) {
	f := Frame{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		SrcIP: netip.MustParseAddr("10.77.0.1"), DstIP: netip.MustParseAddr("10.77.0.2")}
	for _, s := range []Stream{{30000, 20000}, {30002, 20002}, {1, 65535}} {
		t.Run("", func(t *testing.T) {
			p := Packet(f, s)
			if len(p) != HeaderLen+PayloadLen {
				t.Fatalf("len %d", len(p))
			}
			// A correct one's-complement checksum sums to 0xffff over the
			// header including the checksum field (RFC 1071).
			if got := fold(sum(p[14:34], 0)); got != 0xffff {
				t.Errorf("IPv4 header sums to %#x", got)
			}
			udp := p[34:]
			var pseudo [12]byte
			copy(pseudo[0:4], p[26:30])
			copy(pseudo[4:8], p[30:34])
			pseudo[9] = 17
			binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
			if got := fold(sum(udp, sum(pseudo[:], 0))); got != 0xffff {
				t.Errorf("UDP datagram sums to %#x", got)
			}
			if sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4]); sp != s.SrcPort || dp != s.DstPort {
				t.Errorf("ports %d->%d", sp, dp)
			}
			if udp[8]>>6 != 2 {
				t.Error("payload is not RTP version 2")
			}
		})
	}
	// Streams differ only in ports and checksum: the generator rewrites
	// exactly those.
	a, b := Packet(f, Stream{30000, 20000}), Packet(f, Stream{30002, 20010})
	for i := range a {
		if a[i] != b[i] && (i < 34 || i >= 42) {
			t.Fatalf("byte %d differs outside the UDP header", i)
		}
	}
}
