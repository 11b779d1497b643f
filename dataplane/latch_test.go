package dataplane

import (
	"errors"
	"net/netip"
	"testing"
)

func TestMayLatch(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name     string
		p        LatchPolicy
		sig, src string
		n        uint32
		mayLatch bool
	}{
		{"address: same address", LatchAddress, "198.51.100.7", "198.51.100.7", 1, true},
		{"address: same address late", LatchAddress, "198.51.100.7", "198.51.100.7", 1000, true},
		{"address: other address", LatchAddress, "10.0.0.7", "203.0.113.9", 1, false},
		{"address: mapped form", LatchAddress, "::ffff:198.51.100.7", "198.51.100.7", 1, true},
		{"nat: private signalled, first packet", LatchNAT, "192.168.1.20", "203.0.113.9", 1, true},
		{"nat: private signalled, last of window", LatchNAT, "10.1.2.3", "203.0.113.9", NATLatchWindow, true},
		{"nat: private signalled, after window", LatchNAT, "10.1.2.3", "203.0.113.9", NATLatchWindow + 1, false},
		{"nat: after window, same address", LatchNAT, "10.1.2.3", "10.1.2.3", 99, true},
		{"nat: public signalled", LatchNAT, "198.51.100.7", "203.0.113.9", 1, false},
		{"nat: cgnat signalled", LatchNAT, "100.72.0.1", "203.0.113.9", 2, true},
		{"nat: ula signalled", LatchNAT, "fd00::5", "2001:db8::9", 1, true},
		{"nat: link-local signalled", LatchNAT, "169.254.3.4", "203.0.113.9", 1, true},
		{"nat: global v6 signalled", LatchNAT, "2001:db8::5", "2001:db8::9", 1, false},
		{"off: same address", LatchOff, "198.51.100.7", "198.51.100.7", 1, false},
		{"off: private", LatchOff, "10.0.0.1", "203.0.113.9", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.MayLatch(a(tc.sig), a(tc.src), tc.n); got != tc.mayLatch {
				t.Fatalf("MayLatch(%s, %s, %d) under %s = %v, want %v", tc.sig, tc.src, tc.n, tc.p, got, tc.mayLatch)
			}
		})
	}
}

func TestParseLatchPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want LatchPolicy
		err  bool
	}{
		{"", LatchAddress, false}, {"address", LatchAddress, false}, {"nat", LatchNAT, false},
		{"off", LatchOff, false}, {"NAT", 0, true}, {"any", 0, true},
	} {
		got, err := ParseLatchPolicy(tc.in)
		if tc.err {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseLatchPolicy(%q) error %v, want ErrInvalid", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != map[string]string{"": "address"}[tc.in]+tc.in {
			t.Errorf("ParseLatchPolicy(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
