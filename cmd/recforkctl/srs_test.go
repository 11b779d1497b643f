package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/internal/testcert"
)

func TestSRSFlags(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--help"}, 0, "usage: recforkctl srs"},
		{nil, 2, "--dir is required"},
		{[]string{"--dir", t.TempDir(), "--rtp-ports", "9-3"}, 2, "MIN-MAX"},
		{[]string{"--dir", t.TempDir(), "--rtp-ports", "x"}, 2, "MIN-MAX"},
		{[]string{"--dir", t.TempDir(), "--media-ip", "nope"}, 2, "not an IP"},
		{[]string{"--dir", t.TempDir(), "--listen", "0.0.0.0:0"}, 1, "media ip needed"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := serveSRS(context.Background(), c.args, &out, &errb); code != c.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, c.code, errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), c.msg) {
				t.Fatalf("output lacks %q:\n%s%s", c.msg, out.String(), errb.String())
			}
		})
	}
}

// rawSIP sends one SIP request over UDP and returns the first final
// response whose CSeq matches.
func rawSIP(t *testing.T, conn *net.UDPConn, msg, cseq string) string {
	t.Helper()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for {
		// A safety deadline that fails the test, not a wait.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for the response to %s: %v", cseq, err)
		}
		res := string(buf[:n])
		if strings.HasPrefix(res, "SIP/2.0 1") || !strings.Contains(res, "CSeq: "+cseq+"\r\n") {
			continue
		}
		return res
	}
}

func TestSRSCommandRecordsACall(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		exit <- serveSRS(ctx, []string{"--listen", "127.0.0.1:0", "--dir", dir, "--rtp-ports", "44000-44099"}, pw, &errb)
		pw.Close()
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended; stderr: %s", errb.String())
			}
			return l
		case <-time.After(10 * time.Second): // safety deadline
			t.Fatal("no output line")
		}
		return ""
	}
	m := regexp.MustCompile(`listening on (\S+) `).FindStringSubmatch(next())
	if m == nil {
		t.Fatal("no listening line")
	}
	raddr, _ := net.ResolveUDPAddr("udp", m[1])
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()

	sdp := "v=0\r\no=src 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=label:7\r\na=sendonly\r\n"
	meta := `<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode></recording>`
	body := "--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp + "\r\n--b1\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" + meta + "\r\n--b1--\r\n"
	head := func(method, branch, toTag, cseq string) string {
		to := "<sip:srs@" + m[1] + ">"
		if toTag != "" {
			to += ";tag=" + toTag
		}
		return fmt.Sprintf("%s sip:srs@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"+
			"From: <sip:src@127.0.0.1>;tag=src1\r\nTo: %s\r\nCall-ID: cli-call-1\r\nCSeq: %s\r\n"+
			"Contact: <sip:src@%s>;+sip.src\r\n", method, m[1], local, branch, to, cseq, local)
	}
	res := rawSIP(t, conn, head("INVITE", "inv1", "", "1 INVITE")+"Require: siprec\r\nContent-Type: multipart/mixed;boundary=b1\r\n"+
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))+body, "1 INVITE")
	if !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Fatalf("invite answered:\n%s", res)
	}
	tag := regexp.MustCompile(`(?m)^To:.*;tag=([^;\r\n]+)`).FindStringSubmatch(res)
	if tag == nil {
		t.Fatalf("no To tag:\n%s", res)
	}
	if _, err := conn.Write([]byte(head("ACK", "ack1", tag[1], "1 ACK") + "Content-Length: 0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// The session is named by the server, never after the Call-ID.
	sl := next()
	start := regexp.MustCompile(`^session start (\S+) call-id="cli-call-1" `).FindStringSubmatch(sl)
	if start == nil || start[1] == "cli-call-1" || !strings.Contains(sl, "[7 "+dir) {
		t.Fatalf("start line %q", sl)
	}
	res = rawSIP(t, conn, head("BYE", "bye1", tag[1], "2 BYE")+"Content-Length: 0\r\n\r\n", "2 BYE")
	if !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Fatalf("bye answered:\n%s", res)
	}
	l := next()
	if !strings.HasPrefix(l, "session end   "+start[1]+" ") || !strings.Contains(l, `reason="bye from src"`) {
		t.Fatalf("end line %q", l)
	}
	if _, err := os.Stat(dir + "/" + start[1] + "/stream0.wav"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Fatalf("exit %d; stderr %s", code, errb.String())
	}
}

// TestSRSTLSFiles: --tls-client-ca turns on mutual TLS (the siprec tests
// record through such an SRS); bad files are named in the error.
func TestSRSTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1").Files(t, dir, "srs")
	caFile := ca.File(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, err := srsTLS(cert, key, caFile, "", "")
	if err != nil || plain.Config.ClientAuth != tls.NoClientCert || plain.Config.RootCAs == nil {
		t.Fatalf("without --tls-client-ca: %+v, %v", plain, err)
	}
	mutual, err := srsTLS(cert, key, "", caFile, "")
	if err != nil || mutual.Config.ClientAuth != tls.RequireAndVerifyClientCert || mutual.Config.ClientCAs == nil {
		t.Fatalf("with --tls-client-ca: %+v, %v", mutual, err)
	}
	for _, c := range []struct{ ca, clientCA, want string }{
		{junk, "", "--tls-ca " + junk + ": no PEM certificate"},
		{"", junk, "--tls-client-ca " + junk + ": no PEM certificate"},
		{"", filepath.Join(dir, "missing.pem"), "--tls-client-ca: open"},
	} {
		if _, err := srsTLS(cert, key, c.ca, c.clientCA, ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("srsTLS(ca %q, client ca %q): %v, want %q", c.ca, c.clientCA, err, c.want)
		}
	}
}
