//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/recfork/recfork/dataplane"
)

// FuzzParseAttrs: rtnetlink attribute parsing never panics, and what
// appendAttr writes parses back unchanged.
func FuzzParseAttrs(f *testing.F) {
	f.Add([]byte{8, 0, 1, 0, 10, 0, 0, 1}, uint16(1), []byte{1, 2, 3})
	f.Add([]byte{4, 0, 0, 0}, uint16(5), []byte{})
	f.Add([]byte{0xff, 0xff, 1, 0}, uint16(0x4001), []byte{9})
	f.Add([]byte{}, uint16(2), bytes.Repeat([]byte{7}, 17))
	f.Fuzz(func(t *testing.T, raw []byte, typ uint16, data []byte) {
		_ = parseAttrs(raw)
		if len(data) > 1000 {
			return
		}
		typ &= 0x3fff
		got := parseAttrs(appendAttr(nil, typ, data))
		if len(got) != 1 || got[0].typ != typ || !bytes.Equal(got[0].data, data) {
			t.Fatalf("round trip of type %d % x: %+v", typ, data, got)
		}
	})
}

// refIsMedia is the userspace engine's rule for what a media port accepts,
// written again from RFC 3550 and RFC 5761 for comparison with the program.
func refIsMedia(b []byte, rtcpPort bool) bool {
	if len(b) < 8 || b[0]>>6 != 2 {
		return false
	}
	if b[1] >= 192 && b[1] <= 223 {
		return (int(binary.BigEndian.Uint16(b[2:]))+1)*4 <= len(b)
	}
	if rtcpPort || len(b) < 12 {
		return false
	}
	h := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if h+4 > len(b) {
			return false
		}
		h += 4 + 4*int(binary.BigEndian.Uint16(b[h+2:]))
	}
	return h <= len(b)
}

// FuzzForkProgram feeds arbitrary payloads (and truncated frames) through
// the ingress program of an active fork: it always passes the original on
// unchanged, and copies exactly what the media sockets would accept.
func FuzzForkProgram(f *testing.F) {
	for _, seed := range [][]byte{
		rtpPayload(1, 20), rtcpPayload(), {}, {0x80}, []byte("not rtp at all"),
		{0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3},
		{0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},
		{0x80, 200, 0, 40, 0, 0, 0, 1},
		{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4},
	} {
		f.Add(seed, false, uint8(0))
		f.Add(seed, true, uint8(0))
	}
	f.Add(rtpPayload(3, 40), false, uint8(9))
	p := newProgEnv(f)
	local := netip.MustParseAddrPort("10.0.0.1:20000")
	slot := p.addStream(f, local, dataplane.Inbound, dataplane.Active,
		netip.MustParseAddrPort("10.9.0.9:30000"), netip.MustParseAddrPort("10.0.0.1:20010"))
	f.Fuzz(func(t *testing.T, payload []byte, rtcp bool, cut uint8) {
		if len(payload) > 1400 {
			return
		}
		dst := local
		if rtcp {
			dst = netip.AddrPortFrom(local.Addr(), local.Port()+1)
		}
		spec := frameSpec{srcMAC: peerMAC, dstMAC: ourMAC, src: netip.MustParseAddrPort("192.0.2.7:40000"), dst: dst, payload: payload}
		frame := buildFrame(spec)
		if cut > 0 {
			spec.truncate = int(cut) % (len(payload) + 9)
			frame = buildFrame(spec)
		}
		before := p.counters(t, slot)
		p.run(t, p.objs.RtpforkIngress, frame, nil)
		after := p.counters(t, slot)
		want := uint64(0)
		if spec.truncate == 0 && refIsMedia(payload, rtcp) {
			want = 1
		}
		if d := after.CopiedPackets - before.CopiedPackets; d != want {
			t.Fatalf("payload % x (rtcp port %v, cut %d): %d copies, want %d", payload, rtcp, spec.truncate, d, want)
		}
	})
}
