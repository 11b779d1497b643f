package userspace

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/recfork/recfork/dataplane"
)

// TestMediaPaths: every relay and fork of this engine is on the userspace
// path, listed per endpoint: a half join only for the endpoint whose media
// is relayed, echo as a relay to itself, forks by direction.
func TestMediaPaths(t *testing.T) {
	e := newTestEngine(t, Config{PortRange: testRange})
	lo := netip.MustParseAddr("127.0.0.1")
	open := func() dataplane.EndpointID {
		t.Helper()
		info, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo, Remote: netip.AddrPortFrom(lo, 9)})
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	a, b, c, src := open(), open(), open(), open()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Join(a, b, dataplane.Full))
	must(e.Join(c, a, dataplane.Half)) // what c receives goes out of a
	must(e.Join(c, c, dataplane.Full))
	must(e.AddFork(a, dataplane.Outbound, dataplane.ForkConfig{Recorder: netip.AddrPortFrom(lo, 40000), Source: src}))

	u := dataplane.PathUserspace
	cases := []struct {
		id     dataplane.EndpointID
		relays []dataplane.EndpointID
		forks  []dataplane.Direction
	}{
		{a, []dataplane.EndpointID{b}, []dataplane.Direction{dataplane.Outbound}},
		{b, []dataplane.EndpointID{a}, nil},
		{c, []dataplane.EndpointID{a, c}, nil},
		{src, nil, nil},
	}
	for _, tc := range cases {
		p, err := e.MediaPaths(tc.id)
		must(err)
		if len(p.Relays) != len(tc.relays) || len(p.Forks) != len(tc.forks) {
			t.Fatalf("endpoint %d: %+v, want relays to %v and forks %v", tc.id, p, tc.relays, tc.forks)
		}
		for i, to := range tc.relays {
			if r := p.Relays[i]; r.To != to || r.Path != u || r.Reason == "" {
				t.Fatalf("endpoint %d relay %d: %+v, want to %d on %s with a reason", tc.id, i, r, to, u)
			}
		}
		for i, d := range tc.forks {
			if f := p.Forks[i]; f.Direction != d || f.Path != u || f.Reason == "" {
				t.Fatalf("endpoint %d fork %d: %+v, want %s on %s", tc.id, i, f, d, u)
			}
		}
		want := dataplane.PathNone
		if len(tc.relays) > 0 {
			want = u
		}
		if got, _ := p.Relay(); got != want {
			t.Fatalf("endpoint %d relays sum up as %s, want %s", tc.id, got, want)
		}
	}
	if _, err := e.MediaPaths(999); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}
