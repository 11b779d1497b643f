package controlplane

import (
	"encoding/binary"
	"testing"
)

func rtpEvent(pt byte, ts uint32, ev byte, csrc int, ext bool) []byte {
	b := []byte{0x80 | byte(csrc), pt, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}
	binary.BigEndian.PutUint32(b[4:], ts)
	b = append(b, make([]byte, 4*csrc)...)
	if ext {
		b[0] |= 0x10
		b = append(b, 0xbe, 0xde, 0, 1, 1, 2, 3, 4)
	}
	return append(b, ev, 0x8a, 0x03, 0x20)
}

func TestTelephoneEventParsing(t *testing.T) {
	cases := []struct {
		name string
		pkts [][]byte
		want string
	}{
		{"one key", [][]byte{rtpEvent(101, 1, 5, 0, false)}, "5"},
		{"repeats are one event", [][]byte{rtpEvent(101, 1, 5, 0, false), rtpEvent(101, 1, 5, 0, false), rtpEvent(101, 1, 5, 0, false)}, "5"},
		{"two events", [][]byte{rtpEvent(101, 1, 1, 0, false), rtpEvent(101, 2, 11, 0, false)}, "1#"},
		{"star and A-D", [][]byte{rtpEvent(101, 1, 10, 0, false), rtpEvent(101, 2, 12, 0, false), rtpEvent(101, 3, 15, 0, false)}, "*AD"},
		{"csrc and extension skipped", [][]byte{rtpEvent(101, 7, 9, 2, true)}, "9"},
		{"audio ignored", [][]byte{rtpEvent(0, 1, 5, 0, false)}, ""},
		{"non-DTMF event ignored", [][]byte{rtpEvent(101, 1, 40, 0, false)}, ""},
		{"short", [][]byte{{0x80, 101, 0}}, ""},
		{"not rtp v2", [][]byte{append([]byte{0x40}, rtpEvent(101, 1, 5, 0, false)[1:]...)}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &tapState{pt: 101}
			got := ""
			for _, p := range c.pkts {
				if k, ok := st.event(p); ok {
					got += k
				}
			}
			if got != c.want {
				t.Fatalf("keys %q, want %q", got, c.want)
			}
		})
	}
}

func FuzzTelephoneEvent(f *testing.F) {
	f.Add(rtpEvent(101, 1, 5, 0, false))
	f.Add(rtpEvent(101, 1, 5, 3, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		st := &tapState{pt: 101}
		if k, ok := st.event(b); ok && len(k) != 1 {
			t.Fatalf("key %q", k)
		}
	})
}
