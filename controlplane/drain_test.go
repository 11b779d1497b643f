package controlplane_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
)

// TestDrainAndOverloadAnswers checks what a dispatcher probing with OPTIONS
// and a caller sending INVITEs see as a node drains, is overloaded, and
// takes calls again; and that draining keeps the call in progress.
func TestDrainAndOverloadAnswers(t *testing.T) {
	svc := startLimited(t, controlplane.Limits{MaxCalls: 2}, func(c *controlplane.Config) { c.App = writeApp(t, ringingApp) })
	d := svc.Daemon()
	r := newRawSIP(t, d.SIPAddr().String())

	options := func(id string) string {
		t.Helper()
		r.send(r.request("OPTIONS", id, "", "", "", 1))
		return finalFor(t, r, "OPTIONS")
	}
	type want struct {
		status, warning, retryAfter string
	}
	check := func(t *testing.T, res string, w want) {
		t.Helper()
		if !strings.HasPrefix(res, "SIP/2.0 "+w.status+" ") {
			t.Fatalf("want %s, got:\n%s", w.status, res)
		}
		if got := headerLine(res, "Retry-After"); !strings.Contains(got, w.retryAfter) || (w.retryAfter == "") != (got == "") {
			t.Fatalf("Retry-After %q, want %q:\n%s", got, w.retryAfter, res)
		}
		if w.warning != "" && !strings.Contains(headerLine(res, "Warning"), w.warning) {
			t.Fatalf("Warning without %q:\n%s", w.warning, res)
		}
	}

	// One call ringing: the node is neither draining nor full.
	r.send(r.request("INVITE", "first", "", "application/sdp", sdpOffer(4000, "0"), 1))
	r.expect(180)
	res := options("o1")
	check(t, res, want{status: "200"})
	for _, h := range []string{"Allow", "Accept", "Supported"} {
		if headerLine(res, h) == "" {
			t.Fatalf("OPTIONS 200 without %s:\n%s", h, res)
		}
	}

	d.Drain()
	for _, tc := range []struct {
		name string
		msg  func() string
		want want
	}{
		{"OPTIONS while draining", func() string { return r.request("OPTIONS", "o2", "", "", "", 1) }, want{"503", "draining", "30"}},
		{"INVITE while draining", func() string {
			return r.request("INVITE", "second", "", "application/sdp", sdpOffer(4002, "0"), 1)
		}, want{"503", "draining", "30"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.msg()
			r.send(msg)
			res := finalFor(t, r, strings.Fields(msg)[0])
			check(t, res, tc.want)
			if strings.HasPrefix(msg, "OPTIONS") && headerLine(res, "Allow") == "" {
				t.Fatalf("503 to OPTIONS without Allow:\n%s", res)
			}
		})
	}
	di := d.DrainInfo()
	if !di.Draining || di.Since.IsZero() || len(d.Connections()) != 1 {
		t.Fatalf("drain info %+v with %d connections: the ringing call must stay", di, len(d.Connections()))
	}

	// Back in service; a second call fills the node (MaxCalls 2): the
	// probe now says overloaded, without using up an INVITE.
	d.Undrain()
	check(t, options("o3"), want{status: "200"})
	r.send(r.request("INVITE", "third", "", "application/sdp", sdpOffer(4004, "0"), 1))
	r.expect(180)
	check(t, options("o4"), want{"503", "limit calls", "5"})

	// A drain waits for the calls to end, on their end: cancel both.
	d.Drain()
	done := make(chan error, 1)
	go func() { done <- d.WaitIdle(context.Background()) }()
	r.send(r.cancelFor("first", 1, 1))
	r.expect(200)
	r.send(r.cancelFor("third", 6, 1))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(d.Connections()); n != 0 {
		t.Fatalf("%d connections after WaitIdle", n)
	}
}

// finalFor reads responses until a final one to method.
func finalFor(t *testing.T, r *rawSIP, method string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 65535)
	for {
		_ = r.conn.SetReadDeadline(deadline)
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no final response to %s: %v", method, err)
		}
		msg := string(buf[:n])
		if strings.HasPrefix(msg, "SIP/2.0 ") && !strings.HasPrefix(msg, "SIP/2.0 1") && strings.HasSuffix(headerLine(msg, "CSeq"), method) {
			return msg
		}
	}
}
