package controlplane_test

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
)

// headerCase is a request with one mandatory header (RFC 3261 §8.1.1)
// removed or spoiled, written as raw bytes so that no SIP stack of ours
// repairs it on the way out.
type headerCase struct {
	name string
	edit func(msg string) string
	want string // status line prefix
}

func dropHeader(name string) func(string) string {
	re := regexp.MustCompile(`(?m)^` + name + `:[^\r\n]*\r\n`)
	return func(msg string) string { return re.ReplaceAllString(msg, "") }
}

func replaceHeader(name, value string) func(string) string {
	re := regexp.MustCompile(`(?m)^` + name + `:[^\r\n]*\r\n`)
	return func(msg string) string { return re.ReplaceAllString(msg, name+": "+value+"\r\n") }
}

func headerCases() []headerCase {
	return []headerCase{
		{"missing To", dropHeader("To"), "SIP/2.0 400 Missing To"},
		{"missing From", dropHeader("From"), "SIP/2.0 400 Missing From"},
		{"missing Call-ID", dropHeader("Call-ID"), "SIP/2.0 400 Missing Call-ID"},
		{"missing CSeq", dropHeader("CSeq"), "SIP/2.0 400 Missing CSeq"},
		{"missing Via", dropHeader("Via"), "SIP/2.0 400 Missing Via"},
		{"CSeq of another method", replaceHeader("CSeq", "1 BYE"), "SIP/2.0 400 CSeq Method Mismatch"},
		{"CSeq without a number", replaceHeader("CSeq", "x INVITE"), "SIP/2.0 400 Malformed CSeq"},
		{"CSeq without a method", replaceHeader("CSeq", "1"), "SIP/2.0 400 Malformed CSeq"},
		{"CSeq number over 2**31", replaceHeader("CSeq", "4294967296 INVITE"), "SIP/2.0 400 Malformed CSeq"},
	}
}

// rawInvite is an INVITE without body from local to the daemon at to.
func rawInvite(transport, local, to, callID string) string {
	return fmt.Sprintf("INVITE sip:x@%s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-hdr-%s\r\n"+
		"From: <sip:raw@%s>;tag=rawtag\r\nTo: <sip:x@%s>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\n"+
		"Contact: <sip:raw@%s>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		to, transport, local, callID, local, to, callID, local)
}

// TestHostileMandatoryHeaders sends requests that lack a mandatory header
// over UDP and TCP: each gets one 400 naming the header, whether the SIP
// stack below the handlers or the handlers noticed it, and no call starts.
func TestHostileMandatoryHeaders(t *testing.T) {
	svc := startLimited(t, controlplane.Limits{InviteRate: -1, InviteRatePerSource: -1}, nil)
	addr := svc.Daemon().SIPAddr().String()
	for i, tc := range headerCases() {
		t.Run("UDP/"+tc.name, func(t *testing.T) {
			r := newRawSIP(t, addr)
			r.send(tc.edit(rawInvite("UDP", r.conn.LocalAddr().String(), addr, fmt.Sprintf("hdr-udp-%d", i))))
			if got := r.expectAny(); !strings.HasPrefix(got, tc.want+"\r\n") {
				t.Fatalf("want %q, got:\n%s", tc.want, got)
			}
		})
		t.Run("TCP/"+tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte(tc.edit(rawInvite("TCP", c.LocalAddr().String(), addr, fmt.Sprintf("hdr-tcp-%d", i))))); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || strings.TrimRight(line, "\r\n") != tc.want {
				t.Fatalf("want %q, got %q (%v)", tc.want, line, err)
			}
		})
	}
	if n := len(svc.Daemon().Connections()); n != 0 {
		t.Fatalf("%d connections after refused requests", n)
	}
}

// expectAny returns the next datagram, failing after a deadline.
func (r *rawSIP) expectAny() string {
	r.t.Helper()
	buf := make([]byte, 65535)
	_ = r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := r.conn.ReadFromUDP(buf)
	if err != nil {
		r.t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

// TestHostileTCPFraming pipelines a good request, a refused one with a body
// and a good one on one connection: the refused request's body is skipped,
// so the third is still read as a request and answered.
func TestHostileTCPFraming(t *testing.T) {
	svc := startLimited(t, controlplane.Limits{}, nil)
	addr := svc.Daemon().SIPAddr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opt := func(n int, body string) string {
		return fmt.Sprintf("OPTIONS sip:x@%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-frame-%d\r\n"+
			"From: <sip:raw@h>;tag=f\r\nTo: <sip:x@h>\r\nCall-ID: frame-%d\r\nCSeq: %d OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: %d\r\n\r\n%s",
			addr, c.LocalAddr(), n, n, n, len(body), body)
	}
	bad := strings.Replace(opt(2, "OPTIONS sip:x SIP/2.0\r\n\r\n"), "CSeq: 2 OPTIONS", "CSeq: 2", 1)
	if _, err := c.Write([]byte(opt(1, "") + bad + opt(3, ""))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	got := map[string]string{}
	for len(got) < 3 {
		status, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		var cid string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l == "\r\n" {
				break
			}
			if v, ok := strings.CutPrefix(l, "Call-ID: "); ok {
				cid = strings.TrimSpace(v)
			}
		}
		got[cid] = strings.TrimSpace(status)
	}
	want := map[string]string{"frame-1": "SIP/2.0 200 OK", "frame-2": "SIP/2.0 400 Malformed CSeq", "frame-3": "SIP/2.0 200 OK"}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("answers %v, want %v", got, want)
		}
	}
}
