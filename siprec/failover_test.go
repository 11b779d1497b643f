package siprec

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// A UDP-only SRS: the large INVITE goes to TCP first (RFC 3261 §18.1.1),
// the refused connection sends it over UDP, as one attempt.
func TestTCPRefusedFallsBackToUDP(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j)
	srs.tcp.Close()
	h.record(t, srs.uri(), "active", "active")
	inv := srs.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpStart, "", ModeActive, ModeActive)
	if inv.req.Transport() != "UDP" || e.Transport != "udp" || e.SRS != srs.uri() {
		t.Fatalf("transport %s, event %+v", inv.req.Transport(), e)
	}
	if n := len(inv.req.String()); !tooLargeForUDP(n, pathMTU) {
		t.Fatalf("the INVITE (%d bytes) should have been too large for UDP by §18.1.1", n)
	}
	st, ok := h.c.Status(h.leg.ConnectionID)
	if !ok || st.Transport != "udp" || st.Active != srs.uri() || st.Remote != srs.addr {
		t.Fatalf("status %+v", st)
	}
	// In-dialog requests stay on UDP.
	h.record(t, srs.uri(), "inactive", "")
	if re := srs.waitInvite(t); re.req.Transport() != "UDP" {
		t.Fatalf("re-invite over %s", re.req.Transport())
	}
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeActive)
}

// Forced TCP never falls back.
func TestForcedTCPRefusedIsUnreachable(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j)
	srs.tcp.Close()
	h.record(t, srs.uri()+";transport=tcp", "active", "active")
	expect(t, h.wait(t), EventError, "", ReasonSRSUnreachable, ModeNone, ModeNone)
}

func TestParseSRSList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{"sip:srs@10.0.0.1", 1, false},
		{"sip:a@10.0.0.1:5070;transport=tcp, sip:b@srs.example.com", 2, false},
		{" sip:a@h1 ,sip:b@h2,sip:c@h3 ", 3, false},
		{"sip:a@h1,,sip:b@h2", 0, true},
		{"sip:a@h1,http://x", 0, true},
		{"", 0, true},
		{"sip:", 0, true},
	} {
		l, err := ParseSRSList(tc.in)
		if (err != nil) != tc.fail || len(l) != tc.n {
			t.Errorf("ParseSRSList(%q) = %d URIs, err %v", tc.in, len(l), err)
		}
	}
}

// Each answer the profile names moves the request to the next SRS of the
// list; others resolve it.
func TestSRSListFailover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first    srsReply
		codes    []int
		failover bool
		code     string
	}{
		{"503", srsReply{code: 503}, nil, true, ""},
		{"480", srsReply{code: 480}, nil, true, ""},
		{"500", srsReply{code: 500}, nil, true, ""},
		{"408", srsReply{code: 408}, nil, true, ""},
		{"no answer", srsReply{silent: true}, nil, true, ""},
		{"486 is final", srsReply{code: 486}, nil, false, ReasonSRSRejected},
		{"600 not by default", srsReply{code: 600}, nil, false, ReasonSRSRejected},
		{"603 by profile", srsReply{code: 603}, []int{503, 603}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Timeouts.Invite = 500 * time.Millisecond
				c.DefaultProfile.FailoverCodes = tc.codes
			})
			a := newTestSRS(t, h.j, tc.first)
			b := newTestSRS(t, h.j)
			list := a.uri() + ", " + b.uri()
			h.record(t, list, "active", "active")
			a.waitInvite(t)
			e := h.wait(t)
			if !tc.failover {
				expect(t, e, EventError, "", tc.code, ModeNone, ModeNone)
				return
			}
			b.waitInvite(t)
			expect(t, e, EventUpdate, OpStart, "", ModeActive, ModeActive)
			if e.URI != list || e.SRS != b.uri() {
				t.Fatalf("event uri %q srs %q", e.URI, e.SRS)
			}
		})
	}
}

// A 503 with Retry-After keeps the SRS out of the next requests' way until it
// passes; every SRS failing resolves with the last reason.
func TestRetryAfterSkipsSRS(t *testing.T) {
	h := newHarness(t)
	a := newTestSRS(t, h.j, srsReply{code: 503, retryAfter: "120"})
	b := newTestSRS(t, h.j)
	list := a.uri() + "," + b.uri()
	h.record(t, list, "active", "")
	a.waitInvite(t)
	b.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeNone)
	var seen bool
	for _, st := range h.c.SRSHealth() {
		if st.URI == a.uri() {
			seen = true
			if st.RetryAfter.Before(time.Now().Add(100 * time.Second)) {
				t.Fatalf("retry-after not kept: %+v", st)
			}
		}
	}
	if !seen {
		t.Fatalf("no health entry for %s: %+v", a.uri(), h.c.SRSHealth())
	}
	// A second connection's recording goes to b directly.
	if err := h.c.End(context.Background(), h.leg.ConnectionID); err != nil {
		t.Fatal(err)
	}
	leg2 := testLeg()
	leg2.ConnectionID = "conn2"
	if err := h.c.Record(leg2, Request{Type: "siprec", URI: list, Inbound: "active"}); err != nil {
		t.Fatal(err)
	}
	b.waitInvite(t)
	e := h.wait(t)
	if e.ConnectionID != "conn2" || e.Name != EventUpdate || e.SRS != b.uri() {
		t.Fatalf("second recording: %+v", e)
	}
	a.mu.Lock()
	n := len(a.invites)
	a.mu.Unlock()
	if n != 1 {
		t.Fatalf("the skipped SRS saw %d INVITEs", n)
	}
	if err := h.c.End(context.Background(), "conn2"); err != nil {
		t.Fatal(err)
	}
}

