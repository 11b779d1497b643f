package controlplane_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/textproto"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/internal/testcert"
	"github.com/recfork/recfork/siprec/srs"
)

// tlsSIP is a SIP over TLS connection speaking SIP as text.
type tlsSIP struct {
	t    *testing.T
	conn *tls.Conn
	r    *bufio.Reader
	to   string
}

// readMsg reads one SIP message (start line, headers, Content-Length body).
func (c *tlsSIP) readMsg() (string, textproto.MIMEHeader) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewReader(c.r)
	start, err := tp.ReadLine()
	if err != nil {
		c.t.Fatalf("read sip over tls: %v", err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		c.t.Fatalf("read sip headers over tls: %v", err)
	}
	if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
		if _, err := io.CopyN(io.Discard, c.r, int64(n)); err != nil {
			c.t.Fatal(err)
		}
	}
	return start, h
}

func (c *tlsSIP) expect(code int) textproto.MIMEHeader {
	c.t.Helper()
	for {
		start, h := c.readMsg()
		if strings.HasPrefix(start, fmt.Sprintf("SIP/2.0 %d ", code)) {
			return h
		}
		if !strings.HasPrefix(start, "SIP/2.0 1") {
			c.t.Fatalf("got %q, want %d", start, code)
		}
	}
}

func (c *tlsSIP) send(msg string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *tlsSIP) request(method, toTag string, cseq int, body string) string {
	local := c.conn.LocalAddr().String()
	to := "<sips:echo@" + c.to + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s sips:echo@%s SIP/2.0\r\n", method, c.to)
	fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=z9hG4bK-tls-%s-%d\r\n", local, method, cseq)
	fmt.Fprintf(&b, "From: <sips:caller@%s>;tag=tlstag\r\nTo: %s\r\nCall-ID: tls-call-1\r\nCSeq: %d %s\r\n", local, to, cseq, method)
	fmt.Fprintf(&b, "Contact: <sips:caller@%s;transport=tls>\r\nMax-Forwards: 70\r\n", local)
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// TestCallOverTLSIsRecordedOverTLS places a call over SIP over TLS (the
// certificate verified against a CA made here): the 200's Contact is a
// sips: URI on the TLS port, so the dialog stays on TLS, and the recording
// goes to the built-in SRS over TLS too. Without certificates the daemon
// opens no TLS listener at all.
func TestCallOverTLSIsRecordedOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1").Files(t, dir, "recforkd")
	te := newTestEngine()
	t.Cleanup(func() { te.Close() })
	cfg := controlplane.Config{
		Listen: "127.0.0.1:0", Engine: te, Admin: filepath.Join(dir, "admin.sock"),
		RecordingsDir: filepath.Join(dir, "recordings"), Logger: testLogger(t),
		RTPPorts: dataplane.PortRange{Min: 32000, Max: 32999},
		TLSCert:  certFile, TLSKey: keyFile, TLSCA: ca.File(t, dir), TLSListen: "127.0.0.1:0",
	}
	svc, err := controlplane.NewService(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	addr := svc.Daemon().TLSAddr().String()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("tls to recforkd: %v", err)
	}
	defer conn.Close()
	c := &tlsSIP{t: t, conn: conn, r: bufio.NewReader(conn), to: addr}

	c.send(c.request("INVITE", "", 1, sdpOffer(40500, "0")))
	h := c.expect(200)
	contact := h.Get("Contact")
	if !strings.Contains(contact, "sips:") || !strings.Contains(contact, addr) || !strings.Contains(contact, "transport=tls") {
		t.Fatalf("contact of the 200 over TLS: %q", contact)
	}
	toTag := h.Get("To")[strings.Index(h.Get("To"), "tag=")+4:]
	c.send(c.request("ACK", toTag, 1, ""))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ss, err := svc.SRS().WaitFor(ctx, func(ss []srs.SessionInfo) bool { return len(ss) == 1 && ss[0].State == srs.StateActive })
	if err != nil {
		t.Fatalf("no recording: %v", err)
	}
	if ss[0].Transport != "TLS" {
		t.Errorf("recording went over %s, want TLS", ss[0].Transport)
	}
	waitFor(t, "the recording's status", func() bool {
		recs := svc.Daemon().Recordings()
		return len(recs) == 1 && recs[0].Transport == "tls" && strings.HasPrefix(recs[0].Active, "sips:")
	})
	c.send(c.request("BYE", toTag, 2, ""))
	c.expect(200)
	if _, err := svc.SRS().WaitFor(ctx, func(ss []srs.SessionInfo) bool { return len(ss) == 1 && ss[0].State == srs.StateEnded }); err != nil {
		t.Fatalf("recording not ended: %v", err)
	}

	// The default: no certificate, no TLS listener.
	plain, _ := startService(t, svcOpts{})
	if a := plain.Daemon().TLSAddr(); a.IsValid() {
		t.Errorf("TLS listener %s without a certificate", a)
	}
}
