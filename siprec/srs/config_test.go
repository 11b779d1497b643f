package srs

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{}},
		{"bad listen", Config{Dir: dir, Listen: "nonsense"}},
		{"listen host not an ip", Config{Dir: dir, Listen: "localhost:0"}},
		{"bad port", Config{Dir: dir, Listen: "127.0.0.1:99999"}},
		{"wildcard without media ip", Config{Dir: dir, Listen: "0.0.0.0:0"}},
		{"wildcard media ip", Config{Dir: dir, MediaIP: netip.MustParseAddr("0.0.0.0")}},
		{"port range inverted", Config{Dir: dir, PortRange: PortRange{Min: 5000, Max: 4000}}},
		{"port range one port", Config{Dir: dir, PortRange: PortRange{Min: 5000, Max: 5000}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, err := New(c.cfg)
			if err == nil {
				srv.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestCloseWithoutRun(t *testing.T) {
	srv, err := New(Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", MediaIP: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if !srv.Addr().IsValid() || srv.Addr().Port() == 0 {
		t.Fatalf("addr %v", srv.Addr())
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := srv.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("run after close: %v", err)
	}
	if err := srv.Bye(context.Background(), "x"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("bye: %v", err)
	}
}

// freePair finds an even port whose pair is free now (other packages' tests
// run at the same time and take ports too).
func freePair(t *testing.T) int {
	t.Helper()
	for p := 46000; p < 47000; p += 2 {
		a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p
	}
	t.Fatal("no free port pair in 46000-46999")
	return 0
}

func TestPortAlloc(t *testing.T) {
	port := freePair(t)
	p, err := newPortAlloc(netip.MustParseAddr("127.0.0.1"), PortRange{Min: uint16(port - 1), Max: uint16(port + 2)})
	if err != nil {
		t.Fatal(err)
	}
	// Odd Min rounds up: only the pair port/port+1 fits in port-1..port+2.
	a, b, err := p.open()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if a.LocalAddr().(*net.UDPAddr).Port != port || b.LocalAddr().(*net.UDPAddr).Port != port+1 {
		t.Fatalf("got %s %s for pair %d", a.LocalAddr(), b.LocalAddr(), port)
	}
	if _, _, err := p.open(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("exhausted range: %v", err)
	}
}

// TestNoPortsRejects: an INVITE whose streams get no ports is refused with
// 503 and leaves nothing behind.
func TestNoPortsRejects(t *testing.T) {
	dir := t.TempDir()
	port := freePair(t)
	srv, err := New(Config{Dir: dir, PortRange: PortRange{Min: uint16(port), Max: uint16(port + 1)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	src := newTestSRC(t, srv.Addr().String(), "UDP")
	mp := "multipart/mixed;boundary=" + testBoundary
	// The first call takes the only pair; the second gets none.
	if res := src.invite(waitCtx(t), mp, multipartBody(src.sdpOffer([]string{"sendonly"}, []string{"1"}, nil), testMetadata("complete", "1"))); res.StatusCode != 200 {
		t.Fatalf("first invite: %d", res.StatusCode)
	}
	src2 := newTestSRC(t, srv.Addr().String(), "UDP")
	res := src2.invite(waitCtx(t), mp, multipartBody(src2.sdpOffer([]string{"sendonly"}, []string{"1"}, nil), testMetadata("complete", "1")))
	if res.StatusCode != 503 {
		t.Fatalf("second invite: %d %s", res.StatusCode, res.Reason)
	}
	if n := len(srv.Sessions()); n != 1 {
		t.Fatalf("%d sessions", n)
	}
}
