package controlplane_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/internal/testenv"
)

// The hostile cases where sources must differ: the daemon in one network
// namespace, two callers at two addresses of another, over a veth pair.

const (
	nsDaemon  = "10.202.1.2"
	nsCallerA = "10.202.1.1"
	nsCallerB = "10.202.1.3"
)

// startInNetns starts a service whose SIP sockets live in a namespace of
// their own, and returns it with the callers' namespace.
func startInNetns(t *testing.T, lim controlplane.Limits) (*controlplane.Service, *testenv.Netns) {
	t.Helper()
	testenv.Privileged(t)
	callers, daemon := testenv.NewNetns(t), testenv.NewNetns(t)
	v := testenv.NewVeth(t, callers, daemon, nsCallerA+"/24", nsDaemon+"/24")
	callers.MustIP(t, "addr", "add", nsCallerB+"/24", "dev", v.AName, "nodad")
	eng := newTestEngine()
	t.Cleanup(func() { eng.Close() })
	var svc *controlplane.Service
	daemon.MustDo(t, func() error {
		var err error
		svc, err = controlplane.NewService(context.Background(), controlplane.Config{
			Listen: nsDaemon + ":0", MediaIP: netip.MustParseAddr(nsDaemon), Engine: eng, Admin: "-",
			RecordingsDir: t.TempDir(), RTPPorts: dataplane.PortRange{Min: 32000, Max: 32999},
			Limits: lim, Logger: testLogger(t),
		})
		return err
	})
	t.Cleanup(func() { svc.Close() })
	return svc, callers
}

// rawFrom is a rawSIP whose socket is bound to addr in ns.
func rawFrom(t *testing.T, ns *testenv.Netns, addr, to string) *rawSIP {
	t.Helper()
	var c *net.UDPConn
	ns.MustDo(t, func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(addr)})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return &rawSIP{t: t, conn: c, to: to}
}

// TestHostileNetnsInviteRatePerSource: a source over its INVITE rate is
// refused while another source, at the same moment, is served.
func TestHostileNetnsInviteRatePerSource(t *testing.T) {
	svc, callers := startInNetns(t, controlplane.Limits{InviteRatePerSource: 0.5}) // burst of one
	to := svc.Daemon().SIPAddr().String()
	a, b := rawFrom(t, callers, nsCallerA, to), rawFrom(t, callers, nsCallerB, to)
	a.send(a.request("INVITE", "a1", "", "text/plain", "x", 1))
	a.expect(415)
	a.send(a.request("INVITE", "a2", "", "text/plain", "x", 1))
	if res := a.expect(503); !strings.Contains(res, "invite_rate_source") || headerLine(res, "Retry-After") == "" {
		t.Fatalf("503 without its cause or Retry-After:\n%s", res)
	}
	// B's first INVITE is B's own: served, and answered to B's address.
	b.send(b.request("INVITE", "b1", "", "text/plain", "x", 1))
	if res := b.expectFinal(); !strings.HasPrefix(res, "SIP/2.0 415 ") {
		t.Fatalf("the second source was refused with A's limit:\n%s", res)
	}
	b.send(b.request("INVITE", "b2", "", "text/plain", "x", 1))
	b.expect(503)
}

// TestHostileNetnsTCPPerSource: a source holding its cap of TCP
// connections does not keep another source out.
func TestHostileNetnsTCPPerSource(t *testing.T) {
	svc, callers := startInNetns(t, controlplane.Limits{MaxTCPConnsPerSource: 2})
	to := svc.Daemon().SIPAddr().String()
	dial := func(from string) net.Conn {
		var c net.Conn
		callers.MustDo(t, func() error {
			var err error
			c, err = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).Dial("tcp", to)
			return err
		})
		t.Cleanup(func() { c.Close() })
		return c
	}
	for range 2 {
		if _, err := dial(nsCallerA).Write([]byte("\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	readsToEOF(t, dial(nsCallerA)) // A's third
	c := dial(nsCallerB)
	opt := "OPTIONS sip:x@" + to + " SIP/2.0\r\nVia: SIP/2.0/TCP " + c.LocalAddr().String() + ";branch=z9hG4bK-ns-1\r\n" +
		"From: <sip:b@" + nsCallerB + ">;tag=b\r\nTo: <sip:x@" + to + ">\r\nCall-ID: ns-tcp-b\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(opt)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 ") {
		t.Fatalf("the second source's connection: %q %v", buf[:n], err)
	}
}
