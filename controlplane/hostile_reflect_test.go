package controlplane_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/controlplane"
)

// TestHostileReflection sends one INVITE from a UDP source that never
// answers (never ACKs, never answers a BYE) and counts what comes back to
// it until the daemon has forgotten the call and every SIP timer that could
// still send has run out: at most one provisional, the final response's
// RFC 3261 retransmissions, no BYE (reflect.go). Before the bound, the
// accepted call drew 21 datagrams here.
func TestHostileReflection(t *testing.T) {
	// Short timers keep the test short; the counts are those of the
	// defaults, since every retransmission schedule is in units of T1/T2.
	t1, t2, t4 := sip.T1, sip.T2, sip.T4
	sip.SetTimers(20*time.Millisecond, 160*time.Millisecond, 200*time.Millisecond)
	defer sip.SetTimers(t1, t2, t4)
	for _, tc := range []struct {
		name  string
		app   string
		ctype string
		body  string
		final string
	}{
		{"accepted", "", "application/sdp", sdpOffer(4000, "0"), "SIP/2.0 200 "},
		{"rejected", "", "text/plain", "x", "SIP/2.0 415 "},
		{"ringing, then cancelled by the alert timeout", ringingApp, "application/sdp", sdpOffer(4000, "0"), "SIP/2.0 480 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := startLimited(t, controlplane.Limits{}, func(c *controlplane.Config) {
				if tc.app != "" {
					c.App = writeApp(t, tc.app)
				}
				c.AlertTimeout = 200 * time.Millisecond
			})
			r := newRawSIP(t, svc.Daemon().SIPAddr().String())
			req := r.request("INVITE", "reflect", "", tc.ctype, tc.body, 1)
			r.send(req)
			var got []string
			bytesIn := 0
			// The call ends (no ACK); then wait out 64*T1 more, the longest
			// any transaction may still retransmit (Timers B, F, H, L).
			waitForRead(t, r, &got, &bytesIn, func() bool { return len(svc.Daemon().Connections()) == 0 })
			readUntil(t, r, &got, &bytesIn, time.Now().Add(64*sip.T1+4*sip.T2))
			t.Logf("%d datagrams, %d bytes, to one INVITE of %d bytes: %q", len(got), bytesIn, len(req), got)
			prov, finals := 0, 0
			for _, l := range got {
				switch {
				case strings.HasPrefix(l, "SIP/2.0 1"):
					prov++
				case strings.HasPrefix(l, tc.final):
					finals++
				default:
					t.Errorf("unexpected %q", l)
				}
			}
			if prov > 1 || finals == 0 || finals > 11 || len(got) > controlplane.MaxReflected {
				t.Fatalf("%d provisional, %d final: over the bound of 1 + 11", prov, finals)
			}
		})
	}
}

// readUntil reads datagrams into got until the deadline.
func readUntil(t *testing.T, r *rawSIP, got *[]string, n *int, until time.Time) {
	t.Helper()
	buf := make([]byte, 65535)
	for {
		_ = r.conn.SetReadDeadline(until)
		m, _, err := r.conn.ReadFromUDP(buf)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(buf[:m]), "\r\n")
		*got = append(*got, first)
		*n += m
	}
}

// waitForRead reads datagrams into got until cond holds.
func waitForRead(t *testing.T, r *rawSIP, got *[]string, n *int, cond func() bool) {
	t.Helper()
	buf := make([]byte, 65535)
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("the call never ended")
		}
		_ = r.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		m, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(buf[:m]), "\r\n")
		*got = append(*got, first)
		*n += m
	}
}

// TestHostileLargeUDPResponse: an INVITE over UDP whose answer is larger
// than a 1500-byte MTU (a long Record-Route, copied into the response by
// RFC 3261 §12.1.1) is answered over UDP all the same (§18.2.2: a response
// goes back over its request's transport; the kernel fragments it).
func TestHostileLargeUDPResponse(t *testing.T) {
	svc := startLimited(t, controlplane.Limits{}, nil)
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	var rr []string
	for i := range 30 {
		rr = append(rr, fmt.Sprintf("<sip:proxy%02d.example.com;lr;padding=%s>", i, strings.Repeat("p", 20)))
	}
	const cid = "large-answer"
	r.send(withHeaders(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0"), 1), "Record-Route: "+strings.Join(rr, ",")))
	ok := r.expect(200)
	if len(ok) <= 1500 || !strings.Contains(ok, "proxy29.example.com") {
		t.Fatalf("a %d-byte answer; want one over 1500 bytes carrying the Record-Route", len(ok))
	}
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))
	r.send(r.request("BYE", cid, tag, "", "", 2))
	r.expect(200)
	waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
}