// The SRS in use ending the session mid-call: the recording moves to the
// next SRS with the same metadata session, and the document hears one
// bvr.record.update (failover).
func TestTakeoverOnSRSBye(t *testing.T) {
	h := newHarness(t)
	a := newTestSRS(t, h.j)
	b := newTestSRS(t, h.j)
	list := a.uri() + "," + b.uri()
	h.record(t, list, "active", "inactive")
	first := a.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeInactive)
	a.bye(t)
	second := b.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpFailover, "", ModeActive, ModeInactive)
	if e.SRS != b.uri() || e.Previous != a.uri() || !strings.HasPrefix(e.Cause, ReasonSRSEnded) {
		t.Fatalf("failover event %+v", e)
	}
	if first.meta == nil || second.meta == nil || len(second.meta.Sessions) != 1 ||
		second.meta.Sessions[0].ID != first.meta.Sessions[0].ID {
		t.Fatalf("metadata session changed across the takeover")
	}
	var dirs []string
	for _, st := range second.streams {
		dirs = append(dirs, st.Dir)
	}
	if strings.Join(dirs, ",") != "sendonly,inactive" {
		t.Fatalf("takeover offer directions %v", dirs)
	}
	fk, ok := h.eng.fork(7, 1)
	if !ok || fk.Recorder.Port() != 40000 {
		t.Fatalf("inbound fork after takeover: %+v %v", fk, ok)
	}
	if st, _ := h.c.Status(h.leg.ConnectionID); st.Failovers != 1 || st.Active != b.uri() {
		t.Fatalf("status %+v", st)
	}
	// A single SRS ending the session is still srs-ended.
	b.bye(t)
	e = h.wait(t)
	expect(t, e, EventError, "", ReasonSRSEnded, ModeNone, ModeNone)
}

// The SRS in use no longer answering a re-INVITE: the request goes to the
// next SRS and resolves there.
func TestTakeoverOnReinviteTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Timeouts.Invite = 400 * time.Millisecond })
	a := newTestSRS(t, h.j, srsReply{}, srsReply{silent: true})
	b := newTestSRS(t, h.j)
	list := a.uri() + "," + b.uri()
	h.record(t, list, "active", "active")
	a.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeActive)
	h.record(t, list, "inactive", "")
	a.waitInvite(t)
	inv := b.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpUpdate, "", ModeInactive, ModeActive)
	if e.SRS != b.uri() || e.Previous != a.uri() || !strings.HasPrefix(e.Cause, ReasonSRSTimeout) {
		t.Fatalf("event %+v", e)
	}
	if inv.streams[0].Dir != "inactive" || inv.streams[1].Dir != "sendonly" {
		t.Fatalf("offer to the next SRS %+v", inv.streams)
	}
}

// OPTIONS keepalive: a configured SRS that stops answering is marked down
// after Failures probes, the session on it moves to the next SRS, and the
// dead SRS is skipped until it answers again.
func TestKeepaliveTakeover(t *testing.T) {
	var aURI, bURI string
	a0 := newTestSRS(t, &journal{})
	b0 := newTestSRS(t, &journal{})
	aURI, bURI = a0.uri(), b0.uri()
	h := newHarness(t, func(c *Config) {
		c.SRS = []string{aURI + "," + bURI}
		c.Keepalive = Keepalive{Interval: 50 * time.Millisecond, Failures: 2, Timeout: 50 * time.Millisecond}
	})
	h.record(t, aURI+","+bURI, "active", "active")
	a0.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeActive)
	up := func(uri string) bool {
		for _, st := range h.c.SRSHealth() {
			if st.URI == uri {
				return st.Up && st.Configured && st.Probes > 0
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !up(aURI) || !up(bURI); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not both probed and up: %+v", h.c.SRSHealth())
		}
	}
	// The SRS dies: no answer to anything any more.
	a0.kill()
	b0.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpFailover, "", ModeActive, ModeActive)
	if e.SRS != bURI || e.Previous != aURI || !strings.Contains(e.Cause, "options") {
		t.Fatalf("failover event %+v", e)
	}
	if up(aURI) {
		t.Fatalf("dead SRS still up: %+v", h.c.SRSHealth())
	}
}

