package userspace

import "encoding/binary"

// kind is what a datagram on a media port is, as far as the engine needs to know.
type kind uint8

const (
	kindInvalid kind = iota
	kindRTP
	kindRTCP
)

func (k kind) String() string {
	switch k {
	case kindRTP:
		return "rtp"
	case kindRTCP:
		return "rtcp"
	}
	return "invalid"
}

// classify tells RTP from RTCP from anything else without allocating. It reads
// only the fixed headers: the engine forwards packets unchanged, so it checks
// no more than that the lengths the header claims fit in the datagram.
//
//   - Version must be 2 (RFC 3550 §5.1, §6.4.1). This also rejects STUN
//     (first byte 0-3) and DTLS (20-63) sharing the port (RFC 7983 §7).
//   - A second byte of 192-223 is RTCP (RFC 5761 §4: RTCP packet types 192-223
//     with the marker bit are never RTP payload types 64-95). RTCP needs the
//     common header and sender SSRC (8 bytes) and a first packet whose length
//     field fits (RFC 3550 §6.4.1). Later packets of a compound and a trailing
//     SRTCP index and tag (RFC 3711 §3.4) are not walked.
//   - Otherwise RTP: 12 bytes plus CSRCs plus the extension header and words it
//     announces (RFC 3550 §5.3.1). Padding is not checked: in SRTP the last
//     byte is part of the authentication tag, not the padding count.
func classify(b []byte) kind {
	if len(b) < 8 || b[0]>>6 != 2 {
		return kindInvalid
	}
	if b[1] >= 192 && b[1] <= 223 {
		words := int(binary.BigEndian.Uint16(b[2:4])) + 1
		if words*4 > len(b) {
			return kindInvalid
		}
		return kindRTCP
	}
	if len(b) < 12 {
		return kindInvalid
	}
	h := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < h+4 {
			return kindInvalid
		}
		h += 4 + 4*int(binary.BigEndian.Uint16(b[h+2:h+4]))
	}
	if h > len(b) {
		return kindInvalid
	}
	return kindRTP
}
