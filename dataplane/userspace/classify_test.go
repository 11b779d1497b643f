package userspace

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"

	"github.com/recfork/recfork/dataplane/dataplanetest"
)

func TestClassify(t *testing.T) {
	withExt := func(words uint16, have int) []byte {
		b := make([]byte, 12+4+have)
		b[0] = 0x90
		binary.BigEndian.PutUint16(b[12:], 0xbede)
		binary.BigEndian.PutUint16(b[14:], words)
		return b
	}
	csrc := func(n int, have int) []byte {
		b := make([]byte, 12+have)
		b[0] = 0x80 | byte(n)
		return b
	}
	rtcp := func(pt byte, words uint16, size int) []byte {
		b := make([]byte, size)
		b[0], b[1] = 0x80, pt
		binary.BigEndian.PutUint16(b[2:], words)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want kind
	}{
		{"rtp", dataplanetest.RTPPacket(1, 2), kindRTP},
		{"rtp header only", dataplanetest.RTPPacket(1, 2)[:12], kindRTP},
		{"rtp marker pt 96", func() []byte { b := dataplanetest.RTPPacket(1, 2); b[1] = 0x80 | 96; return b }(), kindRTP},
		{"rtp 2 csrc", csrc(2, 8), kindRTP},
		{"rtp csrc cut", csrc(2, 7), kindInvalid},
		{"rtp extension", withExt(2, 8), kindRTP},
		{"rtp extension cut", withExt(2, 7), kindInvalid},
		{"rtp extension header cut", withExt(0, 0)[:15], kindInvalid},
		{"rtp 11 bytes", dataplanetest.RTPPacket(1, 2)[:11], kindInvalid},
		{"rtcp sr", dataplanetest.RTCPPacket(1, 1), kindRTCP},
		{"rtcp rr empty", rtcp(201, 1, 8), kindRTCP},
		{"rtcp with srtcp trailer", rtcp(200, 6, 28+14), kindRTCP},
		{"rtcp length too long", rtcp(201, 2, 8), kindInvalid},
		{"rtcp 7 bytes", rtcp(201, 0, 7), kindInvalid},
		{"rtcp pt 192", rtcp(192, 1, 8), kindRTCP},
		{"rtcp pt 223", rtcp(223, 1, 8), kindRTCP},
		{"pt 224 is rtp", rtcp(224, 1, 12), kindRTP},
		{"version 0", make([]byte, 20), kindInvalid},
		{"version 3", func() []byte { b := dataplanetest.RTPPacket(1, 2); b[0] = 0xc0; return b }(), kindInvalid},
		{"empty", nil, kindInvalid},
	}
	for _, bad := range dataplanetest.BadDatagrams() {
		if classify(bad) == kindRTCP {
			continue // the RTCP port drops RTCP-looking garbage only if it is invalid
		}
		cases = append(cases, struct {
			name string
			b    []byte
			want kind
		}{"suite bad datagram", bad, kindInvalid})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := classify(c.b); got != c.want {
				t.Fatalf("classify(%x) = %s, want %s", c.b, got, c.want)
			}
		})
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	pkts := [][]byte{dataplanetest.RTPPacket(1, 1), dataplanetest.RTCPPacket(1, 1), []byte("junk")}
	if n := testing.AllocsPerRun(100, func() {
		for _, p := range pkts {
			classify(p)
		}
	}); n != 0 {
		t.Fatalf("classify allocates %.1f times per run", n)
	}
}

// FuzzClassify checks the classifier never panics, never reads past what it
// claims, and agrees with pion/rtp's header parser.
func FuzzClassify(f *testing.F) {
	f.Add(dataplanetest.RTPPacket(7, 7))
	f.Add(dataplanetest.RTCPPacket(7, 7))
	for _, b := range dataplanetest.BadDatagrams() {
		f.Add(b)
	}
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0})
	f.Add([]byte{0x8f, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		k := classify(b)
		var h rtp.Header
		_, perr := h.Unmarshal(b)
		isRTCPRange := len(b) > 1 && b[1] >= 192 && b[1] <= 223
		switch k {
		case kindRTP:
			if len(b) < 12 || b[0]>>6 != 2 || isRTCPRange {
				t.Fatalf("classify(%x) = rtp", b)
			}
			if perr != nil && b[0]&0x10 == 0 {
				t.Fatalf("classify(%x) = rtp but pion/rtp: %v", b, perr)
			}
		case kindRTCP:
			if len(b) < 8 || b[0]>>6 != 2 || !isRTCPRange || (int(binary.BigEndian.Uint16(b[2:]))+1)*4 > len(b) {
				t.Fatalf("classify(%x) = rtcp", b)
			}
		case kindInvalid:
			if perr == nil && h.Version == 2 && !isRTCPRange {
				t.Fatalf("classify(%x) = invalid but pion/rtp parses it as RTP", b)
			}
		}
	})
}
