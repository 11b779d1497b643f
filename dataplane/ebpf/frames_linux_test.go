//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Raw frames for the program tests, built byte by byte so the tests do not
// share code with what they test.

// frameSpec describes one Ethernet/IP/UDP frame.
type frameSpec struct {
	srcMAC, dstMAC [6]byte
	src, dst       netip.AddrPort
	payload        []byte
	proto          uint8  // 0 means UDP
	ihl            int    // IPv4 header words; 0 means 5
	fragOff        uint16 // IPv4 flags+fragment offset field
	zeroCsum       bool   // IPv4 only: UDP checksum 0 ("none")
	truncate       int    // cut this many bytes off the end after building
}

func csumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func csumFold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// udpChecksum computes the UDP checksum over the pseudo-header (RFC 768,
// RFC 8200 section 8.1) and the UDP header and data in udp (whose checksum
// field is taken as it is: zero when computing, the value when verifying).
func udpChecksum(src, dst netip.Addr, udp []byte) uint16 {
	var sum uint32
	sum = csumAdd(sum, src.AsSlice())
	sum = csumAdd(sum, dst.AsSlice())
	sum += uint32(17) + uint32(len(udp))
	return csumFold(csumAdd(sum, udp))
}

func buildFrame(f frameSpec) []byte {
	b := make([]byte, 0, 128+len(f.payload))
	b = append(b, f.dstMAC[:]...)
	b = append(b, f.srcMAC[:]...)
	proto := f.proto
	if proto == 0 {
		proto = 17
	}
	udpLen := 8 + len(f.payload)
	if f.src.Addr().Is4() {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ihl := f.ihl
		if ihl == 0 {
			ihl = 5
		}
		ip := make([]byte, ihl*4)
		ip[0] = 0x40 | byte(ihl)
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+udpLen))
		binary.BigEndian.PutUint16(ip[4:], 0x1234)
		binary.BigEndian.PutUint16(ip[6:], f.fragOff)
		ip[8] = 63
		ip[9] = proto
		copy(ip[12:], f.src.Addr().AsSlice())
		copy(ip[16:], f.dst.Addr().AsSlice())
		for i := 20; i < len(ip); i++ {
			ip[i] = 1 // NOP options
		}
		binary.BigEndian.PutUint16(ip[10:], csumFold(csumAdd(0, ip)))
		b = append(b, ip...)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		ip[1], ip[2], ip[3] = 0x0b, 0xee, 0xef
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
		ip[6] = proto
		ip[7] = 63
		copy(ip[8:], f.src.Addr().AsSlice())
		copy(ip[24:], f.dst.Addr().AsSlice())
		b = append(b, ip...)
	}
	udp := make([]byte, 8, udpLen)
	binary.BigEndian.PutUint16(udp[0:], f.src.Port())
	binary.BigEndian.PutUint16(udp[2:], f.dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	udp = append(udp, f.payload...)
	if !f.zeroCsum {
		c := udpChecksum(f.src.Addr(), f.dst.Addr(), udp)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(udp[6:], c)
	}
	b = append(b, udp...)
	return b[:len(b)-f.truncate]
}

// parsedFrame is a captured frame taken apart, with its checksums verified.
type parsedFrame struct {
	srcMAC, dstMAC [6]byte
	src, dst       netip.AddrPort
	payload        []byte
	udpCsum        uint16
	// ipHdr is the IPv4 header or the IPv6 fixed header.
	ipHdr []byte
}

func parseFrame(b []byte) (parsedFrame, error) {
	var p parsedFrame
	if len(b) < 14 {
		return p, fmt.Errorf("frame of %d bytes", len(b))
	}
	copy(p.dstMAC[:], b[0:6])
	copy(p.srcMAC[:], b[6:12])
	var l4 int
	switch binary.BigEndian.Uint16(b[12:]) {
	case 0x0800:
		if len(b) < 34 || b[14]>>4 != 4 {
			return p, fmt.Errorf("bad IPv4 frame % x", b)
		}
		ihl := int(b[14]&0xf) * 4
		p.ipHdr = b[14 : 14+ihl]
		if c := csumFold(csumAdd(0, p.ipHdr)); c != 0 {
			return p, fmt.Errorf("IPv4 header checksum wrong (residue %#04x)", c)
		}
		src, _ := netip.AddrFromSlice(p.ipHdr[12:16])
		dst, _ := netip.AddrFromSlice(p.ipHdr[16:20])
		l4 = 14 + ihl
		p.src, p.dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	case 0x86dd:
		if len(b) < 62 {
			return p, fmt.Errorf("bad IPv6 frame % x", b)
		}
		p.ipHdr = b[14:54]
		src, _ := netip.AddrFromSlice(p.ipHdr[8:24])
		dst, _ := netip.AddrFromSlice(p.ipHdr[24:40])
		l4 = 54
		p.src, p.dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	default:
		return p, fmt.Errorf("ethertype %#04x", binary.BigEndian.Uint16(b[12:]))
	}
	udp := b[l4:]
	if len(udp) < 8 || int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return p, fmt.Errorf("UDP length field does not match %d bytes", len(udp))
	}
	p.src = netip.AddrPortFrom(p.src.Addr(), binary.BigEndian.Uint16(udp[0:]))
	p.dst = netip.AddrPortFrom(p.dst.Addr(), binary.BigEndian.Uint16(udp[2:]))
	p.udpCsum = binary.BigEndian.Uint16(udp[6:])
	p.payload = udp[8:]
	if p.udpCsum != 0 || p.src.Addr().Is6() {
		if c := udpChecksum(p.src.Addr(), p.dst.Addr(), udp); c != 0 {
			return p, fmt.Errorf("UDP checksum %#04x wrong (residue %#04x)", p.udpCsum, c)
		}
	}
	return p, nil
}

// rtpPayload is a minimal valid RTP packet (RFC 3550 section 5.1).
func rtpPayload(seq uint16, n int) []byte {
	b := make([]byte, 12+n)
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], 0xcafe)
	for i := 12; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// rtcpPayload is a minimal valid RTCP receiver report (RFC 3550 section 6.4.2).
func rtcpPayload() []byte {
	b := make([]byte, 8)
	b[0], b[1] = 0x80, 201
	binary.BigEndian.PutUint16(b[2:], 1)
	binary.BigEndian.PutUint32(b[4:], 0xcafe)
	return b
}