// RFC 3263 with a resolver the test controls: SRV records in priority order,
// the first target silent, the second takes the session; a name without SRV
// resolves by A on the URI's port.
func TestDNSResolution(t *testing.T) {
	j := &journal{}
	dead := newTestSRS(t, j, srsReply{silent: true})
	live := newTestSRS(t, j)
	dns := newTestDNS(t, map[string][]net.SRV{
		"_sip._udp.srs.test.": {{Target: "a.srs.test.", Port: dead.addr.Port(), Priority: 10, Weight: 1},
			{Target: "b.srs.test.", Port: live.addr.Port(), Priority: 20, Weight: 1}},
	}, map[string]netip.Addr{"a.srs.test.": lo, "b.srs.test.": lo, "plain.srs.test.": lo})
	h := newHarness(t, func(c *Config) {
		c.Resolver = dns
		c.Timeouts.Invite = 400 * time.Millisecond
		c.DefaultProfile.Transport = "udp"
	})
	h.record(t, "sip:rec@srs.test", "active", "active")
	dead.waitInvite(t)
	inv := live.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpStart, "", ModeActive, ModeActive)
	if inv.req.Recipient.Host != "srs.test" || e.SRS != "sip:rec@srs.test" {
		t.Fatalf("request uri %s, event %+v", inv.req.Recipient.String(), e)
	}
	if st, _ := h.c.Status(h.leg.ConnectionID); st.Remote != live.addr {
		t.Fatalf("sent to %s, want %s", st.Remote, live.addr)
	}
	if err := h.c.End(context.Background(), h.leg.ConnectionID); err != nil {
		t.Fatal(err)
	}

	// A records only, with the port in the URI.
	h.record(t, fmt.Sprintf("sip:rec@plain.srs.test:%d", live.addr.Port()), "active", "")
	live.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeNone)

	// A name that does not resolve is srs-unreachable.
	if err := h.c.End(context.Background(), h.leg.ConnectionID); err != nil {
		t.Fatal(err)
	}
	h.record(t, "sip:rec@nowhere.srs.test", "active", "")
	expect(t, h.wait(t), EventError, "", ReasonSRSUnreachable, ModeNone, ModeNone)
}

// testDNS is a DNS server on loopback answering SRV and A questions from
// tables, used through a real *net.Resolver.
type testDNS struct {
	*net.Resolver
	conn net.PacketConn
	srv  map[string][]net.SRV
	a    map[string]netip.Addr
	wg   sync.WaitGroup
}

func newTestDNS(t *testing.T, srv map[string][]net.SRV, a map[string]netip.Addr) *testDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{conn: conn, srv: srv, a: a}
	addr := conn.LocalAddr().String()
	d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
	d.wg.Add(1)
	go d.serve()
	t.Cleanup(func() { conn.Close(); d.wg.Wait() })
	return d
}

func (d *testDNS) serve() {
	defer d.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		hdr, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true})
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		name := strings.ToLower(q.Name.String())
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		found := false
		switch q.Type {
		case dnsmessage.TypeSRV:
			for _, r := range d.srv[name] {
				found = true
				_ = b.SRVResource(rh, dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port,
					Target: dnsmessage.MustNewName(r.Target)})
			}
		case dnsmessage.TypeA:
			if a, ok := d.a[name]; ok && a.Is4() {
				found = true
				_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			}
		}
		if _, known := d.a[name]; !found && !known && d.srv[name] == nil {
			b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError})
			_ = b.StartQuestions()
			_ = b.Question(q)
		}
		out, err := b.Finish()
		if err == nil {
			_, _ = d.conn.WriteTo(out, from)
		}
	}
}

// A UDP-only SRS answers the probes over UDP once TCP is refused: it stays
// up, and so does one that listens on both.
func TestKeepaliveProbesEitherTransport(t *testing.T) {
	udpOnly := newTestSRS(t, &journal{})
	udpOnly.tcp.Close()
	both := newTestSRS(t, &journal{})
	h := newHarness(t, func(c *Config) {
		c.SRS = []string{udpOnly.uri(), both.uri()}
		c.Keepalive = Keepalive{Interval: 30 * time.Millisecond, Failures: 1, Timeout: 200 * time.Millisecond}
	})
	probed := func(min uint64) bool {
		n := 0
		for _, st := range h.c.SRSHealth() {
			if st.Probes >= min {
				n++
			}
		}
		return n == 2
	}
	for deadline := time.Now().Add(10 * time.Second); !probed(3); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not probed three times: %+v", h.c.SRSHealth())
		}
	}
	for _, st := range h.c.SRSHealth() {
		if !st.Up || st.ProbeFailures != 0 {
			t.Fatalf("%+v", st)
		}
	}
}

// An SRS host with nothing listening: TCP is refused, the UDP retry goes
// unanswered; the call ending abandons the request at once.
func TestEndAbandonsUnansweredFallback(t *testing.T) {
	dead := newTestSRS(t, &journal{})
	uri := dead.uri()
	dead.kill()
	h := newHarness(t, func(c *Config) {
		c.Timeouts.Invite = 30 * time.Second
		c.SRS = []string{uri}
		c.Keepalive = Keepalive{Interval: 10 * time.Second}
	})
	h.record(t, uri, "active", "active")
	done := make(chan error, 1)
	go func() { done <- h.c.End(context.Background(), h.leg.ConnectionID) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("End did not abandon the INVITE")
	}
	expect(t, h.wait(t), EventError, "", ReasonConnectionState, ModeNone, ModeNone)
}
