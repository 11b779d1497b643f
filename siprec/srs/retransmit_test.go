package srs

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// rawUAC is a SIP UAC over one UDP socket, written by hand so the test
// controls exactly when ACKs go out.
type rawUAC struct {
	t      *testing.T
	conn   *net.UDPConn
	srs    string
	callID string
	toTag  string
}

func newRawUAC(t *testing.T, srs string) *rawUAC {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", srs)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawUAC{t: t, conn: conn, srs: srs, callID: fmt.Sprintf("raw-%d", time.Now().UnixNano())}
}

func (u *rawUAC) send(method, branch, cseq, extra, ct, body string) {
	u.t.Helper()
	to := "<sip:srs@" + u.srs + ">"
	if u.toTag != "" {
		to += ";tag=" + u.toTag
	}
	local := u.conn.LocalAddr().String()
	msg := fmt.Sprintf("%s sip:srs@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:src@127.0.0.1>;tag=raw1\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContact: <sip:src@%s>;+sip.src\r\n%s",
		method, u.srs, local, branch, to, u.callID, cseq, local, extra)
	if ct != "" {
		msg += "Content-Type: " + ct + "\r\n"
	}
	msg += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := u.conn.Write([]byte(msg)); err != nil {
		u.t.Fatal(err)
	}
}

// next returns the next message whose first line starts with prefix and
// that carries CSeq cseq.
func (u *rawUAC) next(prefix, cseq string) string {
	u.t.Helper()
	buf := make([]byte, 65535)
	for {
		_ = u.conn.SetReadDeadline(time.Now().Add(15 * time.Second)) // safety deadline
		n, err := u.conn.Read(buf)
		if err != nil {
			u.t.Fatalf("waiting for %q %s: %v", prefix, cseq, err)
		}
		msg := string(buf[:n])
		if strings.HasPrefix(msg, prefix) && strings.Contains(msg, "CSeq: "+cseq+"\r\n") {
			return msg
		}
	}
}

var toTagRE = regexp.MustCompile(`(?m)^To:.*;tag=([^;\r\n]+)`)

// TestRetransmit2xx: on UDP the SRS repeats its 200 until the ACK comes,
// for the INVITE and for a re-INVITE (sipgo does neither by itself).
func TestRetransmit2xx(t *testing.T) {
	srv, _ := startServer(t)
	u := newRawUAC(t, srv.Addr().String())
	offer := func(v int) string {
		return fmt.Sprintf("v=0\r\no=src 1 %d IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n", v)
	}
	u.send("INVITE", "i1", "1 INVITE", "Require: siprec\r\n", "multipart/mixed;boundary="+testBoundary, multipartBody(offer(1), testMetadata("complete", "1")))
	first := u.next("SIP/2.0 200", "1 INVITE")
	again := u.next("SIP/2.0 200", "1 INVITE")
	if first != again {
		t.Fatalf("retransmission differs:\n%s\n---\n%s", first, again)
	}
	u.toTag = toTagRE.FindStringSubmatch(first)[1]
	u.send("ACK", "a1", "1 ACK", "", "", "")

	u.send("INVITE", "i2", "2 INVITE", "", "application/sdp", offer(2))
	u.next("SIP/2.0 200", "2 INVITE")
	u.next("SIP/2.0 200", "2 INVITE")
	u.send("ACK", "a2", "2 ACK", "", "", "")

	u.send("BYE", "b1", "3 BYE", "", "", "")
	u.next("SIP/2.0 200", "3 BYE")
	si := sessionOf(t, waitCtx(t), srv, u.callID, func(si SessionInfo) bool { return si.State == StateEnded })
	if len(si.Violations) != 0 {
		t.Fatalf("violations %v", si.Violations)
	}
}

// TestNoAckEndsSession: a 200 never ACKed ends the session with a BYE after
// 64*T1 (RFC 3261 §13.3.1.4).
func TestNoAckEndsSession(t *testing.T) {
	srv, _ := startServer(t)
	u := newRawUAC(t, srv.Addr().String())
	sdp := "v=0\r\no=src 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
	u.send("INVITE", "i1", "1 INVITE", "Require: siprec\r\n", "multipart/mixed;boundary="+testBoundary, multipartBody(sdp, testMetadata("complete", "1")))
	bye := u.next("BYE ", "2 BYE")
	if !strings.Contains(bye, "Call-ID: "+u.callID) {
		t.Fatalf("bye for another call:\n%s", bye)
	}
	si := sessionOf(t, waitCtx(t), srv, u.callID, func(si SessionInfo) bool { return si.State == StateEnded })
	if si.EndReason != EndNoAck || rules(si.Violations) != RuleNoAck {
		t.Fatalf("ended %q with violations %v", si.EndReason, si.Violations)
	}
}

// TestLargeInviteOverUDP: real SRCs send metadata that pushes the INVITE
// far past 1300 bytes over UDP; the SRS must take it.
func TestLargeInviteOverUDP(t *testing.T) {
	srv, _ := startServer(t)
	u := newRawUAC(t, srv.Addr().String())
	var b strings.Builder
	b.WriteString(`<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>`)
	for i := range 40 {
		fmt.Fprintf(&b, `<participant participant_id="cGFydGljaXBhbnQ%03d"><nameID aor="sip:party%d@example.com"><name>Party %d</name></nameID></participant>`, i, i, i)
	}
	b.WriteString(`</recording>`)
	meta := b.String()
	sdp := "v=0\r\no=src 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
	body := multipartBody(sdp, meta)
	if len(body) < 4000 {
		t.Fatalf("body only %d bytes", len(body))
	}
	u.send("INVITE", "big1", "1 INVITE", "Require: siprec\r\n", "multipart/mixed;boundary="+testBoundary, body)
	res := u.next("SIP/2.0 200", "1 INVITE")
	u.toTag = toTagRE.FindStringSubmatch(res)[1]
	u.send("ACK", "a1", "1 ACK", "", "", "")
	si := sessionOf(t, waitCtx(t), srv, u.callID, func(SessionInfo) bool { return true })
	if string(si.Metadata) != meta {
		t.Fatalf("metadata %d bytes, sent %d", len(si.Metadata), len(meta))
	}
	u.send("BYE", "b1", "2 BYE", "", "", "")
	u.next("SIP/2.0 200", "2 BYE")
}
