package srs

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recfork/recfork/internal/testenv"
)

// TestSippSRC drives the built-in SRS with sipp as the SRC, over UDP and
// over TCP, with the INVITE body of RFC 7866 §8.1.1 (no CRLF between the
// SDP part and the next delimiter). The test streams RTP to the port the
// SRS answered, then tells sipp (by an INFO, which the scenario waits for)
// to hang up, and checks the WAV and metadata the SRS wrote.
func TestSippSRC(t *testing.T) {
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		testenv.Unavailable(t, "sipp not installed (Debian sip-tester)")
	}
	for _, tr := range []string{"udp", "tcp"} {
		t.Run(tr, func(t *testing.T) { runSippSRC(t, sipp, tr) })
	}
}

func runSippSRC(t *testing.T, sipp, transport string) {
	srv, _ := startServer(t)
	ctx := waitCtx(t)
	sippPort := freeSIPPort(t, transport)
	callID := "siprec-1@sipp-" + transport
	mode := map[string]string{"udp": "u1", "tcp": "t1"}[transport]
	cmd := exec.CommandContext(ctx, sipp,
		"-sf", filepath.Join("testdata", "sipp", "src_rfc7866.xml"),
		"-m", "1", "-t", mode, "-i", "127.0.0.1", "-p", fmt.Sprint(sippPort),
		"-mp", fmt.Sprint(freeSIPPort(t, "udp")),
		"-cid_str", "siprec-%u@sipp-"+transport,
		"-nostdin", "-timeout", "30s", "-timeout_error", "-max_recv_loops", "1000",
		srv.Addr().String())
	cmd.Dir = "."
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("sipp output:\n%s", out.String())
			snap, _ := srv.WaitFor(context.Background(), func([]SessionInfo) bool { return true })
			t.Logf("sessions: %+v", snap)
		}
	})

	si := sessionOf(t, ctx, srv, callID, func(si SessionInfo) bool {
		return len(si.Streams) == 1 && si.Streams[0].Port != 0
	})
	if si.Streams[0].Label != "1" {
		t.Fatalf("stream label %q, want 1", si.Streams[0].Label)
	}
	snd := newRTPSender(t, si.Streams[0].Port, 0x7866, 440)
	const packets = 50
	snd.send(t, packets)
	waitPackets(t, ctx, srv, callID, packets)

	sendInfo(t, transport, sippPort, callID)
	if err := <-done; err != nil {
		t.Fatalf("sipp: %v\n%s", err, out.String())
	}
	si = sessionOf(t, ctx, srv, callID, func(si SessionInfo) bool { return !si.Ended.IsZero() })
	if si.EndReason != EndByeFromSRC || si.Transport != strings.ToUpper(transport) {
		t.Fatalf("session ended %q over %s, want %q over %s", si.EndReason, si.Transport, EndByeFromSRC, strings.ToUpper(transport))
	}
	// sipp sends what RFC 7866's example shows; the strict SRS finds no fault in it.
	if len(si.Violations) != 0 {
		t.Fatalf("violations in an RFC 7866-shaped session: %+v", si.Violations)
	}
	samples := readWAV(t, si.Streams[0].Path)
	if len(samples) < packets*160 {
		t.Fatalf("WAV holds %d samples, want at least %d", len(samples), packets*160)
	}
	loud := 0
	for _, s := range samples {
		if s > 1000 || s < -1000 {
			loud++
		}
	}
	if loud < len(samples)/4 {
		t.Fatalf("WAV mostly silent: %d of %d samples loud", loud, len(samples))
	}
	meta, err := os.ReadFile(filepath.Join(si.Dir, "metadata.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(meta), `<stream stream_id="UAAMm5GRQKSCMVvLyl4rFw=="`) {
		t.Fatalf("metadata.xml is not what sipp sent:\n%s", meta)
	}
}

// freeSIPPort returns a port free on 127.0.0.1 for the transport.
func freeSIPPort(t *testing.T, transport string) int {
	t.Helper()
	if transport == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// sendInfo sends the INFO the sipp scenario waits for before its BYE. Its
// answer is not awaited: sipp sends every message of a call to its one
// remote peer, so the 200 goes to the SRS (which drops it as a stray
// response); sipp's exit and the SRS's session end are what the test waits on.
func sendInfo(t *testing.T, transport string, port int, callID string) {
	t.Helper()
	c, err := net.Dial(transport, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	msg := "INFO sip:src@127.0.0.1:" + fmt.Sprint(port) + " SIP/2.0\r\n" +
		"Via: SIP/2.0/" + strings.ToUpper(transport) + " " + local + ";branch=z9hG4bK-test-info\r\n" +
		"From: <sip:srs@example.com>;tag=test\r\nTo: <sip:src@example.com>\r\n" +
		"Call-ID: " + callID + "\r\nCSeq: 1 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
}
